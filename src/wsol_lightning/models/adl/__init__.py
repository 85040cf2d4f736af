"""ADL: Attention-based Dropout Layer for Weakly Supervised Object Localization (Choe & Shim, CVPR 2019)."""

from wsol_lightning.models.adl.lightning_model import ADL
from wsol_lightning.models.adl.torch_model import DEFAULT_ADL_POSITIONS, ADLNet

__all__ = ["ADL", "ADLNet", "DEFAULT_ADL_POSITIONS"]
