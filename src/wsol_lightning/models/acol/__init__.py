"""ACoL: Adversarial Complementary Learning for WSOL (Zhang et al., CVPR 2018)."""

from wsol_lightning.models.acol.lightning_model import ACoL
from wsol_lightning.models.acol.torch_model import (
    ACoLClassifier,
    ACoLNet,
    ACoLOutput,
    erase_mask,
    fused_localization_map,
)

__all__ = ["ACoL", "ACoLClassifier", "ACoLNet", "ACoLOutput", "erase_mask", "fused_localization_map"]
