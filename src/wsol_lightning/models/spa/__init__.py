"""SPA: Unveiling the Potential of Structure Preserving for WSOL (Pan et al., CVPR 2021)."""

from wsol_lightning.models.spa.lightning_model import SPA
from wsol_lightning.models.spa.loss import restricted_activation_loss, restricted_activation_masks
from wsol_lightning.models.spa.torch_model import (
    DEFAULT_SCG_TAPS,
    SelfCorrelationGenerator,
    SPANet,
    SPAOutput,
    default_scg_taps,
    same_class_partners,
)

__all__ = [
    "DEFAULT_SCG_TAPS",
    "SPA",
    "SPANet",
    "SPAOutput",
    "SelfCorrelationGenerator",
    "default_scg_taps",
    "restricted_activation_loss",
    "restricted_activation_masks",
    "same_class_partners",
]
