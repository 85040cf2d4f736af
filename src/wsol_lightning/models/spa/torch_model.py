"""SPA network (Pan et al., CVPR 2021): a class-map classifier plus self-correlation map generating.

Training uses the class maps ``A`` (``[B, C, h, w]``, logits = GAP(A)) for cross-entropy and the
Restricted Activation Module loss (:mod:`wsol_lightning.models.spa.loss`). Inference replaces the
CAM by the SCG map: object/background seeds from the CAM select columns of the summed high-order
self-correlation of two feature blocks (:mod:`wsol_lightning.models.components.self_correlation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from wsol_lightning.models.components import build_backbone, build_cam_neck, gather_class_maps
from wsol_lightning.models.components.cam import minmax_normalize
from wsol_lightning.models.components.self_correlation import CorrelationMode, seeded_self_correlation_map

#: SCG feature blocks per backbone: the two last blocks at the CAM resolution. VGG16 is SPA's
#: ``--scg_blocks=4,5`` (conv4 block after pool4, conv5_3); the others are our analogues (SPA
#: released no code for them): ResNet layer3/layer4 outputs, InceptionV3 Mixed_6d/Mixed_6e.
DEFAULT_SCG_TAPS: dict[str, tuple[str, str]] = {
    "vgg16": ("pool4", "conv5"),
    "resnet50": ("layer3_5", "layer4_2"),
    "resnet18": ("layer3_1", "layer4_1"),
    "inception_v3": ("Mixed_6d", "Mixed_6e"),
}

HeadName = Literal["spa", "cam"]


def default_scg_taps(backbone: str, large_feature_map: bool = False) -> tuple[str, ...]:
    """The two SCG blocks of a backbone (VGG16 at 28x28 has no pool4: its conv4 block is tapped)."""
    taps = DEFAULT_SCG_TAPS[backbone]
    if backbone == "vgg16" and large_feature_map:
        return ("conv4", "conv5")
    return taps


class SPAOutput(NamedTuple):
    logits: torch.Tensor  # [B, C], spatial mean of class_maps
    class_maps: torch.Tensor  # [B, C, h, w], the classifier's maps A (with bias)
    blocks: tuple[torch.Tensor, ...]  # SCG feature blocks [B, K_b, h, w], in scg_taps order


def _spa_head(in_channels: int, num_classes: int) -> nn.Sequential:
    """SPA's ``cls``: conv3x3 1024 + ReLU, conv3x3 1024 + ReLU, conv1x1 C (Xavier-uniform, zero bias)."""
    head = nn.Sequential(
        nn.Conv2d(in_channels, 1024, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(1024, 1024, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(1024, num_classes, 1),
    )
    for module in head:
        if isinstance(module, nn.Conv2d):
            nn.init.xavier_uniform_(module.weight)
            nn.init.zeros_(module.bias)
    return head


def _cam_head(backbone: str, in_channels: int, num_classes: int) -> nn.Sequential:
    """The CAM baseline's network as a class-map head: wsolevaluation neck + 1x1 conv (= GAP + linear)."""
    neck, channels = build_cam_neck(backbone, in_channels)
    classifier = nn.Conv2d(channels, num_classes, 1)
    nn.init.normal_(classifier.weight, 0.0, 0.01)
    nn.init.zeros_(classifier.bias)
    return nn.Sequential(neck, classifier)


class SelfCorrelationGenerator(nn.Module):
    """SCG (SPA §3.3): the CAM picks seeds, the summed HSC of the feature blocks spreads them.

    Seeds on the feature grid from ``cam = minmax(ReLU(A_c))`` (``+1e-10``): object
    ``cam >= object_threshold``, background ``cam <= background_threshold``. The map is
    :func:`~wsol_lightning.models.components.self_correlation.seeded_self_correlation_map`. No
    parameters.

    Args:
        first_order_threshold: ``theta_fo`` (CUB 0.1, ILSVRC 0.2).
        second_order_threshold: ``theta_so`` in units of ``1/N`` (CUB 0.5, ILSVRC 0.2).
        second_order_weight: ``w_so`` (CUB 2, ILSVRC 1).
        order: order of the high-order correlation (2).
        mode: ``combined`` (SPA's HSC), ``first_order`` or ``high_order`` only.
        object_threshold: ``theta_fg`` of the object seeds (0.1).
        background_threshold: ``theta_bg`` of the background seeds (0.05).
        chunk_size: images whose ``N x N`` matrices are built at once (memory bound).
    """

    def __init__(
        self,
        first_order_threshold: float = 0.1,
        second_order_threshold: float = 0.5,
        second_order_weight: float = 2.0,
        order: int = 2,
        mode: CorrelationMode = "combined",
        object_threshold: float = 0.1,
        background_threshold: float = 0.05,
        chunk_size: int = 16,
    ) -> None:
        super().__init__()
        if not 0.0 <= background_threshold <= object_threshold <= 1.0:
            raise ValueError(
                "need 0 <= scg_background_threshold <= scg_object_threshold <= 1, got "
                f"{background_threshold} and {object_threshold}"
            )
        self.first_order_threshold = first_order_threshold
        self.second_order_threshold = second_order_threshold
        self.second_order_weight = second_order_weight
        self.order = order
        self.mode = mode
        self.object_threshold = object_threshold
        self.background_threshold = background_threshold
        self.chunk_size = chunk_size

    def seeds(self, cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Object and background seed masks ``[B, h*w]`` of raw class maps ``[B, h, w]``."""
        normalized = minmax_normalize(F.relu(cam.float()), eps=1e-10).flatten(1)
        return normalized >= self.object_threshold, normalized <= self.background_threshold

    def forward(self, blocks: Sequence[torch.Tensor], cam: torch.Tensor) -> torch.Tensor:
        """SCG maps ``[B, h, w]`` in ``[0, 1]`` from blocks ``[B, K_b, h, w]`` and raw CAMs ``[B, h, w]``."""
        for block in blocks:
            if block.shape[-2:] != cam.shape[-2:]:
                raise ValueError(
                    f"scg_taps blocks must have the class map's resolution {tuple(cam.shape[-2:])}, "
                    f"got {tuple(block.shape[-2:])}"
                )
        object_seeds, background_seeds = self.seeds(cam)
        maps = seeded_self_correlation_map(
            list(blocks),
            object_seeds,
            background_seeds,
            chunk_size=self.chunk_size,
            first_order_threshold=self.first_order_threshold,
            second_order_threshold=self.second_order_threshold,
            second_order_weight=self.second_order_weight,
            order=self.order,
            mode=self.mode,
        )
        return maps.view_as(cam)


class SPANet(nn.Module):
    """Backbone -> class-map head ``A`` (logits = GAP(A)); SCG blocks tapped from the backbone.

    Args:
        backbone: backbone name (see :mod:`wsol_lightning.models.components.backbones`).
        num_classes: number of classes.
        pretrained: load cached ImageNet weights.
        large_feature_map: 28x28 instead of 14x14 maps at 224 px.
        head: ``spa`` (SPA's two 3x3 convs of 1024 + 1x1 conv) or ``cam`` (the CAM baseline's
            wsolevaluation neck + linear classifier as a 1x1 conv, i.e. the CAM network).
        scg_taps: backbone units whose outputs feed SCG (``None``: :func:`default_scg_taps`).
        scg: the SCG settings (``None``: :class:`SelfCorrelationGenerator` defaults).
    """

    def __init__(
        self,
        backbone: str,
        num_classes: int,
        pretrained: bool = False,
        large_feature_map: bool = False,
        head: HeadName = "spa",
        scg_taps: Sequence[str] | None = None,
        scg: SelfCorrelationGenerator | None = None,
    ) -> None:
        super().__init__()
        self.backbone = build_backbone(backbone, pretrained, large_feature_map)
        if head == "spa":
            self.head = _spa_head(self.backbone.out_channels, num_classes)
        elif head == "cam":
            self.head = _cam_head(backbone, self.backbone.out_channels, num_classes)
        else:
            raise ValueError(f"head must be 'spa' or 'cam', got {head!r}")
        taps = tuple(scg_taps) if scg_taps is not None else default_scg_taps(backbone, large_feature_map)
        unknown = [t for t in taps if t not in self.backbone.units]
        if not taps or unknown:
            raise ValueError(
                f"scg_taps {list(taps)} must name units of {backbone}: {self.backbone.unit_names}"
            )
        self.scg_taps = taps
        self.scg = scg if scg is not None else SelfCorrelationGenerator()

    def forward(self, images: torch.Tensor) -> SPAOutput:
        features, tapped = self.backbone.forward_features(images, self.scg_taps)
        class_maps = self.head(features)
        return SPAOutput(class_maps.mean(dim=(2, 3)), class_maps, tuple(tapped[t] for t in self.scg_taps))

    def localization_maps(
        self, images: torch.Tensor, classes: torch.Tensor, use_scg: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B, C]`` and the map of ``classes[b]`` ``[B, h, w]``: SCG's, or the raw CAM ``A_c``."""
        out = self(images)
        cam = gather_class_maps(out.class_maps, classes)
        if not use_scg:
            return out.logits, cam
        return out.logits, self.scg(out.blocks, cam)
