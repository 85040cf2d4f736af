"""CutMix (Yun et al., ICCV 2019), as in wsolevaluation (Choe et al., CVPR 2020)."""

from wsol_lightning.models.cutmix.lightning_model import CutMix
from wsol_lightning.models.cutmix.loss import cutmix_cross_entropy

__all__ = ["CutMix", "cutmix_cross_entropy"]
