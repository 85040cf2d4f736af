"""The Evaluator: one per stage, holding every metric that the data allows, fed one batch at a time.

A batch reaches the evaluator as an :class:`EvaluationStep` (labels, logits, the raw maps of the
evaluated classes, the batch's annotations, all on the CPU). Every metric declares what it needs
(:attr:`EvaluationMetric.requires`: ``boxes``, ``mask``, ``part_mask``, ``skull_mask``,
``images_without_object``, ``ten_crop``), the datamodule declares what its dataset provides, and the evaluator
keeps the metrics whose needs are met, so nothing downstream keeps flags. The expensive parts
run once per batch and are shared: the float64 bicubic resize of the maps, and one box sweep per
setting (:func:`wsol_lightning.cam.threshold_hits`) that feeds MaxBoxAccV2, GT-known and Top-k Loc, and
one union-box test per threshold (:func:`wsol_lightning.cam.union_box_hits`) for the union metrics.

With ``overlap`` the metric updates of a batch run on a worker thread while the next batch's
forward runs (the resize and the numba sweep release the GIL); at most ``max_pending`` batches
wait, so memory stays flat, and :meth:`Evaluator.compute` waits for them. The updates run in batch
order on one thread, so the states (integer sums) are exactly those of the serial evaluation,
and they are synchronized across DDP ranks by torchmetrics as before.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn
from torchmetrics import Metric

from wsol_lightning.cam import cam_thresholds, resize_cam, threshold_hits, union_box_hits

#: The fields a dataset can provide and a metric can require.
FIELDS = ("boxes", "mask", "part_mask", "skull_mask", "images_without_object", "ten_crop")


@dataclass
class EvaluationStep:
    """One evaluated batch on the CPU, with the work its metrics share computed once, on demand.

    Attributes:
        labels: int64 ``[B]``, the evaluated class of each image (its label).
        logits: float ``[B, C]``.
        raw_maps: float64 ``[B, h, w]``, the raw map of ``labels[b]`` for image ``b``.
        image_size: ``(H, W)``, the evaluated frame the maps are resized to.
        boxes: int64 ``[K_i, 4]`` per image (``K_i = 0``: no object).
        annotations: the batch's optional per-pixel / per-image fields present
            (``mask``, ``part_mask``, ``skull_mask``, ``multi_hot``).
        class_maps: raw maps ``[B, h, w]`` of further classes, by class index (see
            :attr:`EvaluationMetric.map_classes`).
        extras: the network's extra outputs (e.g. DANet's ``level_logits``).
        multilabel: targets are multi-hot (``annotations["multi_hot"]``).
        cam_threshold: the CAM threshold chosen on validation when the batch was evaluated.
        ten_crop_scores: float ``[B, C]``, softmax scores averaged over each image's ten crops
            (``data.ten_crop``), else ``None``.
    """

    labels: torch.Tensor
    logits: torch.Tensor
    raw_maps: np.ndarray
    image_size: tuple[int, int]
    boxes: list[np.ndarray]
    annotations: dict[str, torch.Tensor] = field(default_factory=dict)
    class_maps: dict[int, np.ndarray] = field(default_factory=dict)
    extras: Mapping[str, torch.Tensor] = field(default_factory=dict)
    multilabel: bool = False
    cam_threshold: float = 0.5
    ten_crop_scores: torch.Tensor | None = None

    @cached_property
    def maps(self) -> np.ndarray:
        """float64 ``[B, H, W]``: the evaluated maps resized as the reference (bicubic)."""
        return resize_cam(self.raw_maps, self.image_size)

    def resized_class_maps(self, index: int) -> np.ndarray:
        """float64 ``[B, H, W]``: every image's map of class ``index`` at the evaluated size."""
        if index not in self._resized:
            self._resized[index] = resize_cam(self.class_maps[index], self.image_size)
        return self._resized[index]

    @cached_property
    def _resized(self) -> dict[int, np.ndarray]:
        return {}

    @cached_property
    def boxed(self) -> np.ndarray:
        """Indices of the images with at least one GT box (the box metrics' images)."""
        return np.flatnonzero([len(b) > 0 for b in self.boxes])

    def hits(self, cam_curve_interval: float, iou_thresholds: tuple[int, ...], multi_contour: bool) -> np.ndarray:
        """bool ``[N_boxed, D, K]`` of :func:`threshold_hits` on the boxed images, one sweep per setting."""
        key = (float(cam_curve_interval), tuple(iou_thresholds), bool(multi_contour))
        if key not in self._hits:
            boxed = self.boxed
            self._hits[key] = threshold_hits(
                self.maps[boxed], [self.boxes[i] for i in boxed], cam_thresholds(key[0]), key[1], key[2]
            )
        return self._hits[key]

    @cached_property
    def _hits(self) -> dict[tuple, np.ndarray]:
        return {}

    def union_hits(self, threshold: float, iou_threshold: float) -> np.ndarray:
        """bool ``[N_boxed]``: :func:`union_box_hits` of the boxed images' maps, once per setting (the
        single-image and ten-crop union metrics share it)."""
        key = ("union", float(threshold), float(iou_threshold))
        if key not in self._hits:
            boxed = self.boxed
            self._hits[key] = union_box_hits(self.maps[boxed], [self.boxes[i] for i in boxed], threshold, iou_threshold)
        return self._hits[key]

    def correct(self, k: int, ten_crop: bool = False) -> np.ndarray:
        """bool ``[B]``: the label is among the top-``k`` classes (multi-label, ``k = 1``: its logit > 0);
        ``ten_crop``: of :attr:`ten_crop_scores`."""
        if ten_crop:
            if self.ten_crop_scores is None:
                raise ValueError("this evaluation step has no ten_crop_scores (data.ten_crop is off)")
            scores = self.ten_crop_scores
        elif self.multilabel and k == 1:
            return (self.logits.gather(1, self.labels[:, None]).squeeze(1) > 0).numpy()
        else:
            scores = self.logits
        top = scores.topk(min(k, scores.shape[1]), dim=1).indices
        return (top == self.labels[:, None]).any(dim=1).numpy()


@runtime_checkable
class EvaluationMetric(Protocol):
    """What the Evaluator asks of a metric (a torchmetrics ``Metric`` with these members)."""

    #: fields (:data:`FIELDS`) the metric needs from the data
    requires: ClassVar[frozenset[str]]

    def update_from_step(self, step: EvaluationStep) -> None:
        """Accumulate one :class:`EvaluationStep`."""

    def logged_values(self, reference_threshold: float | None) -> dict[str, torch.Tensor]:
        """Values to log (names without the stage prefix); ``reference_threshold``: the val-chosen one."""


class ClassificationAccuracy(Metric):
    """Classification accuracy as a fraction: top-1 and top-``k`` (``cls_top1``, ``cls_top<k>``).

    With ``multilabel`` the share of images whose every class is right at ``sigmoid > 0.5``
    (``cls_exact_match``). With ``ten_crop`` the scores are the step's ten-crop ones
    (``cls_top1_ten_crop``, ...; the metric needs data providing ``ten_crop``). Integer states
    summed across processes.
    """

    requires: ClassVar[frozenset[str]] = frozenset()  # with ten_crop the instance's: {"ten_crop"}
    full_state_update = False
    correct: torch.Tensor
    count: torch.Tensor

    def __init__(self, num_classes: int, multilabel: bool = False, top_k: int = 5, ten_crop: bool = False) -> None:
        super().__init__()
        if ten_crop and multilabel:
            raise ValueError("ten-crop accuracy is single-label (softmax scores averaged over crops)")
        self.multilabel = multilabel
        self.ten_crop = ten_crop
        self.requires = frozenset({"ten_crop"}) if ten_crop else frozenset()
        self.top_k = min(top_k, num_classes)
        self.add_state("correct", torch.zeros(2, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, labels: torch.Tensor, multi_hot: torch.Tensor | None = None) -> None:
        if self.multilabel:
            exact = ((logits.float() > 0) == (multi_hot > 0.5)).all(dim=1)
            self.correct[0] += int(exact.sum())
        else:
            top = logits.topk(self.top_k, dim=1).indices
            self.correct[0] += int((top[:, 0] == labels).sum())
            self.correct[1] += int((top == labels[:, None]).any(dim=1).sum())
        self.count += len(labels)

    def update_from_step(self, step: EvaluationStep) -> None:
        scores = step.ten_crop_scores if self.ten_crop else step.logits
        if scores is None:
            raise ValueError("ten-crop accuracy needs an evaluation step with ten_crop_scores (data.ten_crop)")
        self.update(scores, step.labels, step.annotations.get("multi_hot"))

    def compute(self) -> dict[str, torch.Tensor]:
        fraction = self.correct.double() / max(int(self.count), 1)
        if self.multilabel:
            return {"cls_exact_match": fraction[0]}
        suffix = "_ten_crop" if self.ten_crop else ""
        return {f"cls_top1{suffix}": fraction[0], f"cls_top{self.top_k}{suffix}": fraction[1]}

    def logged_values(self, reference_threshold: float | None) -> dict[str, torch.Tensor]:
        return self.compute()


class Evaluator(nn.Module):
    """The metrics of one stage (see the module docstring).

    Args:
        metrics: name -> metric (each an :class:`EvaluationMetric`); the names order the log.
        fields: what the data provides (:data:`FIELDS`); metrics needing more are left out.
        overlap: update on a worker thread, overlapping the next batch's forward.
        max_pending: batches that may wait for the worker before :meth:`update` blocks.
    """

    def __init__(
        self, metrics: Mapping[str, Metric], fields: Iterable[str], overlap: bool = True, max_pending: int = 2
    ) -> None:
        super().__init__()
        provided = frozenset(fields)
        unknown = provided - set(FIELDS)
        if unknown:
            raise ValueError(f"unknown data fields {sorted(unknown)}; known: {', '.join(FIELDS)}")
        for name, metric in metrics.items():
            if not isinstance(metric, EvaluationMetric):
                raise TypeError(f"metric {name!r} ({type(metric).__name__}) lacks requires/update_from_step/logged_values")
        self.metrics = nn.ModuleDict({n: m for n, m in metrics.items() if m.requires <= provided})
        self.overlap = overlap
        self.max_pending = max_pending
        self._worker: ThreadPoolExecutor | None = None
        self._slots = threading.BoundedSemaphore(max_pending)
        self._pending: list[Future] = []

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (``ddp_spawn``, deep copies): the worker and its queue are not part of the state."""
        self.wait()
        state = self.__dict__.copy()
        state.update(_worker=None, _slots=None, _pending=[])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._slots = threading.BoundedSemaphore(self.max_pending)

    def _update(self, step: EvaluationStep, inference: bool) -> None:
        with torch.inference_mode(inference), torch.no_grad():
            for metric in self.metrics.values():
                metric.update_from_step(step)

    def update(self, step: EvaluationStep) -> None:
        """Accumulate a batch (on the worker thread with ``overlap``; errors surface by the next call)."""
        if not self.overlap:
            self._update(step, torch.is_inference_mode_enabled())
            return
        self._raise_finished_errors()
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wsol-evaluator")
        self._slots.acquire()
        try:
            # the worker runs in the caller's inference mode (thread-local): states reset inside
            # ``trainer.validate``/``test`` are inference tensors, updatable only in that mode
            future = self._worker.submit(self._update, step, torch.is_inference_mode_enabled())
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        self._pending.append(future)

    def _raise_finished_errors(self) -> None:
        done, still = [], []
        for future in self._pending:  # one done() per future: one finishing meanwhile is in exactly one list
            (done if future.done() else still).append(future)
        self._pending = still
        for future in done:
            future.result()

    def wait(self) -> None:
        """Block until every submitted batch is accumulated; then re-raise the first worker error."""
        pending, self._pending = self._pending, []
        errors = [future.exception() for future in pending]  # exception() waits for the future
        first = next((error for error in errors if error is not None), None)
        if first is not None:
            raise first

    def close(self) -> None:
        """Wait for the pending batches and stop the worker thread (a later update starts a new one)."""
        try:
            self.wait()
        finally:
            if self._worker is not None:
                self._worker.shutdown(wait=True)
                self._worker = None

    def compute(self, reference_threshold: float | None = None) -> dict[str, torch.Tensor]:
        """Every metric's values (synchronized across processes), names without the stage prefix."""
        self.wait()
        values: dict[str, torch.Tensor] = {}
        for metric in self.metrics.values():
            values.update(metric.logged_values(reference_threshold))
        return values

    def reset(self) -> None:
        self.wait()
        for metric in self.metrics.values():
            metric.reset()

    def __contains__(self, name: str) -> bool:
        return name in self.metrics

    def __getitem__(self, name: str) -> Metric:
        return self.metrics[name]
