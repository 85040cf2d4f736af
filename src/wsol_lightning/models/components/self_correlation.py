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
map Generating", equations as in the official code, see ``models/spa/README.md``). Two extensions
answer SPA's open questions (``models/spa/README.md``, "Open ideas"): the colour/position affinity
of the input image (:func:`colour_position_features`, :func:`gaussian_affinity`) mixed into the
feature correlation, and the correlation of an image with a partner image
(:func:`high_order_cross_correlation`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import torch
import torch.nn.functional as F

from wsol_lightning.models.components.options import require, require_choice

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
    return _thresholded(cosine_affinity(features), threshold)


def _check_order_and_mode(order: int, mode: str) -> None:
    require(order >= 1, "order", ">= 1", order)
    require_choice("mode", mode, ("combined", "first_order", "high_order"))


def _thresholded(correlation: torch.Tensor, threshold: float) -> torch.Tensor:
    """``max(0, correlation)`` with entries below ``threshold`` zeroed."""
    correlation = F.relu(correlation)
    if threshold > 0:
        correlation = correlation.masked_fill(correlation < threshold, 0.0)
    return correlation


def _high_order(
    similarity: torch.Tensor,
    partner_similarity: torch.Tensor | None,
    drop_self_pairs: torch.Tensor | None,
    second_order_threshold: float,
    second_order_weight: float,
    order: int,
    mode: CorrelationMode,
) -> torch.Tensor:
    """HSC from the thresholded image-to-partner ``[B, Na, Nb]`` and partner ``[B, Nb, Nb]`` similarities.

    ``partner_similarity=None``: the partner is the image itself (SPA's HSC, ``T_ab = T_bb``).

    ``SC1 = colnorm(S_ab)``; ``H = T_ab T_bb ... T_bb`` (``order - 1`` factors ``T_bb``, each product
    column-normalized) with ``T_bb`` the partner similarity without its diagonal and ``T_ab`` the
    image-to-partner similarity without the self-pairs ``i = j`` of the images in ``drop_self_pairs``
    (``[B]`` bool, the partner *is* the image; ``None``: none), both column-normalized.
    """
    if mode == "first_order":
        return normalize_columns(similarity, FIRST_ORDER_EPS)
    first_order = normalize_columns(similarity, FIRST_ORDER_EPS) if mode == "combined" else None
    num_partner = similarity.shape[-1]
    diagonal = torch.eye(num_partner, dtype=torch.bool, device=similarity.device)
    own = similarity if partner_similarity is None else partner_similarity
    partner_transition = normalize_columns(own.masked_fill(diagonal, 0.0), FIRST_ORDER_EPS)
    del own
    if partner_similarity is None:
        transition = partner_transition
    elif drop_self_pairs is not None and bool(drop_self_pairs.any()):
        self_pairs = diagonal & drop_self_pairs.view(-1, 1, 1)
        transition = normalize_columns(similarity.masked_fill(self_pairs, 0.0), FIRST_ORDER_EPS)
    else:
        transition = normalize_columns(similarity, FIRST_ORDER_EPS)
    del similarity, partner_similarity
    high_order = transition
    with torch.autocast(device_type=transition.device.type, enabled=False):
        for _ in range(order - 1):
            high_order = normalize_columns(torch.bmm(high_order, partner_transition), HIGH_ORDER_EPS)
    del transition, partner_transition
    num_positions = high_order.shape[1]
    high_order = high_order.masked_fill(high_order < second_order_threshold / num_positions, 0.0)
    if first_order is None:
        return high_order
    return normalize_columns(torch.maximum(first_order, second_order_weight * high_order), HIGH_ORDER_EPS)


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
    _check_order_and_mode(order, mode)
    return _high_order(
        self_correlation(features, first_order_threshold),
        None,
        None,
        second_order_threshold,
        second_order_weight,
        order,
        mode,
    )


def high_order_cross_correlation(
    features: torch.Tensor,
    partner_features: torch.Tensor,
    same_image: torch.Tensor | None = None,
    first_order_threshold: float = 0.1,
    second_order_threshold: float = 0.5,
    second_order_weight: float = 2.0,
    order: int = 2,
    mode: CorrelationMode = "combined",
) -> torch.Tensor:
    """HSC of an image's positions (rows ``i``) with a partner image's positions (columns ``j``), ``[B, Na, Nb]``.

    :func:`high_order_self_correlation` with the partner in the columns: ``S_ab`` = thresholded
    ``max(0, cos(f_i, g_j))``; first order ``SC1 = colnorm(S_ab)``; high order
    ``H = T_ab T_bb`` (order 2): partner position ``j`` first spreads over the partner's own
    structure (``T_bb``, the partner's transition without self-loops), then is matched into the
    image (``T_ab`` = ``colnorm(S_ab)``); ``H_ij = 0`` below ``theta_so / Na``; combined as HSC.
    Where ``same_image[b]`` (the partner is image ``b`` itself) the self-pairs ``i = j`` of ``T_ab``
    are dropped too, so the result is exactly :func:`high_order_self_correlation` of the image.

    Args:
        features: ``[B, K, *spatial]`` the image's feature block.
        partner_features: ``[B, K, *spatial_b]`` the partner's block (same ``B`` and ``K``).
        same_image: ``[B]`` bool, the partner of image ``b`` is the image itself (``None``: never).
        first_order_threshold, second_order_threshold, second_order_weight, order, mode: as in
            :func:`high_order_self_correlation`.
    """
    _check_order_and_mode(order, mode)
    if same_image is not None and bool(same_image.any()) and features.shape[2:] != partner_features.shape[2:]:
        raise ValueError(
            f"same_image needs image and partner of the same size, got {tuple(features.shape)} and "
            f"{tuple(partner_features.shape)}"
        )
    return _high_order(
        _thresholded(cosine_affinity(features, partner_features), first_order_threshold),
        self_correlation(partner_features, first_order_threshold),
        same_image,
        second_order_threshold,
        second_order_weight,
        order,
        mode,
    )


def colour_position_features(
    images: torch.Tensor, size: tuple[int, int], colour_sigma: float, position_sigma: float
) -> torch.Tensor:
    """Bilateral features of the input at feature resolution: ``[B, 3, H, W] -> [B, 3 + 2, h, w]``.

    Position ``(r, c)`` of the ``h x w`` grid gets the mean colour of its cell (adaptive average
    pooling) divided by ``colour_sigma`` and its cell centre ``((r + 0.5) / h, (c + 0.5) / w)``
    (fraction of the image side) divided by ``position_sigma``, so that
    :func:`gaussian_affinity` of these features is the bilateral kernel
    ``exp(-|I_i - I_j|^2 / (2 sigma_c^2) - |p_i - p_j|^2 / (2 sigma_p^2))``.
    """
    if colour_sigma <= 0 or position_sigma <= 0:
        raise ValueError(f"colour_sigma and position_sigma must be > 0, got {colour_sigma} and {position_sigma}")
    height, width = size
    colour = F.adaptive_avg_pool2d(images.float(), (height, width)) / colour_sigma
    rows = (torch.arange(height, device=images.device, dtype=torch.float32) + 0.5) / height
    cols = (torch.arange(width, device=images.device, dtype=torch.float32) + 0.5) / width
    grid = torch.stack(torch.meshgrid(rows, cols, indexing="ij")) / position_sigma
    return torch.cat([colour, grid.expand(images.shape[0], -1, -1, -1)], dim=1)


def gaussian_affinity(features: torch.Tensor) -> torch.Tensor:
    """``A_ij = exp(-|g_i - g_j|^2 / 2)`` of every pair of positions of ``[B, K, *spatial]``: ``[B, N, N]`` float32."""
    with torch.autocast(device_type=features.device.type, enabled=False):
        flat = _flatten_positions(features).transpose(1, 2)
        return torch.exp(-0.5 * torch.cdist(flat, flat).square())


def _seed_average(correlation: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """Min-max of the sum over seed columns of each column min-max normalized over ``i``: ``[B, N, M] -> [B, N]``.

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
    """SPA's SCG map from a correlation matrix and seed masks: ``[B, N, M], [B, M], [B, M] -> [B, N]``.

    ``m+`` (``m-``) is the min-max normalized sum over object (background) seed columns ``j`` of
    column ``j`` min-max normalized over positions ``i``, 0 without seeds; the map is
    ``minmax(max(m+ - m-, 0))`` (all min-max with ``+1e-10`` in the denominator, as the reference).

    Args:
        correlation: ``[B, N, M]``, column ``j`` = affinity of every position to position ``j`` (the
            ``M`` columns may go beyond the image's own ``N`` positions: a partner image's).
        object_seeds: ``[B, M]`` bool, columns of object seeds.
        background_seeds: ``[B, M]`` bool, columns of background seeds.
    """
    columns = (correlation.shape[0], correlation.shape[2])
    if object_seeds.shape != columns or background_seeds.shape != columns:
        raise ValueError(
            f"seeds must be [B, M] = {columns}, got {tuple(object_seeds.shape)} and {tuple(background_seeds.shape)}"
        )
    correlation = correlation.float()
    positive = _seed_average(correlation, object_seeds)
    difference = F.relu(positive - _seed_average(correlation, background_seeds))
    low = difference.amin(dim=1, keepdim=True)
    return (difference - low) / (difference.amax(dim=1, keepdim=True) - low + NORM_EPS)


def _summed(matrices: Iterable[torch.Tensor]) -> torch.Tensor:
    """Sum of fresh matrices (at least one), accumulated in place into the first."""
    remaining = iter(matrices)
    total = next(remaining)
    for matrix in remaining:
        total.add_(matrix)
    return total


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
    image_features: torch.Tensor | None = None,
    image_affinity_weight: float = 0.0,
    partner_blocks: list[torch.Tensor] | tuple[torch.Tensor, ...] | None = None,
    partner_object_seeds: torch.Tensor | None = None,
    same_image: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`seeded_correlation_map` of the sum of the blocks' :func:`high_order_self_correlation`.

    ``SC = sum_blocks HSC(block)`` (SPA sums the conv4 and conv5 blocks), then the seeded map,
    ``chunk_size`` images at a time so at most ``chunk_size`` ``N x N`` matrices (times the few
    intermediates of one HSC) are alive: ``[B, K_b, h, w]`` blocks, ``[B, h*w]`` seeds -> ``[B, h*w]``.

    Two optional extensions (SPA's open questions):

    * image affinity, ``image_affinity_weight = w > 0``: ``SC <- (1 - w) SC / n_blocks + w colnorm(A)``
      with ``A`` = :func:`gaussian_affinity` of ``image_features`` ``[B, K, h, w]`` (e.g.
      :func:`colour_position_features`); both terms are column-stochastic. ``w = 0`` leaves ``SC``
      untouched.
    * partner image, ``partner_blocks`` (same shapes as ``blocks``) with ``partner_object_seeds``
      ``[B, h*w]``: the columns of ``X = sum_blocks`` :func:`high_order_cross_correlation` (image
      rows, partner columns) are appended to ``SC`` and the partner's object seeds to the object
      seeds, so ``m+`` sums the image's own and the partner's seed columns (the partner adds no
      background seeds). ``same_image`` ``[B]`` marks images that are their own partner: their map
      is the map without a partner.
    """
    if not blocks:
        raise ValueError("at least one feature block is needed")
    require(chunk_size >= 1, "chunk_size", ">= 1", chunk_size)
    spatial = {tuple(int(side) for side in b.shape[2:]) for b in blocks}  # ints, also when traced
    batch = {int(b.shape[0]) for b in blocks}
    if len(spatial) != 1 or len(batch) != 1:
        shapes = [tuple(b.shape) for b in blocks]
        raise ValueError(f"feature blocks must share batch and spatial size, got {shapes}")
    require(0.0 <= image_affinity_weight <= 1.0, "image_affinity_weight", "in [0, 1]", image_affinity_weight)
    if image_affinity_weight > 0 and (image_features is None or image_features.shape[2:] != blocks[0].shape[2:]):
        shape = None if image_features is None else tuple(image_features.shape)
        expected = f"[B, K, {', '.join(str(d) for d in blocks[0].shape[2:])}]"
        raise ValueError(f"image_affinity_weight > 0 needs image_features {expected}, got {shape}")
    if (partner_blocks is None) != (partner_object_seeds is None):
        raise ValueError("partner_blocks and partner_object_seeds go together")
    if partner_blocks is not None and [tuple(b.shape) for b in partner_blocks] != [tuple(b.shape) for b in blocks]:
        raise ValueError(
            f"partner_blocks must have the blocks' shapes {[tuple(b.shape) for b in blocks]}, "
            f"got {[tuple(b.shape) for b in partner_blocks]}"
        )
    hsc = dict(
        first_order_threshold=first_order_threshold,
        second_order_threshold=second_order_threshold,
        second_order_weight=second_order_weight,
        order=order,
        mode=mode,
    )
    maps = []
    for start in range(0, blocks[0].shape[0], chunk_size):
        chunk = slice(start, start + chunk_size)
        correlation = _summed(high_order_self_correlation(block[chunk], **hsc) for block in blocks)
        if image_affinity_weight > 0:
            affinity = normalize_columns(gaussian_affinity(image_features[chunk]), NORM_EPS)
            correlation = (1 - image_affinity_weight) * correlation / len(blocks) + image_affinity_weight * affinity
            del affinity
        objects, backgrounds = object_seeds[chunk], background_seeds[chunk]
        if partner_blocks is not None:
            same = None if same_image is None else same_image[chunk]
            cross = _summed(
                high_order_cross_correlation(block[chunk], partner[chunk], same, **hsc)
                for block, partner in zip(blocks, partner_blocks, strict=True)
            )
            correlation = torch.cat([correlation, cross], dim=2)
            del cross
            partner_objects = partner_object_seeds[chunk]
            objects = torch.cat([objects, partner_objects], dim=1)
            backgrounds = torch.cat([backgrounds, torch.zeros_like(partner_objects)], dim=1)
        maps.append(seeded_correlation_map(correlation, objects, backgrounds))
    return torch.cat(maps)
