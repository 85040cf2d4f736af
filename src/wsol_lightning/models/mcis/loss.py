"""MCIS losses (Sun et al., ECCV 2020, Sec. 3): single, co-attention and contrastive co-attention.

Every term is a classification loss on a set of class labels (multi-hot targets): the paper's
multilabel soft margin loss (mean over classes of a sigmoid BCE), or, as an option for single-label
WSOL, a softmax cross-entropy over the rows that have a positive label.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F

LabelLoss = Literal["mlsm", "ce"]


class PairTargets(NamedTuple):
    common: torch.Tensor  # [P, C] l_m AND l_n
    unique_m: torch.Tensor  # [P, C] l_m minus the common labels
    unique_n: torch.Tensor  # [P, C]


def pair_targets(targets_m: torch.Tensor, targets_n: torch.Tensor) -> PairTargets:
    """Common labels ``l_m ∩ l_n`` and unique labels ``l_m \\ l_n``, ``l_n \\ l_m`` of multi-hot targets."""
    common = targets_m * targets_n
    return PairTargets(common, targets_m - common, targets_n - common)


def label_loss(logits: torch.Tensor, targets: torch.Tensor, kind: LabelLoss = "mlsm") -> torch.Tensor:
    """Classification loss of ``logits [N, C]`` against multi-hot ``targets [N, C]`` (float32).

    ``mlsm``: ``F.multilabel_soft_margin_loss`` over every row (a row without labels pushes every
    class down, as the paper's contrastive term on pairs with nothing unique). ``ce``: softmax
    cross-entropy against the normalized targets over the rows with a label only (zero if none).
    """
    logits = logits.float()
    targets = targets.float()
    if kind == "mlsm":
        return F.multilabel_soft_margin_loss(logits, targets)
    if kind == "ce":
        labelled = targets.sum(dim=1) > 0
        if not bool(labelled.any()):
            return logits.new_zeros(())
        rows = targets[labelled]
        return F.cross_entropy(logits[labelled], rows / rows.sum(dim=1, keepdim=True))
    raise ValueError(f"label_loss must be 'mlsm' or 'ce', got {kind!r}")
