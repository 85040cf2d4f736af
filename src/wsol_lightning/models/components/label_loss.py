"""Classification loss of multi-hot targets (MCIS's terms; any method's multi-label setting).

The multilabel soft margin loss (MCIS Sec. 3, Eq. 7: the mean over classes of a sigmoid BCE) or,
as an option for single-label WSOL, a softmax cross-entropy over the rows that have a positive label.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

LabelLoss = Literal["mlsm", "ce"]


def label_loss(logits: torch.Tensor, targets: torch.Tensor, kind: LabelLoss = "mlsm") -> torch.Tensor:
    """Classification loss of ``logits [N, C]`` against multi-hot ``targets [N, C]`` (float32).

    ``mlsm``: ``F.multilabel_soft_margin_loss`` over every row (a row without labels pushes every
    class down, as MCIS's contrastive term on pairs with nothing unique). ``ce``: softmax
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
