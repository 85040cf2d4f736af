"""The map -> normalize -> threshold -> box -> IoU path, written once (no Lightning, no models).

Everything that turns a localization map into a score or a box goes through this package: the
metrics, the diagnostics, the CAM visualizer, the prediction writer, export's documentation and
the notebooks. Each step follows wsolevaluation (Choe et al., CVPR 2020) exactly:

* :mod:`wsol_lightning.cam.maps`: float64 bicubic resize, min-max normalization (numpy, and the
  differentiable torch form the methods use; one rule for NaN and constant maps: all zeros),
  uint8 quantization, the CAM thresholds and their integer cuts.
* :mod:`wsol_lightning.cam.boxes`: the boxes of a map at one threshold (largest contour, every
  contour, or the union of all foreground pixels) and inclusive-pixel IoU.
* :mod:`wsol_lightning.cam.hits`: per image, which IoU thresholds some box reaches at every CAM
  threshold at once (what the box metrics accumulate), computed by the numba kernels of
  :mod:`wsol_lightning.cam.sweep`.
"""

from wsol_lightning.cam.boxes import (
    BoxRule,
    box_coverage,
    box_iou,
    cam_to_boxes,
    foreground_mask,
    union_box_hits,
    union_boxes,
)
from wsol_lightning.cam.hits import gt_box_arrays, threshold_hits
from wsol_lightning.cam.maps import (
    as_numpy_float64,
    cam_thresholds,
    max_normalize,
    minmax_normalize,
    normalize_cam,
    pxap_bin_edges,
    quantize_cam,
    resize_cam,
    threshold_cuts,
)

__all__ = [
    "BoxRule",
    "as_numpy_float64",
    "box_coverage",
    "box_iou",
    "cam_thresholds",
    "cam_to_boxes",
    "foreground_mask",
    "gt_box_arrays",
    "max_normalize",
    "minmax_normalize",
    "normalize_cam",
    "pxap_bin_edges",
    "quantize_cam",
    "resize_cam",
    "threshold_cuts",
    "threshold_hits",
    "union_box_hits",
    "union_boxes",
]
