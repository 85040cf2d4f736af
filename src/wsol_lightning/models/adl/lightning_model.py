"""ADL LightningModule: the CAM recipe with attention-based dropout layers in training."""

from __future__ import annotations

from typing import Any

import torch

from wsol_lightning.models.adl.loss import adl_classification_loss
from wsol_lightning.models.adl.torch_model import ADLNet
from wsol_lightning.models.base import WSOLModule
from wsol_lightning.models.components.adl import DrawMode


class ADL(WSOLModule):
    """Attention-based Dropout Layer (Choe & Shim, CVPR 2019): CAM trained with ADL layers inserted.

    Training loss is cross-entropy; ADL is the identity at evaluation, so the localization map is
    the CAM of the GAP classifier (the base's default).

    Args:
        adl_positions: backbone unit names after which ADL is inserted (``"neck"``: after the
            neck); ``None``: wsolevaluation's positions per backbone (vgg16 pool3, conv4, conv5;
            resnet50 layer3_0, layer4_0, layer4_2; resnet18 layer3_0, layer4_0, layer4_1;
            inception_v3 Mixed_5d, Mixed_6e, neck).
        drop_rate: probability of the drop mask per draw (paper/official/wsolevaluation: 0.75).
        drop_threshold: ``gamma``: positions with channel-mean attention ``>= gamma * max`` are
            dropped (official script and wsolevaluation config: 0.9; wsolevaluation class
            default 0.8).
        draw: ``"batch"``: one draw per layer per step for the whole batch (official);
            ``"sample"``: one per image (a variant).
        **kwargs: the shared options of :class:`~wsol_lightning.models.base.WSOLModule`.
    """

    def __init__(
        self,
        adl_positions: list[str] | None = None,
        drop_rate: float = 0.75,
        drop_threshold: float = 0.9,
        draw: DrawMode = "batch",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)

    def build_model(self) -> ADLNet:
        hp = self.hparams
        return ADLNet(
            hp.backbone,
            hp.num_classes,
            hp.pretrained,
            hp.large_feature_map,
            adl_positions=hp.adl_positions,
            drop_rate=hp.drop_rate,
            drop_threshold=hp.drop_threshold,
            draw=hp.draw,
        )

    def training_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return {"ce": adl_classification_loss(self.model(batch["image"]).logits, batch["label"])}
