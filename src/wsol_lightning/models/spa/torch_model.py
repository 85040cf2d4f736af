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

from wsol_lightning.cam import minmax_normalize
from wsol_lightning.errors import ConfigError
from wsol_lightning.models.components import Backbone, as_backbone, build_cam_neck, gather_class_maps
from wsol_lightning.models.components.network import LocalizationNetwork, LocalizationOutput, top1_classes
from wsol_lightning.models.components.options import require
from wsol_lightning.models.components.self_correlation import (
    CorrelationMode,
    colour_position_features,
    seeded_self_correlation_map,
)

#: SCG feature blocks per backbone: the two last blocks at the CAM resolution. VGG16 is SPA's
#: ``--scg_blocks=4,5`` (conv4 block after pool4, conv5_3); the others are our analogues (SPA
#: released no code for them): ResNet layer3/layer4 outputs, InceptionV3 Mixed_6d/Mixed_6e.
DEFAULT_SCG_TAPS: dict[str, tuple[str, str]] = {
    "vgg16": ("pool4", "conv5"),
    "resnet50": ("layer3_5", "layer4_2"),
    "resnet18": ("layer3_1", "layer4_1"),
    "inception_v3": ("Mixed_6d", "Mixed_6e"),
    "efficientnet_lite0": ("blocks_5", "bn2"),
}

HeadName = Literal["spa", "cam"]


def default_scg_taps(backbone: Backbone) -> tuple[str, ...]:
    """The two SCG blocks of a backbone (VGG16 at 28x28 has no pool4: its conv4 block is tapped; a
    backbone the table does not list: its last two units)."""
    if backbone.name == "vgg16" and backbone.large_feature_map:
        return ("conv4", "conv5")
    return DEFAULT_SCG_TAPS.get(backbone.name) or backbone.last_units(2)


class SPAOutput(NamedTuple):
    logits: torch.Tensor  # [B, C], spatial mean of class_maps
    class_maps: torch.Tensor  # [B, C, h, w], the classifier's maps A (with bias)
    blocks: tuple[torch.Tensor, ...]  # SCG feature blocks [B, K_b, h, w], in scg_taps order


def _spa_head(in_channels: int, num_classes: int, width: int = 1024) -> nn.Sequential:
    """SPA's ``cls``: conv3x3 W + ReLU, conv3x3 W + ReLU, conv1x1 C (Xavier-uniform, zero bias; paper W = 1024)."""
    head = nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(width, num_classes, 1),
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


def same_class_partners(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Partner of every image for cross-image SCG: ``[B, C], [B] -> [B]`` batch indices.

    The partner of image ``b`` (whose map is of class ``classes[b]``) is the other image of the
    batch predicted (top-1) as ``classes[b]`` with the highest probability of that class; an image
    without such a partner is its own partner (index ``b``).
    """
    batch = logits.shape[0]
    probabilities = F.softmax(logits.float(), dim=1)
    candidates = logits.argmax(dim=1)[None, :] == classes[:, None]  # [b, j]: j predicted as classes[b]
    candidates &= ~torch.eye(batch, dtype=torch.bool, device=logits.device)
    scores = probabilities[:, classes].T.masked_fill(~candidates, -1.0)  # [b, j] = p_j(classes[b])
    own = torch.arange(batch, device=logits.device)
    return torch.where(candidates.any(dim=1), scores.argmax(dim=1), own)


class SelfCorrelationGenerator(nn.Module):
    """SCG (SPA §3.3): the CAM picks seeds, the summed HSC of the feature blocks spreads them.

    Seeds on the feature grid from ``cam = minmax(ReLU(A_c))`` (``+1e-10``): object
    ``cam >= object_threshold``, background ``cam <= background_threshold``. The map is
    :func:`~wsol_lightning.models.components.self_correlation.seeded_self_correlation_map`, with
    two optional extensions (off by default; ``models/spa/README.md``, "Open ideas"): the input's
    colour/position affinity mixed in by ``image_affinity_weight``, and the object seeds of a
    same-class partner image correlated with the image (``cross_image``). No parameters.

    Args:
        first_order_threshold: ``theta_fo`` (CUB 0.1, ILSVRC 0.2).
        second_order_threshold: ``theta_so`` in units of ``1/N`` (CUB 0.5, ILSVRC 0.2).
        second_order_weight: ``w_so`` (CUB 2, ILSVRC 1).
        order: order of the high-order correlation (2).
        mode: ``combined`` (SPA's HSC), ``first_order`` or ``high_order`` only.
        object_threshold: ``theta_fg`` of the object seeds (0.1).
        background_threshold: ``theta_bg`` of the background seeds (0.05).
        chunk_size: images whose ``N x N`` matrices are built at once (memory bound).
        image_affinity_weight: ``w`` of ``SC <- (1 - w) SC / n_blocks + w colnorm(A)``, ``A`` the
            bilateral affinity of the input's cell colours and positions (0: SPA's SCG).
        image_colour_sigma: ``sigma_c`` of ``A``, in units of the network's (normalized) input.
        image_position_sigma: ``sigma_p`` of ``A``, in fractions of the image side.
        cross_image: append the HSC of the image with its partner's features and the partner's
            object seeds (the forward's ``partners``).
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
        image_affinity_weight: float = 0.0,
        image_colour_sigma: float = 0.5,
        image_position_sigma: float = 0.5,
        cross_image: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= background_threshold <= object_threshold <= 1.0:
            raise ConfigError(
                "need 0 <= scg_background_threshold <= scg_object_threshold <= 1, got "
                f"{background_threshold} and {object_threshold}"
            )
        require(0.0 <= image_affinity_weight <= 1.0, "scg_image_affinity_weight", "in [0, 1]", image_affinity_weight)
        if image_colour_sigma <= 0 or image_position_sigma <= 0:
            raise ConfigError(
                "scg_image_colour_sigma and scg_image_position_sigma must be > 0, got "
                f"{image_colour_sigma} and {image_position_sigma}"
            )
        self.first_order_threshold = first_order_threshold
        self.second_order_threshold = second_order_threshold
        self.second_order_weight = second_order_weight
        self.order = order
        self.mode = mode
        self.object_threshold = object_threshold
        self.background_threshold = background_threshold
        self.chunk_size = chunk_size
        self.image_affinity_weight = image_affinity_weight
        self.image_colour_sigma = image_colour_sigma
        self.image_position_sigma = image_position_sigma
        self.cross_image = cross_image

    def seeds(self, cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Object and background seed masks ``[B, h*w]`` of raw class maps ``[B, h, w]``."""
        normalized = minmax_normalize(F.relu(cam.float()), eps=1e-10).flatten(1)
        return normalized >= self.object_threshold, normalized <= self.background_threshold

    def forward(
        self,
        blocks: Sequence[torch.Tensor],
        cam: torch.Tensor,
        images: torch.Tensor | None = None,
        partners: torch.Tensor | None = None,
        partner_cams: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """SCG maps ``[B, h, w]`` in ``[0, 1]`` from blocks ``[B, K_b, h, w]`` and raw CAMs ``[B, h, w]``.

        Args:
            blocks: the feature blocks.
            cam: the raw class map ``A_c`` of each image.
            images: the network's input ``[B, 3, H, W]`` (needed with ``image_affinity_weight > 0``).
            partners: ``[B]`` batch index of each image's partner, ``b`` itself for none (needed
                with ``cross_image``; see :func:`same_class_partners`).
            partner_cams: ``[B, h, w]`` the partner's raw map of the image's class (its seeds).
        """
        for block in blocks:
            if block.shape[-2:] != cam.shape[-2:]:
                raise ConfigError(
                    f"the SCG blocks (backbone_units) must have the class map's resolution {tuple(cam.shape[-2:])}, "
                    f"got {tuple(block.shape[-2:])}"
                )
        object_seeds, background_seeds = self.seeds(cam)
        image_features = None
        if self.image_affinity_weight > 0:
            if images is None:
                raise ConfigError("scg_image_affinity_weight > 0 needs the input images")
            image_features = colour_position_features(
                images, tuple(cam.shape[-2:]), self.image_colour_sigma, self.image_position_sigma
            )
        partner_blocks = partner_object_seeds = same_image = None
        if self.cross_image:
            if partners is None or partner_cams is None:
                raise ConfigError("scg_cross_image needs partners and partner_cams")
            partner_blocks = [block[partners] for block in blocks]
            partner_object_seeds = self.seeds(partner_cams)[0]
            same_image = partners == torch.arange(len(partners), device=partners.device)
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
            image_features=image_features,
            image_affinity_weight=self.image_affinity_weight,
            partner_blocks=partner_blocks,
            partner_object_seeds=partner_object_seeds,
            same_image=same_image,
        )
        return maps.view_as(cam)


class SPANet(LocalizationNetwork):
    """Backbone -> class-map head ``A`` (logits = GAP(A)); SCG blocks tapped from the backbone.

    Args:
        backbone, num_classes: see :class:`~wsol_lightning.models.components.LocalizationNetwork`.
        head: ``spa`` (SPA's two 3x3 convs of 1024 + 1x1 conv) or ``cam`` (the CAM baseline's
            wsolevaluation neck + linear classifier as a 1x1 conv, i.e. the CAM network).
        backbone_units: backbone units whose outputs feed SCG (``None``: :func:`default_scg_taps`).
        generator: the SCG settings (``None``: :class:`SelfCorrelationGenerator` defaults).
        use_scg: the localization map is SCG's (``False``: the raw CAM ``A_c``).
        head_width: channels of the ``spa`` head's 3x3 convs (paper: 1024).
    """

    def __init__(
        self,
        backbone: Backbone | str,
        num_classes: int,
        head: HeadName = "spa",
        backbone_units: Sequence[str] | None = None,
        generator: SelfCorrelationGenerator | None = None,
        use_scg: bool = True,
        head_width: int = 1024,
    ) -> None:
        super().__init__()
        self.backbone = as_backbone(backbone)
        name = self.backbone.name
        if head == "spa":
            self.head = _spa_head(self.backbone.out_channels, num_classes, head_width)
        elif head == "cam":
            self.head = _cam_head(name, self.backbone.out_channels, num_classes)
        else:
            raise ConfigError(f"head must be 'spa' or 'cam', got {head!r}")
        taps = tuple(backbone_units) if backbone_units is not None else default_scg_taps(self.backbone)
        unknown = [t for t in taps if t not in self.backbone.units]
        if not taps or unknown:
            raise ConfigError(
                f"backbone_units {list(taps)} must name units of {name}: {self.backbone.unit_names}"
            )
        self.scg_taps = taps
        self.generator = generator if generator is not None else SelfCorrelationGenerator()
        self.use_scg = use_scg

    def forward(self, images: torch.Tensor) -> SPAOutput:
        features, tapped = self.backbone.forward_features(images, self.scg_taps)
        class_maps = self.head(features)
        return SPAOutput(class_maps.mean(dim=(2, 3)), class_maps, tuple(tapped[t] for t in self.scg_taps))

    @property
    def maps_depend_on_batch(self) -> bool:
        """Cross-image SCG takes each image's partner from its batch."""
        return self.use_scg and self.generator.cross_image

    def localize(self, images: torch.Tensor, classes: torch.Tensor | None = None) -> LocalizationOutput:
        """Logits ``[B, C]`` and the map of ``classes[b]`` ``[B, h, w]``: SCG's (``use_scg``), or ``ReLU(A_c)``
        (SPA_CVPR2021 ``exper/val_spa.py`` L255: ``loc_map = F.relu(logits)``).

        With the generator's ``cross_image`` the partner of each image is chosen in the batch by
        :func:`same_class_partners` and its seeds come from its map of the same class. The image
        affinity reads the normalized input, the backbone's own.
        """
        out = self(images)
        classes = top1_classes(out.logits, classes)
        cam = gather_class_maps(out.class_maps, classes)
        if not self.use_scg:
            return LocalizationOutput(out.logits, cam.relu(), classes)
        partners = partner_cams = None
        if self.generator.cross_image:
            partners = same_class_partners(out.logits, classes)
            partner_cams = out.class_maps[partners, classes]
        maps = self.generator(out.blocks, cam, self.backbone.normalize(images), partners, partner_cams)
        return LocalizationOutput(out.logits, maps, classes)

    def localize_all_classes(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.use_scg:
            out = self(images)
            return out.logits, out.class_maps.relu()
        return super().localize_all_classes(images)
