"""I2C network: a CAM classifier whose backbone features also feed a class-centroid bank.

Zhang, Wei, Yang, "Inter-Image Communication for Weakly Supervised Localization" (ECCV 2020).
Inference is the plain CAM; the seeds, the pair losses and the bank only act in training.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.distributed as dist
from torch import nn

from wsol_lightning.errors import ConfigError
from wsol_lightning.models.components import (
    Backbone,
    CAMClassifier,
    as_backbone,
    build_cam_neck,
    global_average,
)
from wsol_lightning.models.components.backbones import VGGPooling, apply_vgg_pooling
from wsol_lightning.models.components.network import ClassMapNetwork
from wsol_lightning.models.components.options import require


class I2COutput(NamedTuple):
    logits: torch.Tensor  # [B, C]
    class_maps: torch.Tensor  # [B, C, h, w]
    seed_features: torch.Tensor  # [B, D, h, w] backbone features the object seeds are read from


class I2CHead(nn.Module):
    """The official code's head: dropout, two 3x3 convs (width, ReLU), dropout, 1x1 class conv.

    Logits are the spatial mean of the class maps (``cls_fc6``-``cls_fc8``, Xavier init).
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 1024, dropout: float = 0.5) -> None:
        super().__init__()
        convs = [nn.Conv2d(in_channels, width, 3, padding=1), nn.Conv2d(width, width, 3, padding=1)]
        classifier = nn.Conv2d(width, num_classes, 1)
        for conv in (*convs, classifier):
            nn.init.xavier_uniform_(conv.weight)
            nn.init.zeros_(conv.bias)
        self.layers = nn.Sequential(
            nn.Dropout(dropout), convs[0], nn.ReLU(inplace=True), nn.Dropout(dropout), convs[1],
            nn.ReLU(inplace=True), nn.Dropout(dropout), classifier,
        )

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.layers(features)
        return global_average(maps), maps


class CAMHead(nn.Module):
    """The shared wsolevaluation neck + GAP-linear classifier (the CAM baseline's head)."""

    def __init__(self, backbone: str, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.neck, channels = build_cam_neck(backbone, in_channels)
        self.classifier = CAMClassifier(channels, num_classes)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.neck(features)
        return self.classifier(features), self.classifier.class_maps(features)


class CentroidBank(nn.Module):
    """Per-class running centroids of object seed vectors (I2C's global memory).

    The same bank keeps per-attribute centroids at attribute level (``classes`` = the attribute
    of each (image, present attribute) incidence, ``centres`` = that image's seed centre).

    Buffers (in the state dict, hence in checkpoints): ``centroids [C, D]`` (zeros until a class is
    first seen; the official code starts from ``randn``, which is never used here because the first
    visit overwrites it and the GC loss skips unseen classes) and ``visit_count [C]`` (steps in which
    the class appeared; ``visit_count > 0`` is the seen mask).

    Update (no grad): the batch centres of one class are averaged (scatter-mean over every pair of the
    class in the batch, summed over DDP ranks by an all-reduce so every rank applies the same update),
    then ``G_y <- (1 - eta) G_y + eta * c_y`` with ``eta = exp(-momentum_decay * visit_count_y)``
    (official code: 0.002; ``eta = 1`` on the first visit) and ``visit_count_y += 1``.

    Args:
        num_classes: number of classes.
        dim: seed vector dimension.
        momentum_decay: the rate of the moving-average schedule.
    """

    def __init__(self, num_classes: int, dim: int, momentum_decay: float = 0.002) -> None:
        super().__init__()
        require(momentum_decay >= 0, "centroid_momentum_decay", ">= 0", momentum_decay)
        self.momentum_decay = momentum_decay
        self.register_buffer("centroids", torch.zeros(num_classes, dim))
        self.register_buffer("visit_count", torch.zeros(num_classes, dtype=torch.long))

    @property
    def seen(self) -> torch.Tensor:
        """Bool ``[C]``: classes that have been updated at least once."""
        return self.visit_count > 0

    @torch.no_grad()
    def update(self, classes: torch.Tensor, centres: torch.Tensor) -> None:
        """Moving-average update from batch centres ``[K, D]`` of classes ``[K]`` (may repeat, may be empty).

        Under ``torch.distributed`` every rank must call this each step (it all-reduces).
        """
        num_classes, dim = self.centroids.shape
        sums = torch.zeros(num_classes, dim + 1, device=self.centroids.device, dtype=torch.float32)
        sums[:, :dim].index_add_(0, classes, centres.detach().float())
        sums[:, dim].index_add_(0, classes, torch.ones_like(classes, dtype=torch.float32))
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(sums)
        present = sums[:, dim] > 0
        batch_mean = sums[present, :dim] / sums[present, dim : dim + 1]
        eta = torch.exp(-self.momentum_decay * self.visit_count[present].float())[:, None]
        self.centroids[present] = (1 - eta) * self.centroids[present] + eta * batch_mean
        self.visit_count[present] += 1


class I2CNet(ClassMapNetwork):
    """Backbone -> head (class maps, logits), with the backbone features exposed for the seeds.

    Args:
        backbone, num_classes: see :class:`~wsol_lightning.models.components.LocalizationNetwork`.
        head, head_width, head_dropout, vgg_pooling, feature_smoothing, centroid_momentum_decay: see
            :class:`~wsol_lightning.models.i2c.I2C`.
        num_attributes: size of the per-attribute bank ``attribute_bank`` (attribute-level
            consistency); 0: none (:meth:`add_attribute_bank` adds it later).
    """

    def __init__(
        self,
        backbone: Backbone | str,
        num_classes: int,
        head: Literal["i2c", "cam"] = "i2c",
        head_width: int = 1024,
        head_dropout: float = 0.5,
        vgg_pooling: VGGPooling = "torchvision",
        feature_smoothing: bool = False,
        centroid_momentum_decay: float = 0.002,
        num_attributes: int = 0,
    ) -> None:
        super().__init__()
        require(num_attributes >= 0, "num_attributes", ">= 0", num_attributes)
        self.backbone = as_backbone(backbone)
        apply_vgg_pooling(self.backbone, vgg_pooling)
        self.smoothing = nn.AvgPool2d(3, stride=1, padding=1) if feature_smoothing else nn.Identity()
        channels = self.backbone.out_channels
        if head == "i2c":
            self.head: nn.Module = I2CHead(channels, num_classes, head_width, head_dropout)
        elif head == "cam":
            self.head = CAMHead(self.backbone.name, channels, num_classes)
        else:
            raise ConfigError(f"head must be 'i2c' or 'cam', got {head!r}")
        self.centroid_bank = CentroidBank(num_classes, channels, centroid_momentum_decay)
        self.attribute_bank: CentroidBank | None = None
        if num_attributes:
            self.add_attribute_bank(num_attributes)

    def add_attribute_bank(self, num_attributes: int) -> CentroidBank:
        """Add the per-attribute bank (on the class bank's device) and return it."""
        require(num_attributes >= 1, "num_attributes", ">= 1", num_attributes)
        bank = self.centroid_bank
        self.attribute_bank = CentroidBank(num_attributes, bank.centroids.shape[1], bank.momentum_decay)
        self.attribute_bank.to(bank.centroids.device)
        return self.attribute_bank

    def forward(self, images: torch.Tensor) -> I2COutput:
        features = self.smoothing(self.backbone(images))
        logits, maps = self.head(features)
        return I2COutput(logits, maps, features)


def select_object_seeds(
    attention: torch.Tensor,
    num_seeds: int,
    threshold: float = 0.7,
    sampling: Literal["random", "raster"] = "random",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Flat positions ``[B, S]`` of ``num_seeds`` object seeds per map of ``attention [B, h, w]``.

    Object positions are ``attention > threshold`` (maps min-max normalized to [0, 1]; the paper's
    0.7). ``random``: distinct positions drawn uniformly among them (the paper's stochastic seeds);
    ``raster``: the first ones in raster order (the official C++ op). When fewer than ``num_seeds``
    positions pass they are reused cyclically; when none pass (a constant map) the peak positions
    are used.
    """
    require(num_seeds >= 1, "num_seeds", ">= 1", num_seeds)
    flat = attention.detach().flatten(1).float()
    mask = flat > threshold
    empty = ~mask.any(dim=1, keepdim=True)
    mask = torch.where(empty, flat >= flat.amax(dim=1, keepdim=True), mask)
    positions = flat.shape[1]
    if sampling == "random":
        keys = torch.rand(flat.shape, device=flat.device, generator=generator)
    elif sampling == "raster":
        keys = 1.0 - torch.arange(positions, device=flat.device, dtype=torch.float32) / positions
        keys = keys.expand_as(flat)
    else:
        raise ConfigError(f"seed_sampling must be 'random' or 'raster', got {sampling!r}")
    # object positions first (keys in [0, 1]), ordered by key; the rest after (keys below 0)
    order = torch.where(mask, keys, keys - 2.0).argsort(dim=1, descending=True)
    count = mask.sum(dim=1, keepdim=True)
    slot = torch.arange(num_seeds, device=flat.device)[None, :] % count
    return order.gather(1, slot)


def gather_seed_vectors(features: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Feature vectors ``[B, S, D]`` of ``features [B, D, h, w]`` at flat ``positions [B, S]``."""
    flat = features.flatten(2)
    return flat.gather(2, positions[:, None, :].expand(-1, flat.shape[1], -1)).transpose(1, 2)

