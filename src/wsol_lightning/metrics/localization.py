"""Box localization metrics of the wsolevaluation protocol as DDP-exact torchmetrics metrics.

MaxBoxAcc / MaxBoxAccV2 follow the reference ``BoxEvaluator`` (Choe et al., CVPR 2020, and
issue 2, definitions 1-5); GT-known Loc and Top-1/Top-5 Loc are the classic metrics evaluated on
the same boxes. Every state is a fixed-size integer counter summed across processes, so the value
over the union of DDP shards equals the single-process value exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from torchmetrics import Metric

from wsol_lightning.metrics.functional import as_numpy_float64, cam_thresholds, threshold_cuts

BoxesLike = Sequence[torch.Tensor | np.ndarray | Sequence[Sequence[int]]] | torch.Tensor | np.ndarray


def _iou_thresholds(values: Sequence[int]) -> tuple[int, ...]:
    """Validate IoU thresholds: 1 to 63 integers in [0, 100] (percent)."""
    deltas = tuple(values)
    if not deltas or len(deltas) > 63 or any(int(d) != d or not 0 <= d <= 100 for d in deltas):
        raise ValueError(f"iou_thresholds must be 1 to 63 integers in [0, 100], got {values}")
    return tuple(int(d) for d in deltas)


def _gt_boxes(boxes: BoxesLike, n_maps: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate per-image GT boxes; return them concatenated (int64 ``[M, 4]``) with offsets ``[N + 1]``."""
    if len(boxes) != n_maps:
        raise ValueError(f"got {n_maps} maps but {len(boxes)} box sets")
    arrays = []
    for i, image_boxes in enumerate(boxes):
        if isinstance(image_boxes, torch.Tensor):
            image_boxes = image_boxes.detach().cpu().numpy()
        array = np.asarray(image_boxes)
        if array.ndim == 1:
            array = array[None]
        if array.ndim != 2 or array.shape[1] != 4 or array.shape[0] == 0:
            raise ValueError(f"boxes of image {i} must have shape [K >= 1, 4], got {array.shape}")
        as_int = array.astype(np.int64)
        if not np.array_equal(as_int, array):
            raise ValueError(f"boxes of image {i} must hold integer pixel coordinates, got {array.tolist()}")
        if (as_int[:, 2] < as_int[:, 0]).any() or (as_int[:, 3] < as_int[:, 1]).any():
            raise ValueError(f"boxes of image {i} must satisfy x1 >= x0 and y1 >= y0, got {as_int.tolist()}")
        arrays.append(as_int)
    offsets = np.zeros(n_maps + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(a) for a in arrays])
    gt = np.concatenate(arrays) if arrays else np.zeros((0, 4), dtype=np.int64)
    return np.ascontiguousarray(gt), offsets


def threshold_hits(
    cams: torch.Tensor | np.ndarray,
    boxes: BoxesLike,
    thresholds: np.ndarray,
    iou_thresholds: Sequence[int],
    multi_contour: bool,
) -> np.ndarray:
    """Per image, IoU threshold and CAM threshold: does some estimated box hit some GT box?

    The per-image core of the reference ``BoxEvaluator.accumulate`` (issue 2, definitions 1-4):
    normalize, quantize, cut at ``int(t * max(q))``, take the boxes of every contour (or of the
    largest only), and test ``IoU >= delta / 100`` exactly against every GT box.

    Args:
        cams: raw maps ``[N, H, W]`` at the evaluated size (any float dtype; computed in float64).
        boxes: N sets of GT boxes ``[K_i, 4]``, inclusive ``x0, y0, x1, y1`` in that frame.
        thresholds: CAM thresholds ``[K]`` (see :func:`cam_thresholds`).
        iou_thresholds: IoU thresholds in percent ``[D]``.
        multi_contour: boxes of every contour (V2) or of the largest contour only (v1).

    Returns:
        bool ``[N, D, K]``.
    """
    from wsol_lightning.metrics.boxes import level_hit_masks, quantize_maps  # numba: loaded on first use

    maps = as_numpy_float64(cams)
    if maps.ndim != 3 or 0 in maps.shape[1:]:
        raise ValueError(f"cams must have shape [N, H, W] with H, W >= 1, got {tuple(maps.shape)}")
    gt, offsets = _gt_boxes(boxes, len(maps))
    deltas = np.asarray(_iou_thresholds(iou_thresholds), dtype=np.int64)
    if len(maps) == 0:
        return np.zeros((0, len(deltas), len(thresholds)), dtype=bool)
    quantized, status = quantize_maps(maps)
    if (status == 2).any():
        raise ValueError("a CAM contains +-inf; only NaN maps (set to zeros) and finite maps are accepted")
    masks = level_hit_masks(quantized, gt, offsets, deltas, bool(multi_contour))
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if len(thresholds) == 0:
        return np.zeros((len(maps), len(deltas), 0), dtype=bool)
    # Bits as bool [N, D, 256], read at each map's cuts. Maps of one maximum (255 unless all zero)
    # share their cuts, which come in runs of equal values (10 000 thresholds, 256 levels): gather
    # each run's level once and repeat it.
    levels = ((masks[:, None, :] >> np.arange(len(deltas))[:, None]) & 1).astype(bool)
    tops = quantized.reshape(len(maps), -1).max(axis=1)
    hits = None
    for top in np.unique(tops):
        cuts = threshold_cuts(thresholds, top[None])[0]
        starts = np.flatnonzero(np.concatenate(([True], cuts[1:] != cuts[:-1])))
        runs = np.diff(np.append(starts, len(cuts)))
        if hits is None and (tops == top).all():
            return np.repeat(levels[:, :, cuts[starts]], runs, axis=2)
        if hits is None:
            hits = np.empty((len(maps), len(deltas), len(thresholds)), dtype=bool)
        rows = tops == top
        hits[rows] = np.repeat(levels[rows][:, :, cuts[starts]], runs, axis=2)
    return hits


def _first_argmax(values: torch.Tensor) -> int:
    """Index of the first maximum (the reference's ties go to the lowest threshold)."""
    return int(np.argmax(values.detach().cpu().numpy()))


class MaxBoxAccV2(Metric):
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

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 100.0

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
        self.iou_thresholds = _iou_thresholds(iou_thresholds)
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

    def update_from_hits(self, hits: np.ndarray) -> None:
        """Accumulate a batch already scored by :func:`threshold_hits` (same states as :meth:`update`).

        Lets several metrics that evaluate the same maps with the same settings share one box
        kernel run (the evaluation step feeds GT-known, Top-1 and Top-5 Loc this way).

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


class TopOneLoc(Metric):
    """Top-1 localization accuracy in percent: class right AND box IoU >= 0.5, at one CAM threshold.

    ``update(cams, boxes, correct)`` takes the ground-truth class's maps and ``correct[i]`` =
    "the top-1 prediction of image i is its label" (when it is right, the GT-class map is the
    predicted class's map). The same class with ``correct = label in top-5 predictions`` gives
    Top-5 Loc. ``threshold="gt_known"`` (default) reports the value at GT-known Loc's optimal CAM
    threshold (lowest on ties); ``threshold="own"`` takes Top-1 Loc's own maximum over thresholds
    (the wsolevaluation maintainers' answer in their issues 14 and 50).

    States: ``gt_known_hits`` and ``hits`` int64 ``[len(thresholds)]``, ``count`` int64, summed
    across processes. ``compute()`` with no image raises ``RuntimeError``.

    Args:
        cam_curve_interval: CAM threshold step (see :class:`MaxBoxAccV2`).
        multi_contour: boxes of every contour instead of the largest only.
        threshold: ``"gt_known"`` or ``"own"``.
        kwargs: torchmetrics ``Metric`` options.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 100.0

    gt_known_hits: torch.Tensor
    hits: torch.Tensor
    count: torch.Tensor

    def __init__(
        self,
        cam_curve_interval: float = 0.01,
        multi_contour: bool = False,
        threshold: Literal["gt_known", "own"] = "gt_known",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if threshold not in ("gt_known", "own"):
            raise ValueError(f"threshold must be 'gt_known' or 'own', got {threshold!r}")
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
            raise RuntimeError("TopOneLoc.compute() needs at least one image; none was given")
        return self.hits[self._best_index()].double() * 100.0 / float(self.count)

    def best_threshold(self) -> torch.Tensor:
        """The CAM threshold the value is read at (0-dim float64), synchronized across processes."""
        with self.sync_context():
            best = self._best_index()
        return torch.tensor(self.thresholds[best], dtype=torch.float64)
