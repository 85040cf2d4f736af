"""CAM network: backbone, the wsolevaluation neck, GAP + linear classifier (Zhou et al., CVPR 2016)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from wsol_lightning.models.components import CAMClassifier, build_backbone, build_cam_neck


class CAMOutput(NamedTuple):
    logits: torch.Tensor  # [B, C]
    features: torch.Tensor  # [B, K, h, w], the map the CAM is read from


class CAMNet(nn.Module):
    """Backbone -> neck -> GAP -> linear; ``CAM_c = sum_k w_ck F_k`` (CAM paper, Eq. 2).

    Args:
        backbone: backbone name (see :mod:`wsol_lightning.models.components.backbones`).
        num_classes: number of classes.
        pretrained: load cached ImageNet weights.
        large_feature_map: 28x28 instead of 14x14 maps at 224 px.
    """

    def __init__(self, backbone: str, num_classes: int, pretrained: bool = False, large_feature_map: bool = False):
        super().__init__()
        self.backbone = build_backbone(backbone, pretrained, large_feature_map)
        self.neck, channels = build_cam_neck(backbone, self.backbone.out_channels)
        self.classifier = CAMClassifier(channels, num_classes)

    def forward(self, images: torch.Tensor) -> CAMOutput:
        features = self.neck(self.backbone(images))
        return CAMOutput(self.classifier(features), features)

    def class_maps(self, features: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        return self.classifier.class_maps(features, classes)
