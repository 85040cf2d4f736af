"""Box localization metrics of the wsolevaluation protocol as DDP-exact torchmetrics metrics.

MaxBoxAcc / MaxBoxAccV2 follow the reference ``BoxEvaluator`` (Choe et al., CVPR 2020, and
issue 2, definitions 1-5); GT-known Loc and Top-1/Top-5 Loc are the classic metrics evaluated on
the same boxes. Every state is a fixed-size integer counter summed across processes, so the value
over the union of DDP shards equals the single-process value exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch

from wsol_lightning.cam.boxes import union_box_hits
from wsol_lightning.cam.hits import BoxesLike, threshold_hits, validate_iou_thresholds
from wsol_lightning.cam.maps import as_numpy_float64, cam_thresholds
from wsol_lightning.metrics.percent import PercentMetric

if TYPE_CHECKING:
    from wsol_lightning.metrics.evaluator import EvaluationStep

def _threshold_index(thresholds: np.ndarray, threshold: float) -> int:
    """Index of ``threshold`` among the CAM thresholds (it must be one of them)."""
    matches = np.flatnonzero(np.isclose(thresholds, threshold, rtol=0.0, atol=1e-9))
    if not len(matches):
        raise ValueError(f"CAM threshold {threshold} is not one of the metric's thresholds (step {thresholds[1]})")
    return int(matches[0])


def _first_argmax(values: torch.Tensor) -> int:
    """Index of the first maximum (the reference's ties go to the lowest threshold)."""
    return int(np.argmax(values.detach().cpu().numpy()))


class MaxBoxAccV2(PercentMetric):
    """MaxBoxAccV2 (default) or MaxBoxAcc v1 of wsolevaluation, in percent.

    ``BoxAcc(t, delta)`` is the share of images whose best box at CAM threshold ``t`` has
    ``IoU >= delta`` with one of their GT boxes; ``MaxBoxAcc(delta)`` is its maximum over ``t``
    (each ``delta`` its own threshold, ties to the lowest); the value is the mean over
    ``iou_thresholds`` (reference ``BoxEvaluator``, issue 2 definitions 1-5).
    ``MaxBoxAccV2(iou_thresholds=(50,), multi_contour=False)`` is MaxBoxAcc v1 (CVPR 2020).

    States: ``hits`` int64 ``[len(iou_thresholds), len(thresholds)]`` and ``count`` int64, both
    summed across processes. ``compute()`` with no image raises ``RuntimeError``.

    Args:
        iou_thresholds: IoU thresholds in percent (integers in [0, 100]).
        cam_curve_interval: CAM threshold step; thresholds are ``np.arange(0, 1, interval)``
            (reference: 0.01 in its CLI, 0.001 in its training config).
        multi_contour: boxes of every contour (V2) or of the largest-area contour only (v1).
        kwargs: torchmetrics ``Metric`` options.
    """

    requires: ClassVar[frozenset[str]] = frozenset({"boxes"})

    hits: torch.Tensor
    count: torch.Tensor

    def __init__(
        self,
        iou_thresholds: Sequence[int] = (30, 50, 70),
        cam_curve_interval: float = 0.01,
        multi_contour: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.iou_thresholds = validate_iou_thresholds(iou_thresholds)
        self.cam_curve_interval = float(cam_curve_interval)
        self.multi_contour = bool(multi_contour)
        self.thresholds = cam_thresholds(self.cam_curve_interval)
        shape = (len(self.iou_thresholds), len(self.thresholds))
        self.add_state("hits", torch.zeros(shape, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, cams: torch.Tensor, boxes: BoxesLike) -> None:
        """Accumulate a batch.

        Args:
            cams: raw localization maps ``[N, H, W]`` at the evaluated image size (any scale;
                float64 kept; normalized per map inside).
            boxes: N tensors ``[K_i, 4]``: every GT box of the image, inclusive ``x0, y0, x1, y1``
                pixel coordinates in that frame.
        """
        self._accumulate_hits(threshold_hits(cams, boxes, self.thresholds, self.iou_thresholds, self.multi_contour))

    def update_from_step(self, step: EvaluationStep) -> None:
        """Accumulate the boxed images of an evaluation step (the step's shared sweep)."""
        self.update_from_hits(step.hits(self.cam_curve_interval, self.iou_thresholds, self.multi_contour))

    def logged_values(self, reference_threshold: float | None = None) -> dict[str, torch.Tensor]:
        """``maxboxacc_v2`` and ``maxboxacc_iou<d>`` per IoU threshold (nothing when no image was seen).

        Synchronized across processes; every rank must call it (as ``compute``).
        """
        with self.sync_context():
            if int(self.count) == 0:
                return {}
            curve = self._curve()
        values = {"maxboxacc_v2": curve.max(dim=1).values.mean()}
        for row, delta in enumerate(self.iou_thresholds):
            values[f"maxboxacc_iou{delta}"] = curve[row].max()
        return values

    def value_at_threshold(self, threshold: float, iou_threshold: int | None = None) -> torch.Tensor:
        """BoxAcc in percent at one CAM threshold of :attr:`thresholds` (e.g. the one chosen on val)."""
        row = 0 if iou_threshold is None else self.iou_thresholds.index(iou_threshold)
        index = _threshold_index(self.thresholds, threshold)
        with self.sync_context():
            return self._curve()[row, index]

    def update_from_hits(self, hits: np.ndarray) -> None:
        """Accumulate a batch already scored by :func:`threshold_hits` (same states as :meth:`update`).

        Lets several metrics that evaluate the same maps with the same settings share one box
        kernel run (the evaluator feeds MaxBoxAccV2, GT-known and Top-k Loc this way).

        Args:
            hits: bool ``[N, len(iou_thresholds), len(thresholds)]`` from :func:`threshold_hits`
                with this metric's ``thresholds``, ``iou_thresholds`` and ``multi_contour``.
        """
        # torchmetrics' own update bookkeeping (cached value reset, update count, compute_on_cpu).
        self._wrap_update(self._accumulate_hits)(hits)

    def _accumulate_hits(self, hits: np.ndarray) -> None:
        hits = np.asarray(hits)
        expected = (len(self.iou_thresholds), len(self.thresholds))
        if hits.ndim != 3 or hits.shape[1:] != expected:
            raise ValueError(f"hits must have shape [N, {expected[0]}, {expected[1]}], got {hits.shape}")
        self.hits += torch.from_numpy(hits.sum(axis=0)).to(self.hits.device)
        self.count += hits.shape[0]

    def _curve(self) -> torch.Tensor:
        if int(self.count) == 0:
            raise RuntimeError(f"{type(self).__name__}.compute() needs at least one image; none was given")
        return self.hits.double() * 100.0 / float(self.count)

    def compute(self) -> torch.Tensor:
        """Mean over IoU thresholds of MaxBoxAcc, in percent (0-dim float64)."""
        return self._curve().max(dim=1).values.mean()

    def box_accuracy_curve(self) -> tuple[torch.Tensor, torch.Tensor]:
        """BoxAcc versus CAM threshold, synchronized across processes.

        Returns:
            ``(thresholds [K] float64, box_acc [len(iou_thresholds), K] float64 percent)``.
        """
        with self.sync_context():
            curve = self._curve()
        return torch.from_numpy(self.thresholds.copy()), curve

    def compute_per_iou(self) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
        """MaxBoxAcc and its CAM threshold per IoU threshold, synchronized across processes.

        Returns:
            ``{delta: (max_box_acc, best_threshold)}``, 0-dim float64 tensors (percent and CAM
            threshold); ``best_threshold`` is the lowest threshold reaching the maximum.
        """
        with self.sync_context():
            curve = self._curve()
            hits = self.hits.clone()
        result = {}
        for row, delta in enumerate(self.iou_thresholds):
            best = _first_argmax(hits[row])
            result[delta] = (curve[row, best], torch.tensor(self.thresholds[best], dtype=torch.float64))
        return result

    def best_threshold(self, iou_threshold: int | None = None) -> torch.Tensor:
        """The CAM threshold of MaxBoxAcc at ``iou_threshold`` (optional when there is only one)."""
        if iou_threshold is None:
            if len(self.iou_thresholds) != 1:
                raise ValueError(f"pass one of {self.iou_thresholds}")
            iou_threshold = self.iou_thresholds[0]
        return self.compute_per_iou()[iou_threshold][1]


class GTKnownLoc(MaxBoxAccV2):
    """GT-known localization accuracy in percent: BoxAcc at IoU 0.5 at its optimal CAM threshold.

    Feed the ground-truth class's maps. With the default ``multi_contour=False`` this is
    MaxBoxAcc v1 of wsolevaluation (largest contour only). :meth:`best_threshold` gives the
    threshold, e.g. to keep as the operating point for prediction.

    Args:
        cam_curve_interval: CAM threshold step (see :class:`MaxBoxAccV2`).
        multi_contour: boxes of every contour instead of the largest only.
        kwargs: torchmetrics ``Metric`` options.
    """

    def __init__(self, cam_curve_interval: float = 0.01, multi_contour: bool = False, **kwargs: Any) -> None:
        super().__init__(
            iou_thresholds=(50,), cam_curve_interval=cam_curve_interval, multi_contour=multi_contour, **kwargs
        )

    def logged_values(self, reference_threshold: float | None = None) -> dict[str, torch.Tensor]:
        """``gt_known_loc``, and ``gt_known_loc_at_val_threshold`` when the val-chosen threshold is given."""
        with self.sync_context():
            if int(self.count) == 0:
                return {}
            curve = self._curve()[0]
        values = {"gt_known_loc": curve.max()}
        if reference_threshold is not None:
            values["gt_known_loc_at_val_threshold"] = curve[_threshold_index(self.thresholds, reference_threshold)]
        return values


class TopKLoc(PercentMetric):
    """Top-k localization accuracy in percent: class right AND box IoU >= 0.5, at one CAM threshold.

    ``update(cams, boxes, correct)`` takes the ground-truth class's maps and ``correct[i]`` =
    "the label of image i is among its top-``k`` predictions" (when the top-1 prediction is
    right, the GT-class map is the predicted class's map). ``k`` only decides which flags
    :meth:`update_from_step` computes and the logged name (``top<k>_loc``). ``threshold="gt_known"`` (default) reports the value at GT-known Loc's optimal CAM
    threshold (lowest on ties); ``threshold="own"`` takes Top-1 Loc's own maximum over thresholds
    (the wsolevaluation maintainers' answer in their issues 14 and 50).

    States: ``gt_known_hits`` and ``hits`` int64 ``[len(thresholds)]``, ``count`` int64, summed
    across processes. ``compute()`` with no image raises ``RuntimeError``.

    Args:
        k: Top-``k`` (1: Top-1 Loc, 5: Top-5 Loc).
        cam_curve_interval: CAM threshold step (see :class:`MaxBoxAccV2`).
        multi_contour: boxes of every contour instead of the largest only.
        threshold: ``"gt_known"`` or ``"own"``.
        kwargs: torchmetrics ``Metric`` options.
    """

    requires: ClassVar[frozenset[str]] = frozenset({"boxes"})

    gt_known_hits: torch.Tensor
    hits: torch.Tensor
    count: torch.Tensor

    def __init__(
        self,
        k: int = 1,
        cam_curve_interval: float = 0.01,
        multi_contour: bool = False,
        threshold: Literal["gt_known", "own"] = "gt_known",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if threshold not in ("gt_known", "own"):
            raise ValueError(f"threshold must be 'gt_known' or 'own', got {threshold!r}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k
        self.cam_curve_interval = float(cam_curve_interval)
        self.multi_contour = bool(multi_contour)
        self.threshold = threshold
        self.thresholds = cam_thresholds(self.cam_curve_interval)
        self.add_state(
            "gt_known_hits", torch.zeros(len(self.thresholds), dtype=torch.long), dist_reduce_fx="sum"
        )
        self.add_state("hits", torch.zeros(len(self.thresholds), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, cams: torch.Tensor, boxes: BoxesLike, correct: torch.Tensor | np.ndarray) -> None:
        """Accumulate a batch.

        Args:
            cams: ground-truth class maps ``[N, H, W]`` (raw, as for :class:`MaxBoxAccV2`).
            boxes: N tensors ``[K_i, 4]`` of GT boxes (inclusive ``x0, y0, x1, y1``).
            correct: bool ``[N]``, the classification is right (top-1, or top-5 for Top-5 Loc).
        """
        hits = threshold_hits(cams, boxes, self.thresholds, (50,), self.multi_contour)[:, 0, :]
        self._accumulate_hits(hits, correct)

    def update_from_step(self, step: EvaluationStep) -> None:
        """Accumulate the boxed images of an evaluation step (GT-known's sweep, top-``k`` flags)."""
        hits = step.hits(self.cam_curve_interval, (50,), self.multi_contour)[:, 0, :]
        self.update_from_hits(hits, step.correct(self.k)[step.boxed])

    def logged_values(self, reference_threshold: float | None = None) -> dict[str, torch.Tensor]:
        """``top<k>_loc``, and ``top<k>_loc_at_val_threshold`` when the val-chosen threshold is given."""
        with self.sync_context():
            if int(self.count) == 0:
                return {}
            accuracy = self.hits.double() * 100.0 / float(self.count)
            values = {f"top{self.k}_loc": accuracy[self._best_index()]}
        if reference_threshold is not None:
            values[f"top{self.k}_loc_at_val_threshold"] = accuracy[_threshold_index(self.thresholds, reference_threshold)]
        return values

    def update_from_hits(self, hits: np.ndarray, correct: torch.Tensor | np.ndarray) -> None:
        """Accumulate a batch already scored by :func:`threshold_hits` (see :meth:`MaxBoxAccV2.update_from_hits`).

        Args:
            hits: bool ``[N, len(thresholds)]``: the IoU-50 row of :func:`threshold_hits` with this
                metric's ``thresholds`` and ``multi_contour`` (``hits[:, 0, :]`` for ``(50,)``).
            correct: bool ``[N]``, the classification is right (top-1, or top-5 for Top-5 Loc).
        """
        self._wrap_update(self._accumulate_hits)(hits, correct)

    def _accumulate_hits(self, hits: np.ndarray, correct: torch.Tensor | np.ndarray) -> None:
        hits = np.asarray(hits)
        if hits.ndim != 2 or hits.shape[1] != len(self.thresholds):
            raise ValueError(f"hits must have shape [N, {len(self.thresholds)}], got {hits.shape}")
        if isinstance(correct, torch.Tensor):
            correct = correct.detach().cpu().numpy()
        correct = np.asarray(correct).astype(bool).reshape(-1)
        if len(correct) != len(hits):
            raise ValueError(f"got {len(hits)} maps but {len(correct)} correctness flags")
        self.gt_known_hits += torch.from_numpy(hits.sum(axis=0)).to(self.hits.device)
        self.hits += torch.from_numpy(hits[correct].sum(axis=0)).to(self.hits.device)
        self.count += len(hits)

    def _best_index(self) -> int:
        return _first_argmax(self.gt_known_hits if self.threshold == "gt_known" else self.hits)

    def compute(self) -> torch.Tensor:
        """Top-1 (or Top-5) Loc at the chosen CAM threshold, in percent (0-dim float64)."""
        if int(self.count) == 0:
            raise RuntimeError(f"{type(self).__name__}.compute() needs at least one image; none was given")
        return self.hits[self._best_index()].double() * 100.0 / float(self.count)

    def best_threshold(self) -> torch.Tensor:
        """The CAM threshold the value is read at (0-dim float64), synchronized across processes."""
        with self.sync_context():
            best = self._best_index()
        return torch.tensor(self.thresholds[best], dtype=torch.float64)


class UnionBoxLoc(PercentMetric):
    """Top-1, Top-5 and GT-known Loc (percent) with the union box at one fixed threshold.

    SPA's and DANet's own protocol (SPA_CVPR2021 @32bf2d5 ``utils/localization.py`` ``'union'``
    mode, ``utils/evaluate.py`` ``locerr`` L80-88): the box of a min-max normalized GT-class map is
    the tight box around every pixel ``>= threshold`` (:func:`~wsol_lightning.cam.union_boxes`);
    an image hits when its largest inclusive IoU over its GT boxes is ``> iou_threshold`` (strict,
    as L88). Top-1 / Top-5 Loc also need the label among the top-1 / top-5 classes; GT-known Loc
    does not. Images without a GT box are not counted. States: int64 hit counts and ``count``,
    summed across processes; logged next to (never instead of) the wsolevaluation metrics.
    With ``ten_crop`` the top-1 / top-5 classes are those of the ten-crop scores, the papers'
    complete protocol (``top1_loc_union_ten_crop``, ``top5_loc_union_ten_crop``; GT-known Loc
    needs no class and is left to the other instance); the metric then needs data providing
    ``ten_crop``.

    Args:
        threshold: the fixed map threshold in ``[0, 1]`` (SPA's CUB script: 0.1-0.35).
        iou_threshold: IoU a hit must exceed (SPA, DANet: 0.5).
        ten_crop: classify with the ten-crop scores.
        kwargs: torchmetrics ``Metric`` options.
    """

    requires: ClassVar[frozenset[str]] = frozenset({"boxes"})  # with ten_crop the instance's adds "ten_crop"
    gt_known_hits: torch.Tensor
    top1_hits: torch.Tensor
    top5_hits: torch.Tensor
    count: torch.Tensor

    def __init__(self, threshold: float, iou_threshold: float = 0.5, ten_crop: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"union box threshold must be in [0, 1], got {threshold}")
        self.threshold = float(threshold)
        self.iou_threshold = float(iou_threshold)
        self.ten_crop = ten_crop
        self.requires = frozenset({"boxes", "ten_crop"}) if ten_crop else frozenset({"boxes"})
        for name in ("gt_known_hits", "top1_hits", "top5_hits", "count"):
            self.add_state(name, torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(
        self, cams: torch.Tensor | np.ndarray, boxes: BoxesLike, top1: torch.Tensor | np.ndarray,
        top5: torch.Tensor | np.ndarray,
    ) -> None:
        """Accumulate a batch.

        Args:
            cams: raw GT-class maps ``[N, H, W]`` at the evaluated image size (normalized here).
            boxes: N arrays ``[K_i, 4]`` of inclusive GT boxes; images with ``K_i = 0`` are skipped.
            top1: bool ``[N]``, the label is the top-1 class.
            top5: bool ``[N]``, the label is among the top-5 classes.
        """
        boxed = np.flatnonzero([len(b) > 0 for b in boxes])
        if not len(boxed):
            return
        hits = union_box_hits(as_numpy_float64(cams)[boxed], [boxes[i] for i in boxed], self.threshold,
                              self.iou_threshold)
        top1, top5 = (np.asarray(torch.as_tensor(c).cpu(), dtype=bool)[boxed] for c in (top1, top5))
        self._accumulate(hits, top1, top5)

    def update_from_step(self, step: EvaluationStep) -> None:
        """Accumulate an evaluation step: its union-box hits (computed once per step and setting) and
        top-1/top-5 flags."""
        if not len(step.boxed):
            return
        hits = step.union_hits(self.threshold, self.iou_threshold)
        correct = [step.correct(k, self.ten_crop)[step.boxed] for k in (1, 5)]
        self._accumulate(hits, *correct)

    def _accumulate(self, hits: np.ndarray, top1: np.ndarray, top5: np.ndarray) -> None:
        self.gt_known_hits += int(hits.sum())
        self.top1_hits += int((hits & top1).sum())
        self.top5_hits += int((hits & top5).sum())
        self.count += len(hits)

    def compute(self) -> dict[str, torch.Tensor]:
        """``top1_loc_union``, ``top5_loc_union`` and ``gt_known_loc_union`` in percent (float64);
        with ``ten_crop``, ``top1_loc_union_ten_crop`` and ``top5_loc_union_ten_crop``."""
        return self._values()

    def _values(self) -> dict[str, torch.Tensor]:
        if int(self.count) == 0:
            raise RuntimeError(f"{type(self).__name__}.compute() needs at least one image with a box")
        if self.ten_crop:
            hits = {"top1": self.top1_hits, "top5": self.top5_hits}
            return {f"{name}_loc_union_ten_crop": v.double() * 100.0 / float(self.count) for name, v in hits.items()}
        hits = {"top1": self.top1_hits, "top5": self.top5_hits, "gt_known": self.gt_known_hits}
        return {f"{name}_loc_union": value.double() * 100.0 / float(self.count) for name, value in hits.items()}

    def logged_values(self, reference_threshold: float | None = None) -> dict[str, torch.Tensor]:
        """The three values of :meth:`compute` (nothing when no boxed image was seen)."""
        with self.sync_context():
            return {} if int(self.count) == 0 else self._values()
