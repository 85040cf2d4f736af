"""ACoL LightningModule."""

from __future__ import annotations

from typing import Any, Literal

import torch

from wsol_lightning.data.batch import WSOLBatch
from wsol_lightning.models.acol.loss import acol_losses
from wsol_lightning.models.acol.torch_model import ACoLNet
from wsol_lightning.models.base import WSOLModule
from wsol_lightning.models.components.backbones import VGGPooling
from wsol_lightning.models.search_space import LR, unit


class ACoL(WSOLModule):
    """Adversarial Complementary Learning (Zhang et al., CVPR 2018).

    Training erases with A's map of the GT class; ``L = CE(A) + CE(B)``. Evaluation: logits from
    A; the map of class ``c`` is ``max(norm(M^A_c), norm(M^B_c))`` with B erased by A's map of
    ``c``. The shared evaluation passes the GT class (GT-known, MaxBoxAccV2; Top-1 Loc counts only
    images whose top-1 class is the GT class, so the map is that of the predicted class); predict
    passes A's top-1 class.

    Args:
        foreground_threshold: the erase threshold ``delta`` in (0, 1]: positions whose normalized A-map
            is ``>= delta`` are erased for B (paper / official scripts 0.6; wsolevaluation 0.7).
        erasing: ``False`` disables the erasing (ablation: B sees the full feature).
        feature_smoothing: 3x3/s1 average pool on the backbone feature; ``None``: VGG16 only.
        vgg_pooling: VGG16 only. ``"acol"``: the max-pools of ACoL's VGG in both code bases:
            pool1-pool3 3x3/s2/p1, pool4 3x3/s2/p1 (14x14) or 3x3/s1/p1 (28x28), and an extra
            3x3/s1/p1 max-pool after conv5_3; ``"torchvision"``: the CAM backbone's 2x2 pools.
        head_init: init of the heads' convs: ``None`` = the code bases' choice (He on ResNet as
            wsolevaluation, Xavier otherwise); ``"xavier"`` or ``"he"`` to force one. He's fan-out
            init of the final 1x1 conv gives very large initial logits when there are few classes.
        head_width: channels of each classifier's two 3x3 convs (paper: 1024).
        **kwargs: the shared options of :class:`~wsol_lightning.models.base.WSOLModule`.
    """

    SEARCH_SPACE = (LR, unit("foreground_threshold", "erase threshold delta (wsolevaluation: U[0, 1])", low=0.05))

    def __init__(
        self,
        foreground_threshold: float = 0.6,
        erasing: bool = True,
        feature_smoothing: bool | None = None,
        vgg_pooling: VGGPooling = "acol",
        head_init: Literal["xavier", "he"] | None = None,
        head_width: int = 1024,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)

    def build_model(self) -> ACoLNet:
        return ACoLNet(**self.network_options(ACoLNet))

    def training_losses(self, batch: WSOLBatch) -> dict[str, torch.Tensor]:
        return acol_losses(self.model(batch.image, batch.label), batch.label)
