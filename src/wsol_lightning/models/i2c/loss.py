"""I2C losses (Zhang et al., ECCV 2020, Sec. 3): stochastic and global consistency.

Distances are Euclidean (not squared) between raw backbone feature vectors, as the official code
(``F.pairwise_distance``); they are computed in float32.
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
