"""CAM network: backbone, the wsolevaluation neck, GAP + linear classifier (Zhou et al., CVPR 2016)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from wsol_lightning.models.components import Backbone, CAMClassifier, as_backbone, build_cam_neck
from wsol_lightning.models.components.network import LocalizationNetwork, LocalizationOutput, top1_classes


class CAMOutput(NamedTuple):
    logits: torch.Tensor  # [B, C]
    features: torch.Tensor  # [B, K, h, w], the map the CAM is read from


class CAMNet(LocalizationNetwork):
    """Backbone -> neck -> GAP -> linear; ``CAM_c = sum_k w_ck F_k`` (CAM paper, Eq. 2).

    Args:
        backbone, num_classes: see :class:`~wsol_lightning.models.components.LocalizationNetwork`.
    """

    def __init__(self, backbone: Backbone | str, num_classes: int) -> None:
        super().__init__()
        self.backbone = as_backbone(backbone)
        self.neck, channels = build_cam_neck(self.backbone.name, self.backbone.out_channels)
        self.classifier = CAMClassifier(channels, num_classes)

    def forward(self, images: torch.Tensor) -> CAMOutput:
        features = self.neck(self.backbone(images))
        return CAMOutput(self.classifier(features), features)

    def class_maps(self, features: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        return self.classifier.class_maps(features, classes)

    def localize(self, images: torch.Tensor, classes: torch.Tensor | None = None) -> LocalizationOutput:
        """Logits and the CAM of ``classes[b]`` (default: the top-1 class)."""
        out = self(images)
        classes = top1_classes(out.logits, classes)
        return LocalizationOutput(out.logits, self.class_maps(out.features, classes), classes)

    def localize_all_classes(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the CAM of every class, in one pass."""
        out = self(images)
        return out.logits, self.class_maps(out.features)
