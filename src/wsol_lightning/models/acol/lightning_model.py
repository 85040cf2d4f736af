"""ACoL LightningModule."""

from __future__ import annotations

from typing import Any, Literal

import torch

from wsol_lightning.models.acol.loss import acol_losses
from wsol_lightning.models.acol.torch_model import ACoLNet, VGGPooling
from wsol_lightning.models.base import WSOLModule


class ACoL(WSOLModule):
    """Adversarial Complementary Learning (Zhang et al., CVPR 2018).

    Training erases with A's map of the GT class; ``L = CE(A) + CE(B)``. Evaluation: logits from
    A; the map of class ``c`` is ``max(norm(M^A_c), norm(M^B_c))`` with B erased by A's map of
    ``c``. The shared evaluation passes the GT class (GT-known, MaxBoxAccV2; Top-1 Loc counts only
    images whose top-1 class is the GT class, so the map is that of the predicted class); predict
    passes A's top-1 class.

    Args:
        erase_threshold: ``delta`` in (0, 1] (paper / official scripts 0.6; wsolevaluation 0.7).
        erasing: ``False`` disables the erasing (ablation: B sees the full feature).
        feature_smoothing: 3x3/s1 average pool on the backbone feature; ``None``: VGG16 only.
        vgg_pooling: ``"acol"`` (ACoL's 3x3 max-pools and the stride-1 pool after conv5_3, both code
            bases) or ``"torchvision"`` (the CAM backbone's 2x2 pools); VGG16 only.
        head_init: init of the heads' convs: ``None`` = the code bases' choice (He on ResNet as
            wsolevaluation, Xavier otherwise); ``"xavier"`` or ``"he"`` to force one. He's fan-out
            init of the final 1x1 conv gives very large initial logits when there are few classes.
        **kwargs: the shared options of :class:`~wsol_lightning.models.base.WSOLModule`.
    """

    def __init__(
        self,
        erase_threshold: float = 0.6,
        erasing: bool = True,
        feature_smoothing: bool | None = None,
        vgg_pooling: VGGPooling = "acol",
        head_init: Literal["xavier", "he"] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)

    def build_model(self) -> ACoLNet:
        hp = self.hparams
        return ACoLNet(
            hp.backbone,
            hp.num_classes,
            hp.pretrained,
            hp.large_feature_map,
            erase_threshold=hp.erase_threshold,
            erasing=hp.erasing,
            feature_smoothing=hp.feature_smoothing,
            vgg_pooling=hp.vgg_pooling,
            head_init=hp.head_init,
        )

    def training_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        return acol_losses(self.model(batch["image"], batch["label"]), batch["label"])

    def localization_maps(
        self, images: torch.Tensor, classes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.localization_maps(images, classes)
