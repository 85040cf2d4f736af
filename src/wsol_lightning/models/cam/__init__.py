"""CAM: Learning Deep Features for Discriminative Localization (Zhou et al., CVPR 2016)."""

from wsol_lightning.models.cam.lightning_model import CAM
from wsol_lightning.models.cam.torch_model import CAMNet, CAMOutput

__all__ = ["CAM", "CAMNet", "CAMOutput"]
