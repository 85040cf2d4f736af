"""SPA's Restricted Activation Module loss (Pan et al., CVPR 2021, §3.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wsol_lightning.models.components import gather_class_maps

VARIANCE_NORM_EPS = 1e-15


def restricted_activation_masks(
    class_maps: torch.Tensor, background_threshold: float, foreground_gap: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Background and object masks ``[B, h, w]`` from the class-probability variance (RAM).

    ``P = softmax_c(A)``; ``V = Var_c(P)`` (unbiased, over the C classes): a peaked class
    distribution (object) has a high variance, a flat one (background) a low one.
    ``V_hat = (V - min V) / (max V - min V + 1e-15)`` per image; background ``V_hat <
    background_threshold``, object ``V_hat > background_threshold + foreground_gap``; positions in
    between are in neither mask. Computed in float32 without gradient.

    Args:
        class_maps: ``[B, C, h, w]`` class maps ``A``.
        background_threshold: ``tau_bg``.
        foreground_gap: ``g``, so the object threshold is ``tau_bg + g``.
    """
    with torch.no_grad():
        variance = F.softmax(class_maps.float(), dim=1).var(dim=1, unbiased=True)
        flat = variance.flatten(1)
        low = flat.amin(dim=1, keepdim=True)
        normalized = (flat - low) / (flat.amax(dim=1, keepdim=True) - low + VARIANCE_NORM_EPS)
        normalized = normalized.view_as(variance)
        return normalized < background_threshold, normalized > background_threshold + foreground_gap


def restricted_activation_loss(
    class_maps: torch.Tensor,
    labels: torch.Tensor,
    background_threshold: float = 0.1,
    foreground_gap: float = 0.2,
) -> torch.Tensor:
    """RAM loss ``L_RA = mean_{b,i,j}( S M_bg + (1 - S) M_fg )`` with ``S = sigmoid(A_y)``.

    Pushes the GT-class map towards 0 on background and 1 on object positions
    (:func:`restricted_activation_masks`). The mean runs over every position of the batch,
    including those in neither mask (as the official code). The gradient flows into ``A_y`` only.

    Args:
        class_maps: ``[B, C, h, w]`` class maps ``A`` (raw, the ones whose GAP are the logits).
        labels: ``[B]`` GT classes.
        background_threshold: ``tau_bg`` (CUB 0.1, ILSVRC 0.4).
        foreground_gap: ``g`` (CUB 0.2, ILSVRC 0.1).
    """
    background, foreground = restricted_activation_masks(class_maps, background_threshold, foreground_gap)
    restricted = torch.sigmoid(gather_class_maps(class_maps, labels).float())
    return (restricted * background + (1.0 - restricted) * foreground).mean()
