"""WSOL localization metrics, computed exactly as wsolevaluation (Choe et al., CVPR 2020) does.

Metrics (torchmetrics, DDP-exact integer states, ``compute()`` in percent): :class:`MaxBoxAccV2`
(also MaxBoxAcc v1), :class:`GTKnownLoc`, :class:`TopOneLoc` (also Top-5 Loc) and :class:`PxAP`.
Helpers: :func:`resize_cam` (the reference's float64 bicubic resize), :func:`normalize_cam`,
:func:`quantize_cam`, :func:`cam_thresholds`, :func:`threshold_cuts`, :func:`pxap_bin_edges` and
:func:`threshold_hits` (per-image hits at every CAM threshold).
"""

from wsol_lightning.metrics.functional import (
    cam_thresholds,
    normalize_cam,
    pxap_bin_edges,
    quantize_cam,
    resize_cam,
    threshold_cuts,
)
from wsol_lightning.metrics.localization import GTKnownLoc, MaxBoxAccV2, TopOneLoc, threshold_hits
from wsol_lightning.metrics.pxap import PxAP

__all__ = [
    "GTKnownLoc",
    "MaxBoxAccV2",
    "PxAP",
    "TopOneLoc",
    "cam_thresholds",
    "normalize_cam",
    "pxap_bin_edges",
    "quantize_cam",
    "resize_cam",
    "threshold_cuts",
    "threshold_hits",
]
