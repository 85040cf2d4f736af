"""SPG's losses: self-produced seed masks and the guidance BCE terms (Zhang et al., ECCV 2018, §3.2-3.3).

As wsolevaluation implements them (CAM note §7):

* attention ``A``: the GT-class map of the main classifier, bilinearly upsampled to the input size
  and min-max normalized per image;
* seed mask of a map ``S`` in [0, 1] with thresholds ``(high, low)``: 1 (foreground) where
  ``S > high``, or where ``S > ratio * max S`` when fewer than ``min_foreground_pixels`` pixels pass
  ``high``; then 0 (background) where ``S < low`` (background wins where both hold); 255 (ignored)
  elsewhere;
* ``L = CE + BCE(B2, mask(A; h1, l1)) + BCE(B1, mask(sigmoid(B2); h2, l2)) + BCE(C, mask(F; h3, l3))``
  with ``F = (sigmoid(B1) + sigmoid(B2)) / 2`` detached, every guidance logit map bilinearly
  upsampled to the input size and each BCE the mean over the batch's non-ignored pixels.

The masks are built without gradient: no term back-propagates into the map its mask came from.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from wsol_lightning.cam import minmax_normalize
from wsol_lightning.models.components import gather_class_maps

#: Mask value of pixels left out of the guidance losses.
IGNORE = 255


class SeedThresholds(NamedTuple):
    high: float  # foreground: > high
    low: float  # background: < low


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of ``[B, K, h, w]`` to ``size`` in float32 (``align_corners=False``)."""
    return F.interpolate(maps.float(), size=size, mode="bilinear", align_corners=False)


@torch.no_grad()
def seed_mask(
    scores: torch.Tensor,
    high: float,
    low: float,
    min_foreground_pixels: int = 30,
    fallback_ratio: float = 0.7,
) -> torch.Tensor:
    """SPG's pseudo mask of score maps ``[B, H, W]`` in [0, 1]: uint8 ``[B, H, W]`` of 1 / 0 / :data:`IGNORE`.

    Foreground: ``score > high``; for an image where fewer than ``min_foreground_pixels`` pixels
    pass, ``score > fallback_ratio * max score`` instead. Background: ``score < low``, written
    after the foreground so it wins where both hold. Everything else is ignored.
    """
    scores = scores.detach().float()
    foreground = scores > high
    too_few = foreground.flatten(1).sum(dim=1) < min_foreground_pixels
    fallback = scores > fallback_ratio * scores.flatten(1).amax(dim=1)[:, None, None]
    foreground = torch.where(too_few[:, None, None], fallback, foreground)
    mask = torch.full_like(scores, IGNORE, dtype=torch.uint8)
    mask[foreground] = 1
    mask[scores < low] = 0
    return mask


def attention_map(class_maps: torch.Tensor, classes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """SPG's attention ``[B, H, W]``: the map of ``classes[b]``, upsampled to ``size``, min-max normalized.

    Detached: the attention only ever becomes a seed mask.
    """
    chosen = gather_class_maps(class_maps.detach(), classes)[:, None]
    return minmax_normalize(upsample(chosen, size)[:, 0])


def guidance_bce(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """BCE-with-logits of guidance logits ``[B, 1, h, w]`` (upsampled to the mask) on the non-ignored pixels.

    The mean over every non-ignored pixel of the batch; 0 (still attached to the graph) when all
    are ignored.
    """
    upsampled = upsample(logits, tuple(mask.shape[-2:]))[:, 0]
    kept = mask != IGNORE
    if not kept.any():
        return upsampled.sum() * 0.0
    return F.binary_cross_entropy_with_logits(upsampled[kept], mask[kept].float())


def spg_losses(
    logits: torch.Tensor,
    class_maps: torch.Tensor,
    guidance_b1: torch.Tensor,
    guidance_b2: torch.Tensor,
    guidance_c: torch.Tensor,
    labels: torch.Tensor,
    image_size: tuple[int, int],
    attention_thresholds: SeedThresholds = SeedThresholds(0.7, 0.01),
    b2_thresholds: SeedThresholds = SeedThresholds(0.5, 0.05),
    fused_thresholds: SeedThresholds = SeedThresholds(0.7, 0.1),
    min_foreground_pixels: int = 30,
    fallback_ratio: float = 0.7,
    guidance_weight: float = 1.0,
) -> dict[str, torch.Tensor]:
    """The four SPG terms (their sum is the objective): ``ce`` and the three guidance BCEs.

    ``b2_attention``: B2 vs the seed mask of the attention (SPG's ``(h1, l1)``);
    ``b1_b2``: B1 vs the seed mask of ``sigmoid(B2)`` (``(h2, l2)``);
    ``c_fused``: C vs the seed mask of the fused B1/B2 map (``(h3, l3)``).
    The guidance terms are multiplied by ``guidance_weight`` (1 in SPG).
    """

    def mask_of(scores: torch.Tensor, thresholds: SeedThresholds) -> torch.Tensor:
        return seed_mask(scores, thresholds.high, thresholds.low, min_foreground_pixels, fallback_ratio)

    attention = attention_map(class_maps, labels, image_size)
    b1_scores = torch.sigmoid(upsample(guidance_b1.detach(), image_size)[:, 0])
    b2_scores = torch.sigmoid(upsample(guidance_b2.detach(), image_size)[:, 0])
    fused = (b1_scores + b2_scores) / 2
    return {
        "ce": F.cross_entropy(logits.float(), labels),
        "b2_attention": guidance_weight * guidance_bce(guidance_b2, mask_of(attention, attention_thresholds)),
        "b1_b2": guidance_weight * guidance_bce(guidance_b1, mask_of(b2_scores, b2_thresholds)),
        "c_fused": guidance_weight * guidance_bce(guidance_c, mask_of(fused, fused_thresholds)),
    }
