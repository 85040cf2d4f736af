"""ADL LightningModule: the CAM recipe with attention-based dropout layers in training."""

from __future__ import annotations

from typing import Any

import torch

from wsol_lightning.data.batch import WSOLBatch
from wsol_lightning.models.adl.loss import adl_classification_loss
from wsol_lightning.models.adl.torch_model import ADLNet
from wsol_lightning.models.base import WSOLModule
from wsol_lightning.models.components.adl import DrawMode
from wsol_lightning.models.search_space import LR, unit


class ADL(WSOLModule):
    """Attention-based Dropout Layer (Choe & Shim, CVPR 2019): CAM trained with ADL layers inserted.

    Training loss is cross-entropy; ADL is the identity at evaluation, so the localization map is
    the CAM of the GAP classifier (the base's default).

    Args:
        backbone_units: backbone units after which ADL is inserted (``"neck"``: after the neck);
            ``None``: wsolevaluation's positions per backbone (vgg16 pool3, conv4, conv5; resnet50
            layer3_0, layer4_0, layer4_2; resnet18 layer3_0, layer4_0, layer4_1; inception_v3
            Mixed_5d, Mixed_6e, neck).
        apply_prob: the drop rate: probability of the drop mask (vs the importance map) per draw
            (paper/official/wsolevaluation: 0.75).
        foreground_threshold: ``gamma``: positions with channel-mean attention ``>= gamma * max`` are
            dropped (official script and wsolevaluation config: 0.9; wsolevaluation class
            default 0.8).
        draw: ``"batch"``: one draw per layer per step for the whole batch (official);
            ``"sample"``: one per image (a variant).
        pretrained_classifier: start the classifier from the pretrained backbone's ImageNet classifier
            (see :class:`~wsol_lightning.models.cam.CAM`; wsolevaluation keeps it for ILSVRC ResNet50).
        **kwargs: the shared options of :class:`~wsol_lightning.models.base.WSOLModule`.
    """

    SEARCH_SPACE = (LR, unit("apply_prob", "drop rate (wsolevaluation: U[0, 1])"),
                    unit("foreground_threshold", "gamma, erasing threshold (wsolevaluation: U[0, 1])"))

    def __init__(
        self,
        backbone_units: list[str] | None = None,
        apply_prob: float = 0.75,
        foreground_threshold: float = 0.9,
        draw: DrawMode = "batch",
        pretrained_classifier: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)

    def build_model(self) -> ADLNet:
        return ADLNet(**self.network_options(ADLNet))

    def training_losses(self, batch: WSOLBatch) -> dict[str, torch.Tensor]:
        return {"ce": adl_classification_loss(self.model(batch.image).logits, batch.label)}
