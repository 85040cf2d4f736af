"""MCIS network: single-image CAM classifier plus co-attention between image pairs.

Sun, Wang, Dai, Van Gool, "Mining Cross-Image Semantics for Weakly Supervised Semantic
Segmentation" (ECCV 2020), applied to localization. The co-attention affinity and both softmaxes
are computed in float32 with autocast disabled.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from wsol_lightning.models.components import Backbone, as_backbone, gather_class_maps, global_average
from wsol_lightning.models.components.network import LocalizationNetwork, LocalizationOutput, top1_classes
from wsol_lightning.models.components.options import require


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


class MCISNet(LocalizationNetwork):
    """Backbone -> extra convs -> single-image classifier, with the co-attention pair branch.

    Parameters as the official ``VGG_coattention``: ``extra_convs`` (3x3 conv + ReLU, ``width``
    channels), the single-image 1x1 classifier (``extra_last_conv``), the co-attention matrix ``W``
    (``extra_linear_e``, no bias), the 1x1 classifier of co-attended and contrastive features
    (``extra_gate``, no bias) and the class-agnostic 1x1 gate (``extra_gate_merge``, no bias).

    Args:
        backbone, num_classes: see :class:`~wsol_lightning.models.components.LocalizationNetwork`.
        num_extra_convs: 3x3 convs after the backbone (official: 3).
        head_width: channels of the extra convs (official: 512).
        self_pair_flip, self_pair_scales, localization_map, num_test_partners: see
            :class:`~wsol_lightning.models.mcis.MCIS`.
    """

    def __init__(
        self, backbone: Backbone | str, num_classes: int, num_extra_convs: int = 3, head_width: int = 512,
        self_pair_flip: bool = True, self_pair_scales: tuple[float, ...] = (0.75, 2.0),
        localization_map: Literal["single", "coattention"] = "single", num_test_partners: int = 3,
    ) -> None:
        super().__init__()
        width = head_width
        self.self_pair_flip = self_pair_flip
        self.self_pair_scales = tuple(self_pair_scales)
        self.localization_map = localization_map
        self.num_test_partners = num_test_partners
        require(num_extra_convs >= 0, "num_extra_convs", ">= 0", num_extra_convs)
        self.backbone = as_backbone(backbone)
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

    def self_pair_images(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The partners of the self-pairs: the horizontal flip and the rescaled copies."""
        partners = [images.flip(-1)] if self.self_pair_flip else []
        for scale in self.self_pair_scales:
            size = [max(1, round(side * scale)) for side in images.shape[-2:]]
            partners.append(F.interpolate(images, size=size, mode="bilinear", align_corners=False))
        return partners

    @property
    def maps_depend_on_batch(self) -> bool:
        """Co-attention maps with test partners read the other images of the batch."""
        return self.localization_map == "coattention" and self.num_test_partners > 0

    def localize(self, images: torch.Tensor, classes: torch.Tensor | None = None) -> LocalizationOutput:
        """Logits and the single-image CAM of ``classes[b]``, or its co-attention map (``localization_map``)."""
        out = self(images)
        classes = top1_classes(out.logits, classes)
        if self.localization_map == "single":
            return LocalizationOutput(out.logits, gather_class_maps(out.class_maps, classes), classes)
        return LocalizationOutput(out.logits, self.coattention_maps(images, out.features, classes), classes)

    def localize_all_classes(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.localization_map == "single":
            out = self(images)
            return out.logits, out.class_maps
        return super().localize_all_classes(images)

    def coattention_maps(self, images: torch.Tensor, features: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """The official test script's co-attention map of ``classes`` (MCIS_wsss ``Classifier/scripts/test.py``
        L165-204), fused by :func:`aggregate_coattention_maps`.

        The maps, in the official order: the flip self-pair's map of the image and of its flip, flipped
        back; the partner side of each rescaled self-pair, resized bicubic to the image's map size;
        the image's raw map averaged over up to ``num_test_partners`` same-class partners of the batch
        (absent for an image without one).
        """
        size = features.shape[-2:]
        raw: list[torch.Tensor] = []
        for k, partner_images in enumerate(self.self_pair_images(images)):
            pair = self.pair_forward(features, self(partner_images).features)
            partner_side = gather_class_maps(pair.coattention_maps_n, classes).float()
            if self.self_pair_flip and k == 0:
                raw += [gather_class_maps(pair.coattention_maps_m, classes).float(), partner_side.flip(-1)]
            else:
                raw.append(F.interpolate(partner_side[:, None], size=size, mode="bicubic", align_corners=False)[:, 0])
        present = [torch.ones(features.shape[0], dtype=torch.bool, device=features.device)] * len(raw)
        if self.num_test_partners:
            total = features.new_zeros(features.shape[0], *size, dtype=torch.float32)
            count = features.new_zeros(features.shape[0], dtype=torch.float32)
            same_class = (classes[:, None] == classes[None, :]) & ~torch.eye(
                len(classes), dtype=torch.bool, device=classes.device)
            rank = same_class.long().cumsum(dim=1)  # 1-based rank of each partner in batch order
            for r in range(1, self.num_test_partners + 1):
                rows, partners = torch.nonzero(same_class & (rank == r), as_tuple=True)
                if len(rows):
                    pair = self.pair_forward(features[rows], features[partners])
                    total[rows] += gather_class_maps(pair.coattention_maps_m, classes[rows]).float()
                    count[rows] += 1
            raw.append(total / count.clamp_min(1)[:, None, None])
            present.append(count > 0)
        return aggregate_coattention_maps(raw, present)


def aggregate_coattention_maps(maps: list[torch.Tensor], present: list[torch.Tensor]) -> torch.Tensor:
    """The official fusion of raw maps ``[B, h, w]`` (MCIS_wsss ``Classifier/scripts/test.py`` ``aggregate``, L71-83).

    Each map is ReLU'd and divided by ``max + 1e-8``; the first is always added, a later one only
    when ``sigmoid(mean(raw map)) > 0.1``; the sum is divided by the number of maps, skipped ones
    included. ``present[k]`` (bool ``[B]``) says which images have map ``k`` at all (an image
    without a same-class partner has no partner map: neither added nor counted). The official
    ``* 255`` and the cast to uint8 are left out (a scale and a quantization of the result).
    """
    total = torch.zeros_like(maps[0])
    count = torch.zeros(maps[0].shape[0], dtype=maps[0].dtype, device=maps[0].device)
    first = torch.zeros_like(present[0])
    for raw, has_map in zip(maps, present):
        keep = has_map & (~first | (torch.sigmoid(raw.mean(dim=(1, 2))) > 0.1))
        relu = raw.relu()
        total += torch.where(keep[:, None, None], relu / (relu.amax(dim=(1, 2), keepdim=True) + 1e-8), 0.0)
        count += has_map
        first |= has_map
    return total / count.clamp_min(1)[:, None, None]
