"""Classifier heads shared by the CAM family (wsolevaluation §4 of the CAM note)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CAMClassifier(nn.Module):
    """GAP followed by a linear layer, with class activation maps read from the same weights.

    Because GAP and a linear layer commute, ``CAM_c = sum_k w_ck F_k`` is the class-``c`` channel
    of the linear layer applied before GAP (Zhou et al., CVPR 2016, Eq. 2). The bias is left out of
    the map: a constant shift that the min-max normalization removes.
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features.mean(dim=(2, 3)))

    def class_maps(self, features: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
        """Maps of the given class per image ``[B, h, w]``, or of every class ``[B, C, h, w]``."""
        if classes is None:
            return torch.einsum("bkhw,ck->bchw", features, self.fc.weight)
        return torch.einsum("bkhw,bk->bhw", features, self.fc.weight[classes])


def build_cam_neck(backbone: str, in_channels: int) -> tuple[nn.Module, int]:
    """The layers wsolevaluation adds between backbone and classifier, and their output channels.

    VGG16: conv6 (3x3, 1024) + ReLU. ResNet: none. InceptionV3: dropout, two 3x3 convs (1024) with
    ReLU and dropout (the SPG-style head, dropout active in training only).
    """
    if backbone == "vgg16":
        conv = nn.Conv2d(in_channels, 1024, 3, padding=1)
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(conv.bias)
        return nn.Sequential(conv, nn.ReLU(inplace=True)), 1024
    if backbone == "inception_v3":
        convs = [nn.Conv2d(in_channels, 1024, 3, padding=1), nn.Conv2d(1024, 1024, 3, padding=1)]
        for conv in convs:
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)
        neck = nn.Sequential(
            nn.Dropout(0.5), convs[0], nn.ReLU(inplace=True), nn.Dropout(0.5), convs[1], nn.ReLU(inplace=True),
            nn.Dropout(0.5),
        )
        return neck, 1024
    return nn.Identity(), in_channels


def gather_class_maps(maps: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Pick ``maps[b, classes[b]]`` from ``[B, C, h, w]`` class maps."""
    return maps[torch.arange(maps.shape[0], device=maps.device), classes]


def global_average(maps: torch.Tensor) -> torch.Tensor:
    """Spatial mean ``[B, C, h, w] -> [B, C]`` (logits of class-map heads)."""
    return F.adaptive_avg_pool2d(maps, 1).flatten(1)
