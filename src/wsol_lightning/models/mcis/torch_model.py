"""MCIS network: single-image CAM classifier plus co-attention between image pairs.

Sun, Wang, Dai, Van Gool, "Mining Cross-Image Semantics for Weakly Supervised Semantic
Segmentation" (ECCV 2020), applied to localization. The co-attention affinity and both softmaxes
are computed in float32 with autocast disabled.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from wsol_lightning.models.components import build_backbone, global_average


class MCISOutput(NamedTuple):
    logits: torch.Tensor  # [B, C] single-image logits s
    class_maps: torch.Tensor  # [B, C, h, w] single-image class maps (the CAM)
    features: torch.Tensor  # [B, K, h, w] features F the co-attention works on


class CoAttention(NamedTuple):
    affinity: torch.Tensor  # [P, N_m, N_n]  P = F_m^T W F_n
    attention_m: torch.Tensor  # [P, N_m, N_n]  A = softmax over the N_m positions (columns sum to 1)
    attention_n: torch.Tensor  # [P, N_m, N_n]  softmax of P over the N_n positions (rows sum to 1) = B^T
    attended_m: torch.Tensor  # [P, K, h_m, w_m]  F_m' = F_n B (image-m layout, made of image-n features)
    attended_n: torch.Tensor  # [P, K, h_n, w_n]  F_n' = F_m A


class PairOutput(NamedTuple):
    coattention_logits_m: torch.Tensor  # [P, C] s^co_m
    coattention_logits_n: torch.Tensor  # [P, C] s^co_n
    coattention_maps_m: torch.Tensor  # [P, C, h_m, w_m] conv_g(F_m')
    coattention_maps_n: torch.Tensor  # [P, C, h_n, w_n]
    contrastive_logits_m: torch.Tensor  # [P, C] s^c_m from F_m * (1 - G_m)
    contrastive_logits_n: torch.Tensor  # [P, C]


def coattention(features_m: torch.Tensor, features_n: torch.Tensor, weight: torch.Tensor) -> CoAttention:
    """Co-attention of paired feature maps ``[P, K, h, w]`` (MCIS Eq. 1-3, float32).

    ``P = F_m^T W F_n``; ``A = softmax_{N_m}(P)``, ``B = softmax_{N_n}(P^T)``;
    ``F_n' = F_m A`` and ``F_m' = F_n B``.
    """
    height_m, width_m = features_m.shape[-2:]
    height_n, width_n = features_n.shape[-2:]
    with torch.autocast(device_type=features_m.device.type, enabled=False):
        flat_m = features_m.flatten(2).float()
        flat_n = features_n.flatten(2).float()
        affinity = torch.einsum("pki,kl,plj->pij", flat_m, weight.float(), flat_n)
        attention_m = affinity.softmax(dim=1)
        attention_n = affinity.softmax(dim=2)
        attended_n = torch.einsum("pki,pij->pkj", flat_m, attention_m)
        attended_m = torch.einsum("pkj,pij->pki", flat_n, attention_n)
    return CoAttention(
        affinity,
        attention_m,
        attention_n,
        attended_m.unflatten(2, (height_m, width_m)),
        attended_n.unflatten(2, (height_n, width_n)),
    )


def _init_conv(conv: nn.Conv2d) -> None:
    """The official code's init of new convs: ``N(0, sqrt(2 / (k^2 C_out)))``, zero bias."""
    fan_out = conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels
    nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / fan_out))
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class MCISNet(nn.Module):
    """Backbone -> extra convs -> single-image classifier, with the co-attention pair branch.

    Parameters as the official ``VGG_coattention``: ``extra_convs`` (3x3 conv + ReLU, ``width``
    channels), the single-image 1x1 classifier (``extra_last_conv``), the co-attention matrix ``W``
    (``extra_linear_e``, no bias), the 1x1 classifier of co-attended and contrastive features
    (``extra_gate``, no bias) and the class-agnostic 1x1 gate (``extra_gate_merge``, no bias).

    Args:
        backbone: backbone name (see :mod:`wsol_lightning.models.components.backbones`).
        num_classes: number of classes.
        pretrained: load cached ImageNet weights.
        large_feature_map: stride-8 maps (the official VGG16 "D1" is stride 8).
        num_extra_convs: 3x3 convs after the backbone (official: 3).
        width: channels of the extra convs (official: 512).
    """

    def __init__(
        self,
        backbone: str,
        num_classes: int,
        pretrained: bool = False,
        large_feature_map: bool = False,
        num_extra_convs: int = 3,
        width: int = 512,
    ) -> None:
        super().__init__()
        if num_extra_convs < 0:
            raise ValueError(f"num_extra_convs must be >= 0, got {num_extra_convs}")
        self.backbone = build_backbone(backbone, pretrained, large_feature_map)
        layers: list[nn.Module] = []
        channels = self.backbone.out_channels
        for _ in range(num_extra_convs):
            conv = nn.Conv2d(channels, width, 3, padding=1)
            _init_conv(conv)
            layers += [conv, nn.ReLU(inplace=True)]
            channels = width
        self.extra_convs = nn.Sequential(*layers)
        self.single_classifier = nn.Conv2d(channels, num_classes, 1)
        self.coattention_classifier = nn.Conv2d(channels, num_classes, 1, bias=False)
        self.common_gate = nn.Conv2d(channels, 1, 1, bias=False)
        for conv in (self.single_classifier, self.coattention_classifier, self.common_gate):
            _init_conv(conv)
        self.coattention_weight = nn.Parameter(torch.empty(channels, channels))
        nn.init.kaiming_uniform_(self.coattention_weight, a=math.sqrt(5))  # nn.Linear's init

    def forward(self, images: torch.Tensor) -> MCISOutput:
        features = self.extra_convs(self.backbone(images))
        maps = self.single_classifier(features)
        return MCISOutput(global_average(maps), maps, features)

    def pair_forward(self, features_m: torch.Tensor, features_n: torch.Tensor) -> PairOutput:
        """Co-attention (Eq. 4) and contrastive co-attention (Eq. 5-6) logits of paired features."""
        attended = coattention(features_m, features_n, self.coattention_weight)
        maps_m = self.coattention_classifier(attended.attended_m)
        maps_n = self.coattention_classifier(attended.attended_n)
        contrastive_m = features_m * (1 - torch.sigmoid(self.common_gate(attended.attended_m)))
        contrastive_n = features_n * (1 - torch.sigmoid(self.common_gate(attended.attended_n)))
        return PairOutput(
            global_average(maps_m),
            global_average(maps_n),
            maps_m,
            maps_n,
            global_average(self.coattention_classifier(contrastive_m)),
            global_average(self.coattention_classifier(contrastive_n)),
        )
