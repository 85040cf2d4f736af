"""SPG network: a class-map classifier with self-produced guidance branches (Zhang et al., ECCV 2018).

wsolevaluation's layout (CAM note §7; ``VggSpg``/``ResNetSpg``/``InceptionSpg``), on the shared
backbones (VGG16's pool4 replaced by wsolevaluation's 3x3/s2/p1 max-pool). Shapes for batch ``B``, classes ``C``:

* main path ``A``: backbone -> head -> Conv1x1(-> C) = class maps ``M [B, C, h, w]``; logits =
  spatial mean of ``M``; the CAM is ``M_c`` (``SPG_A4``).
* ``B1``/``B2``: one Conv3x3+ReLU per branch on the output of two backbone units, then a *shared*
  Conv3x3+ReLU+Conv1x1(-> 1): guidance logits ``[B, 1, h1, w1]`` and ``[B, 1, h2, w2]``.
* ``C``: Conv3x3(-> 512)+ReLU+Conv1x1(-> 1) on the head features: ``[B, 1, h, w]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from wsol_lightning.errors import ConfigError
from wsol_lightning.models.components import Backbone, as_backbone, build_cam_neck, global_average
from wsol_lightning.models.components.network import ClassMapNetwork

#: Units whose outputs feed B1 and B2, per backbone and ``large_feature_map`` (wsolevaluation's
#: SPG_A1 / SPG_A2 ends: VGG after conv4 (+its pool) and conv5; ResNet after layer3's first block and
#: after layer3; InceptionV3 after Mixed_5d (+the 14x14 pool) and after Mixed_6d).
DEFAULT_GUIDANCE_UNITS: dict[tuple[str, bool], tuple[str, str]] = {
    ("vgg16", False): ("pool4", "conv5"),
    ("vgg16", True): ("conv4", "conv5"),
    ("resnet50", False): ("layer3_0", "layer3_5"),
    ("resnet50", True): ("layer3_0", "layer3_5"),
    ("resnet18", False): ("layer3_0", "layer3_1"),
    ("resnet18", True): ("layer3_0", "layer3_1"),
    ("inception_v3", False): ("pool5d", "Mixed_6d"),
    ("inception_v3", True): ("Mixed_5d", "Mixed_6d"),
    ("efficientnet_lite0", False): ("blocks_4", "blocks_5"),
    ("efficientnet_lite0", True): ("blocks_4", "blocks_5"),
}

#: Width of the B branches (wsolevaluation: VGG 512, ResNet50 1024, InceptionV3 512; ResNet18 its
#: layer3 width).
_BRANCH_WIDTH = {"vgg16": 512, "resnet50": 1024, "resnet18": 256, "inception_v3": 512, "efficientnet_lite0": 256}
#: A backbone the tables do not list (``timm/<name>``): B1/B2 on the two units before the last, width 256.
_FALLBACK_BRANCH_WIDTH = 256
_C_WIDTH = 512


class SPGOutput(NamedTuple):
    logits: torch.Tensor  # [B, C] spatial mean of the class maps
    class_maps: torch.Tensor  # [B, C, h, w] M (SPG_A4), the CAM
    guidance_b1: torch.Tensor  # [B, 1, h1, w1] logits of branch B1
    guidance_b2: torch.Tensor  # [B, 1, h2, w2] logits of branch B2
    guidance_c: torch.Tensor  # [B, 1, h, w] logits of head C


def _conv_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True))


def _xavier_init(module: nn.Module) -> None:
    for conv in module.modules():
        if isinstance(conv, nn.Conv2d):
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)


def _build_head(backbone: str, in_channels: int) -> tuple[nn.Module, int]:
    """Layers between backbone and the 1x1 class conv (wsolevaluation's ``SPG_A3``).

    VGG16: two Conv3x3(512)+ReLU; ResNet: none; InceptionV3: the CAM neck (dropout, two
    Conv3x3(1024)+ReLU, dropout in between and after; xavier-initialised).
    """
    if backbone == "vgg16":
        head = nn.Sequential(_conv_relu(in_channels, 512), _conv_relu(512, 512))
        _xavier_init(head)
        return head, 512
    if backbone == "inception_v3":
        return build_cam_neck(backbone, in_channels)
    return nn.Identity(), in_channels


class SPGNet(ClassMapNetwork):
    """Backbone, head, class-map classifier, guidance branches B1/B2 and head C.

    Args:
        backbone, num_classes: see :class:`~wsol_lightning.models.components.LocalizationNetwork`.
        backbone_units: the two backbone units whose outputs feed B1 and B2, in forward order;
            ``None`` uses :data:`DEFAULT_GUIDANCE_UNITS`.
    """

    def __init__(
        self,
        backbone: Backbone | str,
        num_classes: int,
        backbone_units: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = as_backbone(backbone)
        name, large_feature_map = self.backbone.name, self.backbone.large_feature_map
        if name == "vgg16" and "pool4" in self.backbone.units:
            # wsolevaluation's VggSpg (wsol/vgg.py L182-185): pool4 is a 3x3/s2/p1 max-pool, not 2x2/s2
            self.backbone.units["pool4"] = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        default_units = DEFAULT_GUIDANCE_UNITS.get((name, large_feature_map)) or self.backbone.last_units(2, skip_last=1)
        units = tuple(default_units if backbone_units is None else backbone_units)
        names = self.backbone.unit_names
        if len(units) != 2 or any(u not in names for u in units):
            raise ConfigError(
                f"backbone_units must name two units of {name} (large_feature_map={large_feature_map}); "
                f"got {list(units)}, available {names}"
            )
        if names.index(units[0]) >= names.index(units[1]):
            raise ConfigError(f"backbone_units must be in forward order (B1 before B2), got {list(units)}")
        self.guidance_units = units
        self.head, channels = _build_head(name, self.backbone.out_channels)
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        width = _BRANCH_WIDTH.get(name, _FALLBACK_BRANCH_WIDTH)
        self.branch_b1 = _conv_relu(self.backbone.unit_channels[units[0]], width)
        self.branch_b2 = _conv_relu(self.backbone.unit_channels[units[1]], width)
        self.branch_shared = nn.Sequential(_conv_relu(width, width), nn.Conv2d(width, 1, 1))
        self.head_c = nn.Sequential(_conv_relu(channels, _C_WIDTH), nn.Conv2d(_C_WIDTH, 1, 1))
        for module in (self.classifier, self.branch_b1, self.branch_b2, self.branch_shared, self.head_c):
            _xavier_init(module)

    def forward(self, images: torch.Tensor) -> SPGOutput:
        final, tapped = self.backbone.forward_features(images, self.guidance_units)
        guidance_b1 = self.branch_shared(self.branch_b1(tapped[self.guidance_units[0]]))
        guidance_b2 = self.branch_shared(self.branch_b2(tapped[self.guidance_units[1]]))
        features = self.head(final)
        class_maps = self.classifier(features)
        guidance_c = self.head_c(features)
        return SPGOutput(global_average(class_maps), class_maps, guidance_b1, guidance_b2, guidance_c)
