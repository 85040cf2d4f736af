"""Pairwise affinities of feature-map positions: cosine self-correlation and its high-order form.

Shared by the methods that compare every pair of positions of a feature map (SPA's self-correlation
maps; MCIS and ICL reuse :func:`cosine_affinity` and :func:`normalize_columns`). Conventions:

* features are channel-first ``[B, K, *spatial]``; the spatial dims are flattened to ``N`` positions;
* an affinity matrix is ``[B, N, N]`` with entry ``(i, j)`` the affinity of position ``i`` to
  position ``j``; normalizations are over ``dim=1`` so each *column* sums to 1, and column ``j`` is
  read as "how strongly every position correlates with position ``j``" (SPA note §4, pitfall 4);
* products are computed in float32 whatever the autocast dtype (a bf16/fp16 ``N x N`` product of
  normalized vectors loses the small entries the thresholds compare against).

The high-order form and the seeded maps follow SPA (Pan et al., CVPR 2021, §3.3 "Self-Correlation
map Generating", equations as in the official code, see ``models/spa/README.md``).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

#: Which correlation :func:`high_order_self_correlation` returns (SPA's ``--scg_com``,
#: ``--scg_fo`` and neither flag).
CorrelationMode = Literal["combined", "first_order", "high_order"]

FIRST_ORDER_EPS = 1e-5
HIGH_ORDER_EPS = 1e-10
NORM_EPS = 1e-10


def _flatten_positions(features: torch.Tensor) -> torch.Tensor:
    """``[B, K, *spatial]`` -> float32 ``[B, K, N]``."""
    if features.dim() < 3:
        raise ValueError(f"features must be [B, K, *spatial], got shape {tuple(features.shape)}")
    return features.flatten(2).float()


def _unit_vectors(features: torch.Tensor, eps: float) -> torch.Tensor:
    """``[B, K, *spatial]`` -> float32 ``[B, K, N]`` with each position divided by ``||f|| + eps``."""
    flat = _flatten_positions(features)
    return flat / (flat.norm(dim=1, keepdim=True) + eps)


def cosine_affinity(a: torch.Tensor, b: torch.Tensor | None = None, eps: float = NORM_EPS) -> torch.Tensor:
    """Cosine similarity of every position of ``a`` with every position of ``b``: ``[B, Na, Nb]``.

    Each position's feature vector is divided by ``||f|| + eps`` (SPA's ``hsc``), then the batched
    matmul ``a_hat^T b_hat`` runs in float32 with autocast off.

    Args:
        a: ``[B, K, *spatial_a]`` features.
        b: ``[B, K, *spatial_b]`` features (same ``B`` and ``K``); ``None``: ``a`` itself
            (normalized once).
        eps: added to the vector norms.
    """
    if b is not None and (a.shape[0] != b.shape[0] or a.shape[1] != b.shape[1]):
        raise ValueError(
            f"a and b need the same batch and channels, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    with torch.autocast(device_type=a.device.type, enabled=False):
        a_hat = _unit_vectors(a, eps)
        b_hat = a_hat if b is None else _unit_vectors(b, eps)
        return torch.bmm(a_hat.transpose(1, 2), b_hat)


def normalize_columns(matrix: torch.Tensor, eps: float) -> torch.Tensor:
    """Divide every column ``j`` of ``[B, N, M]`` by ``sum_i matrix[:, i, j] + eps`` (column-stochastic)."""
    return matrix / (matrix.sum(dim=1, keepdim=True) + eps)


def self_correlation(features: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """First-order self-correlation ``S_ij = max(0, f_i^T f_j / (|f_i| |f_j|))``, zeroed below ``threshold``.

    SPA Eq. (first-order SC): ``[B, K, *spatial] -> [B, N, N]`` float32, symmetric, not normalized.
    """
    correlation = F.relu(cosine_affinity(features))
    if threshold > 0:
        correlation = correlation.masked_fill(correlation < threshold, 0.0)
    return correlation


def high_order_self_correlation(
    features: torch.Tensor,
    first_order_threshold: float = 0.1,
    second_order_threshold: float = 0.5,
    second_order_weight: float = 2.0,
    order: int = 2,
    mode: CorrelationMode = "combined",
) -> torch.Tensor:
    """SPA's high-order self-correlation (HSC) of one feature block, ``[B, N, N]`` float32.

    With ``S`` = :func:`self_correlation` (threshold ``first_order_threshold``):

    * first order ``SC1 = S / (colsum(S) + 1e-5)``;
    * higher order: ``T`` = ``S`` with its diagonal zeroed, column-normalized (``+1e-5``);
      ``H = T`` then ``order - 1`` times ``H <- H T`` re-normalized (``+1e-10``); finally
      ``H_ij = 0`` where ``H_ij < second_order_threshold / N`` (the threshold is relative to the
      uniform probability ``1/N``);
    * ``mode="combined"``: ``HSC = max(SC1, second_order_weight * H)`` column-normalized (``+1e-10``);
      ``"first_order"``: ``SC1``; ``"high_order"``: ``H``.

    Args:
        features: ``[B, K, *spatial]`` feature block.
        first_order_threshold: ``theta_fo``, cosine similarities below it are dropped.
        second_order_threshold: ``theta_so`` in units of ``1/N``.
        second_order_weight: ``w_so`` of the combination.
        order: random-walk order of ``H`` (``>= 1``; SPA uses 2, ``H = T^2``).
        mode: which correlation to return.
    """
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    if mode not in ("combined", "first_order", "high_order"):
        raise ValueError(f"mode must be 'combined', 'first_order' or 'high_order', got {mode!r}")
    similarity = self_correlation(features, first_order_threshold)
    if mode == "first_order":
        return normalize_columns(similarity, FIRST_ORDER_EPS)
    first_order = normalize_columns(similarity, FIRST_ORDER_EPS) if mode == "combined" else None
    num_positions = similarity.shape[-1]
    diagonal = torch.eye(num_positions, dtype=torch.bool, device=similarity.device)
    transition = normalize_columns(similarity.masked_fill(diagonal, 0.0), FIRST_ORDER_EPS)
    del similarity
    high_order = transition
    with torch.autocast(device_type=transition.device.type, enabled=False):
        for _ in range(order - 1):
            high_order = normalize_columns(torch.bmm(high_order, transition), HIGH_ORDER_EPS)
    del transition
    high_order = high_order.masked_fill(high_order < second_order_threshold / num_positions, 0.0)
    if first_order is None:
        return high_order
    return normalize_columns(torch.maximum(first_order, second_order_weight * high_order), HIGH_ORDER_EPS)


def _seed_average(correlation: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """Min-max of the sum over seed columns of each column min-max normalized over ``i``: ``[B, N]``.

    ``sum_{j in seeds} (C_ij - min_j) / (max_j - min_j + 1e-10)`` is computed as a masked matvec,
    ``C @ (s / d) - sum_j s_j min_j / d_j``, so the normalized matrix is never materialized. Images
    without seeds give 0.
    """
    column_min = correlation.amin(dim=1)
    column_span = correlation.amax(dim=1) - column_min + NORM_EPS
    weights = seeds.float() / column_span
    summed = torch.bmm(correlation, weights.unsqueeze(-1)).squeeze(-1)
    summed = summed - (weights * column_min).sum(-1, keepdim=True)
    low = summed.amin(dim=1, keepdim=True)
    normalized = (summed - low) / (summed.amax(dim=1, keepdim=True) - low + NORM_EPS)
    return normalized * seeds.any(dim=1, keepdim=True)


def seeded_correlation_map(
    correlation: torch.Tensor, object_seeds: torch.Tensor, background_seeds: torch.Tensor
) -> torch.Tensor:
    """SPA's SCG map from a correlation matrix and seed masks: ``[B, N, N], [B, N], [B, N] -> [B, N]``.

    ``m+`` (``m-``) is the min-max normalized sum over object (background) seed columns ``j`` of
    column ``j`` min-max normalized over positions ``i``, 0 without seeds; the map is
    ``minmax(max(m+ - m-, 0))`` (all min-max with ``+1e-10`` in the denominator, as the reference).

    Args:
        correlation: ``[B, N, N]``, column ``j`` = affinity of every position to position ``j``.
        object_seeds: ``[B, N]`` bool, columns of object seeds.
        background_seeds: ``[B, N]`` bool, columns of background seeds.
    """
    if object_seeds.shape != correlation.shape[:2] or background_seeds.shape != correlation.shape[:2]:
        raise ValueError(
            f"seeds must be [B, N] = {tuple(correlation.shape[:2])}, got {tuple(object_seeds.shape)} "
            f"and {tuple(background_seeds.shape)}"
        )
    correlation = correlation.float()
    positive = _seed_average(correlation, object_seeds)
    difference = F.relu(positive - _seed_average(correlation, background_seeds))
    low = difference.amin(dim=1, keepdim=True)
    return (difference - low) / (difference.amax(dim=1, keepdim=True) - low + NORM_EPS)


def seeded_self_correlation_map(
    blocks: list[torch.Tensor] | tuple[torch.Tensor, ...],
    object_seeds: torch.Tensor,
    background_seeds: torch.Tensor,
    chunk_size: int = 16,
    first_order_threshold: float = 0.1,
    second_order_threshold: float = 0.5,
    second_order_weight: float = 2.0,
    order: int = 2,
    mode: CorrelationMode = "combined",
) -> torch.Tensor:
    """:func:`seeded_correlation_map` of the sum of the blocks' :func:`high_order_self_correlation`.

    ``SC = sum_blocks HSC(block)`` (SPA sums the conv4 and conv5 blocks), then the seeded map,
    ``chunk_size`` images at a time so at most ``chunk_size`` ``N x N`` matrices (times the few
    intermediates of one HSC) are alive: ``[B, K_b, h, w]`` blocks, ``[B, h*w]`` seeds -> ``[B, h*w]``.
    """
    if not blocks:
        raise ValueError("at least one feature block is needed")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    spatial = {tuple(b.shape[2:]) for b in blocks}
    batch = {b.shape[0] for b in blocks}
    if len(spatial) != 1 or len(batch) != 1:
        shapes = [tuple(b.shape) for b in blocks]
        raise ValueError(f"feature blocks must share batch and spatial size, got {shapes}")
    maps = []
    for start in range(0, blocks[0].shape[0], chunk_size):
        chunk = slice(start, start + chunk_size)
        correlation = None
        for block in blocks:
            hsc = high_order_self_correlation(
                block[chunk], first_order_threshold, second_order_threshold, second_order_weight, order, mode
            )
            correlation = hsc if correlation is None else correlation + hsc
        maps.append(seeded_correlation_map(correlation, object_seeds[chunk], background_seeds[chunk]))
    return torch.cat(maps)
