"""CutMix's objective: cross-entropy with labels mixed by area (Yun et al., ICCV 2019, Eq. 1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cutmix_cross_entropy(
    logits: torch.Tensor, labels_a: torch.Tensor, labels_b: torch.Tensor, lam: float
) -> torch.Tensor:
    """``lam CE(logits, y_a) + (1 - lam) CE(logits, y_b)``, each CE a batch mean, in float32.

    Equal to the cross-entropy against the mixed one-hot target ``lam y_a + (1 - lam) y_b`` of
    Eq. 1, with ``lam`` the share of the image that still shows ``y_a``.
    """
    logits = logits.float()
    return lam * F.cross_entropy(logits, labels_a) + (1.0 - lam) * F.cross_entropy(logits, labels_b)
