"""CAM network: backbone, the wsolevaluation neck, GAP + linear classifier (Zhou et al., CVPR 2016)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from wsol_lightning.errors import ConfigError
from wsol_lightning.models.components import Backbone, CAMClassifier, as_backbone, build_cam_neck
from wsol_lightning.models.components.network import LocalizationNetwork, LocalizationOutput, top1_classes


class CAMOutput(NamedTuple):
    logits: torch.Tensor  # [B, C]
    features: torch.Tensor  # [B, K, h, w], the map the CAM is read from


class CAMNet(LocalizationNetwork):
    """Backbone -> neck -> GAP -> linear; ``CAM_c = sum_k w_ck F_k`` (CAM paper, Eq. 2).

    Args:
        backbone, num_classes: see :class:`~wsol_lightning.models.components.LocalizationNetwork`.
        pretrained_classifier: see :class:`~wsol_lightning.models.cam.CAM`.
    """

    def __init__(self, backbone: Backbone | str, num_classes: int, pretrained_classifier: bool = False) -> None:
        super().__init__()
        self.backbone = as_backbone(backbone)
        self.neck, channels = build_cam_neck(self.backbone.name, self.backbone.out_channels)
        self.classifier = CAMClassifier(channels, num_classes)
        if pretrained_classifier:
            self._load_imagenet_classifier(num_classes, channels)

    def _load_imagenet_classifier(self, num_classes: int, channels: int) -> None:
        """Start from the pretrained backbone's own ImageNet classifier (same GAP + linear form)."""
        imagenet = self.backbone.imagenet_classifier
        if imagenet is None or not isinstance(self.neck, nn.Identity):
            raise ConfigError(
                f"pretrained_classifier: true needs a pretrained backbone whose ImageNet classifier reads its "
                f"last features (resnet50, resnet18, efficientnet_lite0, timm/<name> with pretrained: true); "
                f"{self.backbone.name} with pretrained={imagenet is not None} has none"
            )
        weight, bias = imagenet
        if num_classes != weight.shape[0] or channels != weight.shape[1]:
            raise ConfigError(
                f"pretrained_classifier: true keeps the {weight.shape[0]}-class ImageNet classifier, but num_classes "
                f"is {num_classes} (use the ILSVRC dataset, or data.dataset ImageNetClasses for predict)"
            )
        with torch.no_grad():
            self.classifier.fc.weight.copy_(weight)
            self.classifier.fc.bias.copy_(bias)

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
