"""Per-image hits of estimated boxes at every CAM threshold: the entry point of the box sweep.

:func:`threshold_hits` is the per-image core of wsolevaluation's ``BoxEvaluator.accumulate``
(issue 2, definitions 1-4); every box metric accumulates its output. The numba kernels of
:mod:`wsol_lightning.cam.sweep` are imported on the first call, so importing the package stays light.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from wsol_lightning.cam.maps import as_numpy_float64, threshold_cuts

BoxesLike = Sequence[torch.Tensor | np.ndarray | Sequence[Sequence[int]]] | torch.Tensor | np.ndarray


def validate_iou_thresholds(values: Sequence[int]) -> tuple[int, ...]:
    """Validate IoU thresholds: 1 to 63 integers in [0, 100] (percent)."""
    deltas = tuple(values)
    if not deltas or len(deltas) > 63 or any(int(d) != d or not 0 <= d <= 100 for d in deltas):
        raise ValueError(f"iou_thresholds must be 1 to 63 integers in [0, 100], got {values}")
    return tuple(int(d) for d in deltas)


def gt_box_arrays(boxes: BoxesLike, n_maps: int) -> tuple[np.ndarray, np.ndarray]:
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
    from wsol_lightning.cam.sweep import level_hit_masks  # numba: loaded on first use

    maps = as_numpy_float64(cams)
    if maps.ndim != 3 or 0 in maps.shape[1:]:
        raise ValueError(f"cams must have shape [N, H, W] with H, W >= 1, got {tuple(maps.shape)}")
    gt, offsets = gt_box_arrays(boxes, len(maps))
    deltas = np.asarray(validate_iou_thresholds(iou_thresholds), dtype=np.int64)
    if len(maps) == 0:
        return np.zeros((0, len(deltas), len(thresholds)), dtype=bool)
    masks, tops, status = level_hit_masks(maps, gt, offsets, deltas, bool(multi_contour))
    if (status == 2).any():
        raise ValueError("a CAM contains +-inf; only NaN maps (set to zeros) and finite maps are accepted")
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if len(thresholds) == 0:
        return np.zeros((len(maps), len(deltas), 0), dtype=bool)
    # Bits as bool [N, D, 256], read at each map's cuts. Maps of one maximum (255 unless all zero)
    # share their cuts, which come in runs of equal values (10 000 thresholds, 256 levels): gather
    # each run's level once and repeat it.
    levels = ((masks[:, None, :] >> np.arange(len(deltas))[:, None]) & 1).astype(bool)
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
