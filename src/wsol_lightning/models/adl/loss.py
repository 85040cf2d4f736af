"""ADL's training objective: the classification loss only (Choe & Shim, CVPR 2019, §3).

ADL adds no loss term; its effect comes from the layers inserted in the forward pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def adl_classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the GAP classifier, computed on the ADL-perturbed features."""
    return F.cross_entropy(logits.float(), labels)
