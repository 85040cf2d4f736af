"""DANet losses (Xue et al., ICCV 2019): hierarchical cross-entropy (HDA) and the DDA cosine loss.

Equation numbers follow the method note (``danet.md`` §3); the official code is ``get_loss`` and
``calculate_cosineloss`` of ``xuehaolan/DANet``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

#: Stabilizer inside the square root of the cosine denominator (official code).
COSINE_EPS = 1e-8


def hierarchical_cross_entropy(
    level_logits: Sequence[torch.Tensor], level_labels: Sequence[torch.Tensor], weight: float = 0.5
) -> list[torch.Tensor]:
    """HDA classification terms ``weight * CE(s^l, y^l)`` per level, coarsest first.

    ``L_cls = sum_l 0.5 CE(s^l, y^l)`` (note §3, official weight 0.5); computed in float32.
    """
    return [
        weight * F.cross_entropy(logits.float(), labels) for logits, labels in zip(level_logits, level_labels)
    ]


def summed_pairwise_cosine(maps: torch.Tensor) -> torch.Tensor:
    """``s_b = sum_{p<q} cos(a_p, a_q)`` per image for maps ``[B, n, h, w]`` (raw values, float32).

    ``cos_pq = a_p . a_q / sqrt(|a_p|^2 |a_q|^2 + 1e-8)`` with ``a_p`` the flattened map ``p``.
    """
    vectors = maps.float().flatten(2)
    dots = vectors @ vectors.transpose(1, 2)
    squared_norms = vectors.pow(2).sum(dim=2)
    cosines = dots / torch.sqrt(squared_norms[:, :, None] * squared_norms[:, None, :] + COSINE_EPS)
    upper = torch.ones_like(cosines[0], dtype=torch.bool).triu(diagonal=1)
    return cosines[:, upper].sum(dim=1)


def upsample_to_finest(level_maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Bring ``[B, K, h_l, w_l]`` maps to the largest ``h_l x w_l`` (bilinear, ``align_corners=True``)."""
    size = max((m.shape[-2:] for m in level_maps), key=lambda s: s[0] * s[1])
    return [
        (
            m.float()
            if m.shape[-2:] == size
            else F.interpolate(m.float(), size=tuple(size), mode="bilinear", align_corners=True)
        )
        for m in level_maps
    ]


def sample_map_subset(
    num_maps: int, num_selected: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``num_selected`` distinct map indices out of ``num_maps``, drawn with the torch RNG.

    One subset serves the whole batch, as in the official code (which draws it with Python's
    ``random.sample``; we use torch's RNG so ``seed_everything`` / ``generator`` fix it).
    """
    if not 2 <= num_selected <= num_maps:
        raise ValueError(
            f"the cosine loss needs 2 <= num_selected_maps <= {num_maps} maps, got {num_selected}"
        )
    return torch.randperm(num_maps, generator=generator)[:num_selected]


def official_cosine_loss(
    level_class_maps: Sequence[torch.Tensor],
    num_selected: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """DDA loss of the official code (note §3): pairs across levels, one random subset.

    The GT-class maps of every level ``[B, K, h_l, w_l]`` are upsampled to the finest common
    resolution and concatenated into ``L*K`` maps; ``n`` of them (default ``floor(L*K/2)``) are
    drawn; ``L_cos = sum_b |s_b| / (B * n(n-1)/2)`` with ``s_b`` the summed pairwise cosine of the
    raw (not ReLU'd) selected maps of image ``b``.
    """
    stacked = torch.cat(upsample_to_finest(level_class_maps), dim=1)
    total = stacked.shape[1]
    num_selected = total // 2 if num_selected is None else num_selected
    subset = sample_map_subset(total, num_selected, generator).to(stacked.device)
    pair_sums = summed_pairwise_cosine(stacked[:, subset])
    num_pairs = num_selected * (num_selected - 1) / 2
    return pair_sums.abs().sum() / (stacked.shape[0] * num_pairs)


def per_level_cosine_loss(level_class_maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """DDA loss per level (the paper's per-class-within-a-level form, an option).

    For each level, all ``K`` maps of the GT class: ``L^l = sum_b |s_b^l| / (B * K(K-1)/2)``;
    the loss is the mean over levels. Same normalization as :func:`official_cosine_loss`, no
    sampling and no pairs across levels.
    """
    losses = []
    for maps in level_class_maps:
        num_maps = maps.shape[1]
        if num_maps < 2:
            raise ValueError(f"the per-level cosine loss needs num_maps >= 2, got {num_maps}")
        num_pairs = num_maps * (num_maps - 1) / 2
        losses.append(summed_pairwise_cosine(maps).abs().sum() / (maps.shape[0] * num_pairs))
    return torch.stack(losses).mean()
