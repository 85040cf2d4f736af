"""ACoL network: one backbone, two adversarial complementary classifiers (Zhang et al., CVPR 2018).

Shapes (batch ``B``, classes ``C``, map side ``h``: 14 at 224 px, 28 with ``large_feature_map``):
backbone feature ``F [B, K, h, w]`` -> head A class maps ``M^A [B, C, h, w]``, logits = spatial
mean; head A's min-max normalized map of class ``y`` thresholded at ``delta`` gives the erase mask
``E [B, 1, h, w]``; head B sees ``F`` with the erased positions zeroed and gives ``M^B``.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import nn

from wsol_lightning.cam import minmax_normalize
from wsol_lightning.models.components import Backbone, as_backbone, gather_class_maps, global_average
from wsol_lightning.models.components.backbones import VGGPooling, apply_vgg_pooling
from wsol_lightning.models.components.network import LocalizationNetwork, LocalizationOutput
from wsol_lightning.models.components.options import require


class ACoLOutput(NamedTuple):
    logits: torch.Tensor  # [B, C] classifier A (the classification output)
    logits_erased: torch.Tensor  # [B, C] classifier B (on the erased feature)
    class_maps: torch.Tensor  # [B, C, h, w] M^A
    class_maps_erased: torch.Tensor  # [B, C, h, w] M^B
    erase_mask: torch.Tensor  # [B, 1, h, w] bool, True where the feature fed to B was zeroed
    classes: torch.Tensor  # [B] the class whose A-map drove the erasing


class ACoLClassifier(nn.Module):
    """Class-map head (ACoL §3): Conv3x3(K->W)+ReLU, Conv3x3(W->W)+ReLU, Conv1x1(W->C), ``W = width`` (paper 1024).

    The 1x1 conv before GAP *is* the CAM (GAP and a linear layer commute, ACoL §3.1), so the class
    maps come out of the forward pass and the logits are their spatial mean.

    Args:
        in_channels: channels of the backbone feature.
        num_classes: number of classes.
        width: channels of the two 3x3 convs (paper: 1024).
        init: ``"xavier"`` (official ACoL code; wsolevaluation's VGG/Inception) or ``"he"``
            (wsolevaluation's ResNet), biases zero.
    """

    def __init__(
        self, in_channels: int, num_classes: int, init: Literal["xavier", "he"] = "xavier", width: int = 1024
    ) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, num_classes, 1),
        )
        for conv in self.layers:
            if isinstance(conv, nn.Conv2d):
                if init == "xavier":
                    nn.init.xavier_uniform_(conv.weight)
                else:
                    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(conv.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Class maps ``[B, C, h, w]``."""
        return self.layers(features)


def erase_mask(class_maps: torch.Tensor, classes: torch.Tensor, erase_threshold: float) -> torch.Tensor:
    """Positions to erase for classifier B: ``norm(M^A_y) >= delta``, bool ``[B, 1, h, w]`` (ACoL §3.2).

    ``norm`` is the per-map min-max normalization (a constant map becomes zeros, so nothing is
    erased instead of NaN); computed in float32 on detached maps, so no gradient reaches A through
    the mask.
    """
    attention = minmax_normalize(gather_class_maps(class_maps, classes).detach().float())
    return (attention >= erase_threshold).unsqueeze(1)


def fused_localization_map(
    class_maps: torch.Tensor, class_maps_erased: torch.Tensor, classes: torch.Tensor
) -> torch.Tensor:
    """ACoL's map of class ``classes[b]``: ``max(norm(M^A_c), norm(M^B_c))``, float32 ``[B, h, w]`` in [0, 1].

    Each branch is min-max normalized separately first, then fused by the element-wise max.
    """
    map_a = minmax_normalize(gather_class_maps(class_maps, classes).float())
    map_b = minmax_normalize(gather_class_maps(class_maps_erased, classes).float())
    return torch.maximum(map_a, map_b)


class ACoLNet(LocalizationNetwork):
    """Backbone, optional 3x3 average smoothing, classifiers A and B with adversarial erasing.

    ``forward(images, labels)`` erases with A's map of ``labels`` (the GT class in training; at
    evaluation the class being localized); ``labels=None`` uses A's top-1 class.

    Args:
        backbone, num_classes: see :class:`~wsol_lightning.models.components.LocalizationNetwork`.
        foreground_threshold, erasing, feature_smoothing, vgg_pooling, head_init, head_width: see
            :class:`~wsol_lightning.models.acol.ACoL`.
    """

    def __init__(
        self, backbone: Backbone | str, num_classes: int, foreground_threshold: float = 0.6, erasing: bool = True,
        feature_smoothing: bool | None = None, vgg_pooling: VGGPooling = "acol",
        head_init: Literal["xavier", "he"] | None = None, head_width: int = 1024,
    ) -> None:
        super().__init__()
        require(0.0 < foreground_threshold <= 1.0, "foreground_threshold", "in (0, 1]", foreground_threshold)
        self.foreground_threshold = foreground_threshold
        self.erasing = erasing
        self.backbone = as_backbone(backbone)
        name = self.backbone.name
        apply_vgg_pooling(self.backbone, vgg_pooling)
        if feature_smoothing is None:
            feature_smoothing = name == "vgg16"
        self.smoothing = nn.AvgPool2d(3, stride=1, padding=1) if feature_smoothing else nn.Identity()
        channels = self.backbone.out_channels
        init = head_init or ("he" if name.startswith("resnet") else "xavier")
        self.classifier = ACoLClassifier(channels, num_classes, init, head_width)
        self.classifier_erased = ACoLClassifier(channels, num_classes, init, head_width)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The shared feature map ``F`` both classifiers read."""
        return self.smoothing(self.backbone(images))

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> ACoLOutput:
        features = self.features(images)
        maps = self.classifier(features)
        logits = global_average(maps)
        classes = logits.argmax(dim=1) if labels is None else labels
        if self.erasing:
            mask = erase_mask(maps, classes, self.foreground_threshold)
        else:
            mask = torch.zeros_like(features[:, :1], dtype=torch.bool)
        maps_erased = self.classifier_erased(features.masked_fill(mask, 0.0))
        return ACoLOutput(logits, global_average(maps_erased), maps, maps_erased, mask, classes)

    def localize(self, images: torch.Tensor, classes: torch.Tensor | None = None) -> LocalizationOutput:
        """A's logits and the fused map of ``classes[b]`` (default: A's top-1), B erased with A's map of it.

        The erasing depends on the class, so every class's map needs its own pass (export repeats
        the batch once per class).
        """
        out = self(images, classes)
        return LocalizationOutput(
            out.logits, fused_localization_map(out.class_maps, out.class_maps_erased, out.classes), out.classes
        )
