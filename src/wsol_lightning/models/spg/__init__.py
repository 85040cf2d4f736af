"""SPG: Self-produced Guidance for Weakly-supervised Object Localization (Zhang et al., ECCV 2018)."""

from wsol_lightning.models.spg.lightning_model import SPG
from wsol_lightning.models.spg.loss import (
    IGNORE,
    SeedThresholds,
    attention_map,
    guidance_bce,
    seed_mask,
    spg_losses,
)
from wsol_lightning.models.spg.torch_model import DEFAULT_GUIDANCE_UNITS, SPGNet, SPGOutput

__all__ = [
    "DEFAULT_GUIDANCE_UNITS",
    "IGNORE",
    "SPG",
    "SPGNet",
    "SPGOutput",
    "SeedThresholds",
    "attention_map",
    "guidance_bce",
    "seed_mask",
    "spg_losses",
]
