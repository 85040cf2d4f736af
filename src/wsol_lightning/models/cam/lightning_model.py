"""CAM baseline LightningModule."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from wsol_lightning.models.base import WSOLModule
from wsol_lightning.models.cam.torch_model import CAMNet


class CAM(WSOLModule):
    """Class activation mapping (Zhou et al., CVPR 2016): cross-entropy only; the map is the CAM.

    Args:
        **kwargs: the shared options of :class:`~wsol_lightning.models.base.WSOLModule`.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def build_model(self) -> CAMNet:
        hp = self.hparams
        return CAMNet(hp.backbone, hp.num_classes, hp.pretrained, hp.large_feature_map)

    def training_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"ce": F.cross_entropy(self.model(batch["image"]).logits, batch["label"])}
