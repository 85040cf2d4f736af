"""Attention-based Dropout Layer (ADL; Choe & Shim, CVPR 2019), a parameter-free layer.

For a feature map ``X [B, C, H, W]`` (post-ReLU at every insertion point), in training:

1. self-attention map ``a = mean_c X_c`` ``[B, 1, H, W]`` (channel-wise average pooling);
2. importance map ``I = sigmoid(a)``;
3. drop mask ``D = 1[a < gamma * max_hw a]`` (per-sample max, strict ``<``): the most activated
   positions, ``a >= gamma * max``, are zeroed;
4. a random draw picks ``D`` with probability ``drop_rate`` and ``I`` otherwise; output ``X * map``.

At evaluation (``module.eval()``) the layer is the identity.

The draw is the one choice the official code makes that is easy to change by accident: both the
official TensorFlow code and wsolevaluation draw **one** ``u ~ U[0, 1)`` per layer per forward call,
shared by the whole batch (``draw="batch"``, the default). ``draw="sample"`` draws one per image, a
variant that changes the method (documented, not the paper). Draws use ``generator`` when given,
else the global CPU RNG (seeded by ``seed_everything``); they are made on the CPU so a seed gives
the same selections on any device.

The pieces are also functions (:func:`channel_mean_attention`, :func:`drop_mask`,
:func:`importance_map`, :func:`draw_drop_selection`) and :meth:`AttentionBasedDropout.forward`
accepts an external attention map, so methods that replace the channel-mean attention (ICL) reuse
the layer unchanged.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from wsol_lightning.models.components.options import require, require_choice

DrawMode = Literal["batch", "sample"]


def channel_mean_attention(features: torch.Tensor) -> torch.Tensor:
    """Self-attention map ``a = mean_c X_c`` of ``[B, C, H, W]`` features, ``[B, 1, H, W]``, in float32."""
    return features.float().mean(dim=1, keepdim=True)


def drop_mask(attention: torch.Tensor, drop_threshold: float) -> torch.Tensor:
    """ADL drop mask ``1[a < gamma * max_hw a]`` ``[B, 1, H, W]`` (float, 0 on the dropped positions).

    The max is per sample over the spatial positions; the comparison is strict as in the official
    code, so every position with ``a >= gamma * max`` is dropped.
    """
    peak = attention.amax(dim=(-2, -1), keepdim=True)
    return (attention < drop_threshold * peak).to(attention.dtype)


def importance_map(attention: torch.Tensor) -> torch.Tensor:
    """ADL importance map ``sigmoid(a)`` (gradient flows through it, as in the official code)."""
    return torch.sigmoid(attention)


def draw_drop_selection(
    batch_size: int,
    drop_rate: float,
    draw: DrawMode = "batch",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Which images use the drop mask this step: bool ``[B]``.

    ``draw="batch"``: one ``u ~ U[0, 1)`` for the whole batch, ``floor(u + drop_rate) == 1`` (the
    official rule: true with probability ``drop_rate``); ``draw="sample"``: one ``u`` per image.
    Drawn on the CPU from ``generator`` (or the global RNG).
    """
    require_choice("draw", draw, ("batch", "sample"))
    count = 1 if draw == "batch" else batch_size
    uniform = torch.rand(count, generator=generator)
    return (uniform + drop_rate).floor().bool().expand(batch_size)


class AttentionBasedDropout(nn.Module):
    """ADL (Choe & Shim, CVPR 2019, §3): drop mask or importance map, drawn per step; identity in eval.

    Args:
        drop_rate: probability of selecting the drop mask instead of the importance map (official
            code and wsolevaluation: 0.75).
        drop_threshold: ``gamma``, the drop mask zeroes positions with attention ``>= gamma * max``
            (official run script and wsolevaluation's config: 0.9; wsolevaluation's ADL class
            default: 0.8).
        draw: ``"batch"`` (official: one draw per layer per step shared by the batch) or
            ``"sample"`` (one draw per image; a variant, not the paper).
        generator: CPU ``torch.Generator`` for the draws; ``None`` uses the global RNG.
    """

    def __init__(
        self,
        drop_rate: float = 0.75,
        drop_threshold: float = 0.9,
        draw: DrawMode = "batch",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        require(0.0 <= drop_rate <= 1.0, "drop_rate", "in [0, 1]", drop_rate)
        require(0.0 <= drop_threshold <= 1.0, "drop_threshold", "in [0, 1]", drop_threshold)
        require_choice("draw", draw, ("batch", "sample"))
        self.drop_rate = drop_rate
        self.drop_threshold = drop_threshold
        self.draw = draw
        self.generator = generator

    def forward(self, features: torch.Tensor, attention: torch.Tensor | None = None) -> torch.Tensor:
        """``X * D`` or ``X * I`` in training, ``X`` in eval.

        Args:
            features: ``[B, C, H, W]``.
            attention: ``[B, 1, H, W]`` map replacing the channel mean (e.g. ICL's attention).
        """
        if not self.training:
            return features
        if attention is None:
            attention = channel_mean_attention(features)
        use_drop = draw_drop_selection(features.shape[0], self.drop_rate, self.draw, self.generator)
        use_drop = use_drop.to(features.device).view(-1, 1, 1, 1)
        selected = torch.where(use_drop, drop_mask(attention, self.drop_threshold), importance_map(attention))
        return features * selected.to(features.dtype)

    def extra_repr(self) -> str:
        return f"drop_rate={self.drop_rate}, drop_threshold={self.drop_threshold}, draw={self.draw!r}"
