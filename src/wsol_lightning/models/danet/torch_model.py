"""DANet network (Xue et al., ICCV 2019): one K-map classifier head per hierarchy level (HDA + DDA).

Level ``l`` (coarsest first) has a head on a backbone unit: Conv3x3+ReLU -> Conv3x3+ReLU ->
Conv1x1 to ``C_l * K`` channels, grouped class-major (channel ``c * K + k``) and viewed as maps
``A^l`` of shape ``[B, C_l, K, h_l, w_l]``. The class map is the mean of its K maps,
``M_c = (1/K) sum_k A_c^k``, and the logits are ``GAP(M_c)`` (official ``vgg_DA.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from wsol_lightning.errors import ConfigError
from wsol_lightning.hierarchy import ClassHierarchy
from wsol_lightning.models.components import Backbone, as_backbone
from wsol_lightning.models.components.backbones import VGGPooling, apply_vgg_pooling
from wsol_lightning.models.components.network import LocalizationNetwork, LocalizationOutput, top1_classes
from wsol_lightning.models.components.options import require

#: Head widths per level for the paper's 3-level hierarchy, coarsest first (official code:
#: VGG16 ``vgg_DA.py``, InceptionV3 ``inception3_CAM345_cos.py``; ResNet is not in the paper).
DEFAULT_HEAD_WIDTHS = {
    "vgg16": (512, 1024, 1024),
    "inception_v3": (256, 384, 1024),
    "resnet50": (512, 512, 512),
    "resnet18": (512, 512, 512),
    "efficientnet_lite0": (256, 256, 256),
}
#: Head width of every level on backbones the table does not list.
FALLBACK_HEAD_WIDTH = 512


def default_level_units(backbone: Backbone, num_levels: int) -> list[str]:
    """Backbone units the heads sit on for ``num_levels`` levels (the last ``num_levels`` of root, parent, child).

    VGG16: pool3 (28x28 at 224), pool4 (conv4 when pool4 is removed for 28x28 maps), conv5.
    InceptionV3: stem2 (after the 2nd max-pool), Mixed_5d, Mixed_6e. ResNet (our choice): the last
    blocks of layer2, layer3 and layer4.
    """
    names = backbone.unit_names
    if backbone.name == "vgg16":
        candidates = ["pool3", "pool4" if "pool4" in names else "conv4", names[-1]]
    elif backbone.name == "inception_v3":
        candidates = ["stem2", "Mixed_5d", names[-1]]
    elif backbone.name == "efficientnet_lite0":
        candidates = ["blocks_4", "blocks_5", names[-1]]
    elif backbone.name in ("resnet50", "resnet18"):
        candidates = [[n for n in names if n.startswith(f"layer{i}_")][-1] for i in (2, 3)] + [names[-1]]
    else:
        candidates = list(backbone.last_units(3))
    if not 1 <= num_levels <= len(candidates):
        raise ConfigError(
            f"no default backbone_units for {num_levels} levels on {backbone.name}: give backbone_units explicitly "
            f"(one unit of {names} per level, coarsest first)"
        )
    return candidates[len(candidates) - num_levels :]


class LevelHead(nn.Module):
    """Conv3x3+ReLU -> Conv3x3+ReLU -> Conv1x1 to ``num_classes * num_maps`` (Xavier-uniform init)."""

    def __init__(self, in_channels: int, width: int, num_classes: int, num_maps: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.num_maps = num_maps
        convs = [
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.Conv2d(width, width, 3, padding=1),
            nn.Conv2d(width, num_classes * num_maps, 1),
        ]
        for conv in convs:
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)
        self.layers = nn.Sequential(
            convs[0], nn.ReLU(inplace=True), convs[1], nn.ReLU(inplace=True), convs[2]
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Raw maps ``[B, C, K, h, w]`` (class-major channel grouping)."""
        maps = self.layers(features)
        return maps.view(maps.shape[0], self.num_classes, self.num_maps, *maps.shape[-2:])


class DANetOutput(NamedTuple):
    logits: torch.Tensor  # [B, C] finest level
    level_logits: tuple[torch.Tensor, ...]  # [B, C_l] per level, coarsest first
    level_maps: tuple[torch.Tensor, ...]  # raw [B, C_l, K, h_l, w_l] per level, coarsest first


def fuse_level_maps(level_maps: Sequence[torch.Tensor], relu: bool = True) -> torch.Tensor:
    """Per-pixel average of per-level class maps at the finest common resolution.

    Each entry is ``[B, K, h_l, w_l]`` (the K maps of the chosen class of one level); its class map is
    ``(1/K) sum_k ReLU(A^k)`` (official evaluation applies the ReLU; ``relu=False`` keeps raw maps).
    Smaller maps are upsampled (bilinear, ``align_corners=True`` as the official code) to the largest
    ``h_l x w_l``, then averaged over levels (the paper's per-pixel fusion; the official sum is the
    same map after min-max normalization). Returns ``[B, H, W]`` in float32.
    """
    size = max((m.shape[-2:] for m in level_maps), key=lambda s: s[0] * s[1])
    fused = []
    for maps in level_maps:
        maps = maps.float()
        class_map = (maps.relu() if relu else maps).mean(dim=1, keepdim=True)
        if class_map.shape[-2:] != size:
            class_map = F.interpolate(class_map, size=tuple(size), mode="bilinear", align_corners=True)
        fused.append(class_map[:, 0])
    return torch.stack(fused).mean(dim=0)


class DANetNet(LocalizationNetwork):
    """Backbone with one K-map head per hierarchy level (HDA) and K maps per class (DDA).

    Args:
        backbone: see :class:`~wsol_lightning.models.components.LocalizationNetwork`.
        hierarchy: the class hierarchy (its levels, coarsest first, get one head each).
        num_maps, backbone_units, head_width, relu_maps, vgg_pooling: see :class:`~wsol_lightning.models.danet.DANet`
            (``None``: :func:`default_level_units`, :data:`DEFAULT_HEAD_WIDTHS`).
    """

    def __init__(
        self,
        backbone: Backbone | str,
        hierarchy: ClassHierarchy,
        num_maps: int = 8,
        backbone_units: Sequence[str] | None = None,
        head_width: int | Sequence[int] | None = None,
        relu_maps: bool = True,
        vgg_pooling: VGGPooling = "torchvision",
    ) -> None:
        super().__init__()
        self.relu_maps = relu_maps
        require(num_maps >= 1, "num_maps", ">= 1", num_maps)
        self.backbone = as_backbone(backbone)
        apply_vgg_pooling(self.backbone, vgg_pooling)
        num_levels = hierarchy.num_levels
        units = (
            list(backbone_units) if backbone_units is not None else default_level_units(self.backbone, num_levels)
        )
        hierarchy.check_num_levels(len(units), "backbone_units")
        unknown = [u for u in units if u not in self.backbone.unit_names]
        if unknown:
            raise ConfigError(f"backbone_units {unknown} are not units of {self.backbone.name}: {self.backbone.unit_names}")
        order = [self.backbone.unit_names.index(u) for u in units]
        if order != sorted(order):
            raise ConfigError(f"backbone_units {units} must follow the backbone order (coarsest level earliest)")
        head_widths = [head_width] * num_levels if isinstance(head_width, int) else head_width
        if head_widths is None:
            widths = DEFAULT_HEAD_WIDTHS.get(self.backbone.name, (FALLBACK_HEAD_WIDTH,) * 3)
            head_widths = widths[-num_levels:] if num_levels <= 3 else None
        if head_widths is None or len(head_widths) != num_levels:
            raise ConfigError(
                f"head_width must give one width per level used ({num_levels}), got {head_widths}"
            )
        self.level_units = units
        self.num_maps = num_maps
        self.heads = nn.ModuleList(
            LevelHead(self.backbone.unit_channels[u], w, n, num_maps)
            for u, w, n in zip(units, head_widths, hierarchy.level_sizes)
        )
        self.register_buffer(
            "ancestors", torch.tensor(hierarchy.ancestor_table(), dtype=torch.long), persistent=False
        )

    def forward(self, images: torch.Tensor) -> DANetOutput:
        """Per-level raw maps and logits ``GAP((1/K) sum_k A_c^k)``."""
        _, tapped = self.backbone.forward_features(images, taps=self.level_units)
        level_maps = tuple(head(tapped[u]) for head, u in zip(self.heads, self.level_units))
        level_logits = tuple(m.mean(dim=(2, 3, 4)) for m in level_maps)
        return DANetOutput(level_logits[-1], level_logits, level_maps)

    def level_labels(self, classes: torch.Tensor) -> list[torch.Tensor]:
        """Labels of finest classes at every level, coarsest first (the last is ``classes``)."""
        return [row[classes] for row in self.ancestors]

    def fused_maps(
        self, level_maps: Sequence[torch.Tensor], classes: torch.Tensor, relu: bool = True
    ) -> torch.Tensor:
        """Localization map ``[B, H, W]`` of finest class ``classes[b]`` fused with its ancestors' maps."""
        batch = torch.arange(classes.shape[0], device=classes.device)
        selected = [maps[batch, labels] for maps, labels in zip(level_maps, self.level_labels(classes))]
        return fuse_level_maps(selected, relu=relu)

    def localize(self, images: torch.Tensor, classes: torch.Tensor | None = None) -> LocalizationOutput:
        """Finest logits and the fused map of ``classes[b]`` and its ancestors (note §4).

        ``extras``: ``level_logits``, every level's logits, coarsest first (the per-level accuracies);
        ``ranked_maps`` / ``ranked_classes``: :meth:`ranked_maps` ranked by the levels' logits.
        """
        out = self(images)
        classes = top1_classes(out.logits, classes)
        maps = self.fused_maps(out.level_maps, classes, relu=self.relu_maps)
        ranked_maps, ranked_classes = self.ranked_maps(out.level_maps, out.level_logits)
        extras = {"level_logits": out.level_logits, "ranked_maps": ranked_maps, "ranked_classes": ranked_classes}
        return LocalizationOutput(out.logits, maps, classes, MappingProxyType(extras))

    def ranked_maps(
        self, level_maps: Sequence[torch.Tensor], level_scores: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The official evaluation's maps ``[B, R, H, W]`` and finest classes ``[B, R]`` (``R = min(5, C)``):
        rank ``i`` fuses each level's own ``i``-th class by its scores (independent arg-sorts, DANet
        ``utils/localization.py`` L56-72; a level with fewer classes repeats its last)."""
        ranks = min(5, level_scores[-1].shape[1])
        ranked = [scores.topk(min(ranks, scores.shape[1]), dim=1).indices for scores in level_scores]
        batch = torch.arange(ranked[-1].shape[0], device=ranked[-1].device)
        maps = torch.stack([
            fuse_level_maps([m[batch, r[:, min(i, r.shape[1] - 1)]] for m, r in zip(level_maps, ranked)],
                            relu=self.relu_maps)
            for i in range(ranks)
        ], dim=1)
        return maps, ranked[-1]

    def localize_all_classes(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the fused map of every finest class, in one pass (each level's maps gathered by ancestry)."""
        out = self(images)
        per_level = [maps[:, ancestors] for maps, ancestors in zip(out.level_maps, self.ancestors)]  # [B, C, K, h, w]
        batch, classes = per_level[-1].shape[:2]
        flat = [m.flatten(0, 1) for m in per_level]
        fused = fuse_level_maps(flat, relu=self.relu_maps)
        return out.logits, fused.view(batch, classes, *fused.shape[-2:])
