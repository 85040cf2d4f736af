"""I2C losses (Zhang et al., ECCV 2020, Sec. 3): stochastic and global consistency.

Distances are Euclidean (not squared) between raw backbone feature vectors, as the official code
(``F.pairwise_distance``); they are computed in float32.

Attribute level (``consistency_unit: attribute``, our extension): the unit of consistency is the
set ``P_n = {a : attributes_{n,a} > 0}`` of an image's binary attributes instead of its class.

* SC: every image pair ``i < j`` of the batch, weighted by the Jaccard overlap of its attribute
  sets ``w_ij = |P_i & P_j| / |P_i | P_j|``:
  ``L_SC = sum_{i<j} w_ij d_ij / sum_{i<j} w_ij``, ``d_ij = mean_s || v_{i,s} - v_{j,s} ||_2``.
* GC: a bank of per-attribute centroids ``G_a`` (moving average of the seed centres
  ``c_n = mean_s v_{n,s}`` of the images holding ``a``); each image's centre is pulled towards
  its prototype ``p_n = mean_{a in P_n, seen} G_a``: ``L_GC = mean_n || p_n - c_n ||_2``.

With one-hot class attributes they reduce to the class-level losses taken over every same-class
pair of the batch (not only the ``(2k, 2k + 1)`` pairs) and over images instead of pairs.
"""

from __future__ import annotations

import torch


def same_class_pairs(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(first, second)`` of the batch pairs ``(2k, 2k + 1)`` whose two labels agree.

    The class-paired sampler puts pairs at these positions; other pairs (different classes, or a
    shuffled batch) and an odd last image are left out.
    """
    first = torch.arange(0, labels.shape[0] - 1, 2, device=labels.device)
    keep = labels[first] == labels[first + 1]
    return first[keep], first[keep] + 1


def stochastic_consistency_loss(seeds_a: torch.Tensor, seeds_b: torch.Tensor) -> torch.Tensor:
    """SC loss: ``mean_{k,s} || v_{A_k,s} - v_{B_k,s} ||_2`` over seeds ``[K, S, D]`` matched by index.

    Pulls the object seeds of two same-class images together. Zero when there is no pair.
    """
    if seeds_a.shape[0] == 0:
        return seeds_a.new_zeros((), dtype=torch.float32)
    return torch.linalg.vector_norm(seeds_a.float() - seeds_b.float(), dim=-1).mean()


def global_consistency_loss(
    centres: torch.Tensor, centroids: torch.Tensor, classes: torch.Tensor, seen: torch.Tensor
) -> torch.Tensor:
    """GC loss: ``mean_k || G_{y_k} - c_k ||_2`` over the pairs whose class the bank has seen.

    ``centres [K, D]`` are the pairs' mean seed vectors ``c_k``, ``centroids [C, D]`` the bank ``G``
    before this step's update (no gradient flows into it), ``seen [C]`` the bank's seen mask. Zero
    when no pair's class has been seen.
    """
    known = seen[classes]
    if not bool(known.any()):
        return centres.new_zeros((), dtype=torch.float32)
    targets = centroids.detach()[classes[known]].float()
    return torch.linalg.vector_norm(targets - centres[known].float(), dim=-1).mean()


def attribute_overlap(present: torch.Tensor) -> torch.Tensor:
    """Jaccard overlap ``w_ij = |P_i & P_j| / |P_i | P_j|`` ``[B, B]`` of the attribute sets ``present``.

    ``present [B, A]`` (bool); 0 where both sets are empty. Counts are exact (no matmul, so no
    reduced precision under autocast).
    """
    shared = (present[:, None, :] & present[None, :, :]).sum(dim=-1).float()
    union = (present[:, None, :] | present[None, :, :]).sum(dim=-1).float()
    return shared / union.clamp_min(1.0)


def attribute_consistency_loss(seeds: torch.Tensor, overlap: torch.Tensor) -> torch.Tensor:
    """Attribute-level SC: ``sum_{i<j} w_ij d_ij / sum_{i<j} w_ij``.

    ``d_ij = mean_s || v_{i,s} - v_{j,s} ||_2`` is the SC distance of images ``i`` and ``j``;
    ``seeds [B, S, D]`` are matched by index (as in SC), ``overlap [B, B]`` holds the weights ``w``
    (:func:`attribute_overlap`). Every image pair of the batch counts, in proportion to the
    attributes it shares. Zero when no pair shares an attribute.
    """
    first, second = torch.triu_indices(seeds.shape[0], seeds.shape[0], offset=1, device=seeds.device)
    weights = overlap[first, second].float()
    distances = torch.linalg.vector_norm(seeds[first].float() - seeds[second].float(), dim=-1).mean(dim=-1)
    return (weights * distances).sum() / weights.sum().clamp_min(1e-12)


def attribute_global_consistency_loss(
    centres: torch.Tensor, centroids: torch.Tensor, present: torch.Tensor, seen: torch.Tensor
) -> torch.Tensor:
    """Attribute-level GC: ``mean_n || p_n - c_n ||_2`` with ``p_n = mean_{a in P_n, a seen} G_a``.

    ``centres [B, D]`` are the images' mean seed vectors ``c_n``, ``centroids [A, D]`` the attribute
    bank ``G`` before this step's update (no gradient flows into it), ``present [B, A]`` the attribute
    sets, ``seen [A]`` the bank's seen mask. Images with no seen attribute are left out; zero when
    none is left.
    """
    known = (present & seen[None, :]).float()
    counts = known.sum(dim=1)
    kept = counts > 0
    if not bool(kept.any()):
        return centres.new_zeros((), dtype=torch.float32)
    prototypes = known[kept] @ centroids.detach().float() / counts[kept, None]
    return torch.linalg.vector_norm(prototypes - centres[kept].float(), dim=-1).mean()
