"""MCIS losses (Sun et al., ECCV 2020, Sec. 3): single, co-attention and contrastive co-attention.

Every term is a classification loss on a set of class labels (multi-hot targets):
:func:`~wsol_lightning.models.components.label_loss.label_loss` (shared: the paper's multilabel soft
margin loss, or a softmax cross-entropy over labelled rows as an option for single-label WSOL). The
pairs' label sets are built here.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class PairTargets(NamedTuple):
    common: torch.Tensor  # [P, C] l_m AND l_n
    unique_m: torch.Tensor  # [P, C] l_m minus the common labels
    unique_n: torch.Tensor  # [P, C]


def pair_targets(targets_m: torch.Tensor, targets_n: torch.Tensor) -> PairTargets:
    """Common labels ``l_m ∩ l_n`` and unique labels ``l_m \\ l_n``, ``l_n \\ l_m`` of multi-hot targets."""
    common = targets_m * targets_n
    return PairTargets(common, targets_m - common, targets_n - common)
