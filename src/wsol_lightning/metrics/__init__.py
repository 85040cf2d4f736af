"""WSOL localization metrics, computed exactly as wsolevaluation (Choe et al., CVPR 2020) does.

Metrics (torchmetrics, DDP-exact integer states, ``compute()`` in percent): :class:`MaxBoxAccV2`
(also MaxBoxAcc v1), :class:`GTKnownLoc`, :class:`TopKLoc` (Top-1 / Top-5 Loc), :class:`PxAP`,
:class:`UnionBoxLoc` (SPA's and DANet's union-box protocol) and the diagnostics of
:mod:`wsol_lightning.metrics.diagnostics`. The :class:`Evaluator` holds them per stage. The map operations they are built on (resize, normalize,
quantize, boxes, the threshold sweep) live in :mod:`wsol_lightning.cam`.
"""

from wsol_lightning.metrics.evaluator import EvaluationMetric, EvaluationStep, Evaluator
from wsol_lightning.metrics.localization import GTKnownLoc, MaxBoxAccV2, TopKLoc, UnionBoxLoc
from wsol_lightning.metrics.pxap import PxAP

__all__ = [
    "EvaluationMetric",
    "EvaluationStep",
    "Evaluator",
    "GTKnownLoc",
    "MaxBoxAccV2",
    "PxAP",
    "TopKLoc",
    "UnionBoxLoc",
]
