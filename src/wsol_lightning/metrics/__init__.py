"""WSOL localization metrics, computed exactly as wsolevaluation (Choe et al., CVPR 2020) does.

Metrics (torchmetrics, DDP-exact integer states, ``compute()`` in percent): :class:`MaxBoxAccV2`
(also MaxBoxAcc v1), :class:`GTKnownLoc`, :class:`TopOneLoc` (also Top-5 Loc) and :class:`PxAP`.
The map operations they are built on (resize, normalize, quantize, boxes, the threshold sweep)
live in :mod:`wsol_lightning.cam`.
"""

from wsol_lightning.metrics.localization import GTKnownLoc, MaxBoxAccV2, TopOneLoc
from wsol_lightning.metrics.pxap import PxAP

__all__ = ["GTKnownLoc", "MaxBoxAccV2", "PxAP", "TopOneLoc"]
