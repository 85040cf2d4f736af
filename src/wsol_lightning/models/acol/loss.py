"""ACoL's objective (Zhang et al., CVPR 2018, §3.2): ``L = CE(s^A, y) + CE(s^B, y)``, equal weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wsol_lightning.models.acol.torch_model import ACoLOutput


def acol_losses(output: ACoLOutput, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Cross-entropy of classifier A (``ce_a``) and of classifier B on the erased feature (``ce_b``).

    Logits are cast to float32 so the loss is exact under mixed precision.
    """
    return {
        "ce_a": F.cross_entropy(output.logits.float(), labels),
        "ce_b": F.cross_entropy(output.logits_erased.float(), labels),
    }
