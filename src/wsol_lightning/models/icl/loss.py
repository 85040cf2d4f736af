"""ICL's masks and losses (Ki et al., "In-sample Contrastive Learning and Consistent Attention for
Weakly Supervised Object Localization", ACCV 2020).

The paper's body (Sec. 3) could not be read here, so the equation forms below are our
reconstruction of what its abstract states (see README.md, "Sources"); every default is marked
"ours". Notation: ``a`` is the self-attention map ``[B, 1, h, w]`` (channel mean of the non-local
block's output ``Z``); ``t(a)`` is the map the thresholds apply to: its per-sample min-max
normalization (``"minmax"``, ours, default) or ``a`` itself with thresholds relative to its
per-sample maximum (``"max"``, the ADL convention).

* masks (ours): foreground ``M_fg = 1[t(a) >= gamma_bg * max t(a)]``, background
  ``M_bg = 1 - M_fg``, dropped foreground ``M_drop = M_fg * 1[t(a) < gamma_d * max t(a)]`` (the most
  discriminative part and the background removed);
* region embeddings (ours): ``z_r = normalize(h(sum M_r Z / sum M_r))`` with a projection head ``h``;
* contrastive attention loss (abstract: similarity of foreground and dropped foreground,
  dissimilarity of dropped foreground and background; triplet form ours):
  ``L_CA = max(0, d(z_drop, z_fg) - d(z_drop, z_bg) + m)``;
* foreground consistency loss (abstract: later layer's attention is the reference; norm ours):
  ``L_FC = mean_l || n(a_l) - sg(n(a_L)) ||^2`` with ``n`` the per-sample min-max normalization,
  ``sg`` stop-gradient, ``a_L`` the last position's map.

A sample whose region needed by a term is empty (no background, no dropped foreground, a constant
reference) is left out of that term; a term with no valid sample is an exact, still
graph-connected zero, never NaN.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

from wsol_lightning.cam import minmax_normalize
from wsol_lightning.models.components.options import require_choice

ThresholdReference = Literal["minmax", "max"]


class AttentionMasks(NamedTuple):
    """Boolean region masks ``[B, 1, h, w]`` cut from one attention map."""

    foreground: torch.Tensor
    background: torch.Tensor
    dropped_foreground: torch.Tensor


def threshold_map(attention: torch.Tensor, reference: ThresholdReference = "minmax") -> torch.Tensor:
    """The map ``t(a)`` whose per-sample max the thresholds are fractions of (float32).

    ``"minmax"``: ``(a - min a) / (max a - min a)`` (max 1, so ``gamma * max`` is ``gamma``; a constant
    map becomes zeros); ``"max"``: ``a`` itself (ADL: ``gamma * max a``).
    """
    if reference == "minmax":
        return minmax_normalize(attention.float())
    if reference == "max":
        return attention.float()
    raise ValueError(f"threshold_reference must be 'minmax' or 'max', got {reference!r}")


def attention_masks(
    attention: torch.Tensor,
    background_threshold: float,
    drop_threshold: float,
    reference: ThresholdReference = "minmax",
) -> AttentionMasks:
    """Foreground, background and dropped-foreground masks of ``attention`` ``[B, 1, h, w]`` (ours).

    With ``t = threshold_map(a, reference)`` and its per-sample max: ``M_fg = t >= gamma_bg * max t``,
    ``M_bg = not M_fg``, ``M_drop = M_fg and t < gamma_d * max t``. The masks are cut from the
    detached map: thresholding has no gradient.
    """
    if not 0.0 <= background_threshold < drop_threshold:
        raise ValueError(
            f"need 0 <= background_threshold < drop_threshold, got background_threshold={background_threshold}, "
            f"drop_threshold={drop_threshold}"
        )
    attention = threshold_map(attention.detach(), reference)
    peak = attention.amax(dim=(2, 3), keepdim=True)
    foreground = attention >= background_threshold * peak
    dropped_foreground = foreground & (attention < drop_threshold * peak)
    return AttentionMasks(foreground, ~foreground, dropped_foreground)


def masked_average_pool(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum_hw M * Z / sum_hw M`` ``[B, C]`` in float32; an empty mask gives a zero vector."""
    weights = mask.to(torch.float32)
    total = (features.float() * weights).sum(dim=(2, 3))
    return total / weights.sum(dim=(2, 3)).clamp(min=1.0)


def mask_is_nonempty(mask: torch.Tensor) -> torch.Tensor:
    """``[B]`` bool: the sample's mask has at least one pixel."""
    return mask.flatten(1).any(dim=1)


def _masked_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``values[valid]``; an exact zero (still in the graph) when no entry is valid."""
    kept = torch.where(valid, values, torch.zeros_like(values))
    return kept.sum() / valid.sum().clamp(min=1)


def contrastive_attention_loss(
    foreground: torch.Tensor,
    dropped_foreground: torch.Tensor,
    background: torch.Tensor,
    valid: torch.Tensor,
    margin: float = 0.5,
    squared_distance: bool = True,
) -> torch.Tensor:
    """Triplet form of the contrastive attention loss (ours), anchor = dropped foreground.

    ``L_CA = mean_valid max(0, d(z_drop, z_fg) - d(z_drop, z_bg) + margin)`` with ``d`` the squared
    L2 (``squared_distance=True``) or L2 distance between embeddings ``[B, D]``; ``valid`` ``[B]``
    marks the samples whose three regions are non-empty.
    """
    if margin < 0:
        raise ValueError(f"contrastive margin must be >= 0, got {margin}")
    anchor = dropped_foreground.float()
    positive = (anchor - foreground.float()).pow(2).sum(dim=1)
    negative = (anchor - background.float()).pow(2).sum(dim=1)
    if not squared_distance:
        # sqrt has an infinite gradient at 0: a tiny floor keeps identical embeddings finite.
        positive = positive.clamp(min=1e-12).sqrt()
        negative = negative.clamp(min=1e-12).sqrt()
    return _masked_mean(F.relu(positive - negative + margin), valid)


def foreground_consistency_loss(
    earlier: list[torch.Tensor] | tuple[torch.Tensor, ...],
    reference: torch.Tensor,
    norm: Literal["l2", "l1"] = "l2",
) -> torch.Tensor:
    """``mean_l mean_valid mean_hw |n(a_l) - sg(n(a_L))|^p`` (p = 2 for ``l2``, 1 for ``l1``; ours).

    Each earlier map ``[B, 1, h_l, w_l]`` and the reference ``[B, 1, h, w]`` are brought to the
    smaller of the two sizes by area averaging, then min-max normalized per sample. The reference is
    detached (no gradient reaches the later layer). Samples whose reference is constant (no
    foreground to agree with) are left out.
    """
    require_choice("consistency_norm", norm, ("l2", "l1"))
    if not earlier:
        raise ValueError("foreground consistency needs at least one earlier attention map")
    reference = reference.detach().float()
    terms = []
    for attention in earlier:
        size = (min(attention.shape[-2], reference.shape[-2]), min(attention.shape[-1], reference.shape[-1]))
        target = F.adaptive_avg_pool2d(reference, size)
        flat_target = target.flatten(1)
        valid = (flat_target.amax(dim=1) - flat_target.amin(dim=1)) > 0
        difference = minmax_normalize(F.adaptive_avg_pool2d(attention.float(), size)) - minmax_normalize(target)
        per_pixel = difference.pow(2) if norm == "l2" else difference.abs()
        terms.append(_masked_mean(per_pixel.flatten(1).mean(dim=1), valid))
    return torch.stack(terms).mean()
