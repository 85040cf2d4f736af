"""Training-time batch transforms of the CAM family: Hide-and-Seek and CutMix (CAM note §7).

Both act on the training batch ``[B, C, H, W]`` (RGB in ``[0, 1]``) inside the training step and draw
every random number from an explicit ``torch.Generator`` (on the CPU), so a seed gives the same
hidden patches / boxes on every device. Neither is applied at evaluation.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from wsol_lightning.models.components.options import require


def hidden_patch_mask(
    batch_size: int,
    height: int,
    width: int,
    grid_size: int,
    hide_prob: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Which pixels Hide-and-Seek hides: bool ``[B, H, W]`` (Singh & Lee, ICCV 2017, §3.1).

    The image is cut into ``grid_size x grid_size``-pixel patches starting at the top-left corner
    (``ceil(H / S)`` rows by ``ceil(W / S)`` columns; the last row/column is cut at the border, so
    non-square images are tiled correctly). Each patch of each image is hidden independently when
    its uniform draw ``u ~ U[0, 1)`` satisfies ``u < hide_prob``; the draws are one
    ``[B, rows, cols]`` tensor from ``generator``.
    """
    rows, cols = math.ceil(height / grid_size), math.ceil(width / grid_size)
    hidden_cells = torch.rand(batch_size, rows, cols, generator=generator) < hide_prob
    pixels = hidden_cells.repeat_interleave(grid_size, dim=1).repeat_interleave(grid_size, dim=2)
    return pixels[:, :height, :width]


def hide_patches(
    images: torch.Tensor,
    grid_size: int,
    hide_prob: float,
    fill: float | torch.Tensor = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Hide-and-Seek: ``images`` with random grid patches set to ``fill`` (a new tensor).

    Args:
        images: batch ``[B, C, H, W]``.
        grid_size: patch side ``S`` in pixels (wsolevaluation's ``has_grid_size``); 0 returns the
            batch unchanged (wsolevaluation's "off").
        hide_prob: probability that a patch is hidden (wsolevaluation's ``has_drop_rate``).
        fill: value written into hidden patches: one for every channel, or one per channel ``[C]``
            (HaS passes the backbone's mean pixel, the paper's fill, which is 0 after normalization
            as in wsolevaluation).
        generator: source of the patch draws (CPU); ``None`` uses the global RNG.
    """
    require(grid_size >= 0, "grid_size", ">= 0 (0 disables hiding)", grid_size)
    require(0.0 <= hide_prob <= 1.0, "hide_prob", "in [0, 1]", hide_prob)
    if grid_size == 0:
        return images
    batch_size, _, height, width = images.shape
    hidden = hidden_patch_mask(batch_size, height, width, grid_size, hide_prob, generator)
    fill = torch.as_tensor(fill, dtype=images.dtype, device=images.device).reshape(1, -1, 1, 1)
    return torch.where(hidden.to(images.device)[:, None], fill, images)


class CutMixBatch(NamedTuple):
    images: torch.Tensor  # [B, C, H, W] the mixed batch
    labels_a: torch.Tensor  # [B] each image's own label
    labels_b: torch.Tensor  # [B] the label of the partner whose patch was pasted
    lam: float  # 1 - pasted area / (H W): the weight of labels_a
    box: tuple[int, int, int, int]  # pasted region (y0, x0, y1, x1), half-open; empty when not mixed


def cutmix_box(
    height: int, width: int, lam: float, generator: torch.Generator | None = None
) -> tuple[int, int, int, int]:
    """CutMix's region for a drawn ``lam`` (Yun et al., ICCV 2019, Eq. 2 and §3.1).

    Box sides ``int(H sqrt(1 - lam))`` by ``int(W sqrt(1 - lam))`` centred at a uniform integer pixel
    ``(cy, cx)``, each half-side ``side // 2`` on both sides of the centre (as the official code), then
    clipped to the image: half-open ``(y0, x0, y1, x1)``.
    """
    cut_ratio = math.sqrt(1.0 - lam)
    half_h, half_w = int(height * cut_ratio) // 2, int(width * cut_ratio) // 2
    cy = int(torch.randint(height, (1,), generator=generator))
    cx = int(torch.randint(width, (1,), generator=generator))
    y0, y1 = min(max(cy - half_h, 0), height), min(max(cy + half_h, 0), height)
    x0, x1 = min(max(cx - half_w, 0), width), min(max(cx + half_w, 0), width)
    return y0, x0, y1, x1


def cutmix(
    images: torch.Tensor,
    labels: torch.Tensor,
    beta: float = 1.0,
    prob: float = 1.0,
    generator: torch.Generator | None = None,
) -> CutMixBatch:
    """CutMix on a batch (Yun et al., ICCV 2019, Eq. 1; wsolevaluation's batch form, CAM note §7).

    With probability ``prob`` (one draw per batch, and only when ``beta > 0``): ``lam ~ Beta(beta,
    beta)``, a random permutation gives each image a partner, the partner's pixels inside
    :func:`cutmix_box` are pasted, and ``lam`` is recomputed from the clipped box as
    ``1 - box area / (H W)``, the share of the image that still shows ``labels_a``. Otherwise the
    batch is returned unchanged with ``labels_b = labels_a`` and ``lam = 1``. Boxes/masks of the
    batch are not touched: the loss is image-level.

    Args:
        images: ``[B, C, H, W]``; not modified (a new tensor is returned when mixed).
        labels: ``[B]`` class indices.
        beta: Beta distribution parameter ``alpha = beta`` (paper and wsolevaluation: 1, i.e.
            ``lam ~ U(0, 1)``).
        prob: probability of mixing a batch.
        generator: source of every draw (CPU); ``None`` uses the global RNG. ``lam`` is drawn by a
            NumPy generator seeded from it (torch's Beta sampler takes no generator).
    """
    require(beta >= 0, "beta", ">= 0 (0 disables CutMix)", beta)
    require(0.0 <= prob <= 1.0, "prob", "in [0, 1]", prob)
    apply = float(torch.rand((), generator=generator)) < prob
    if not apply or beta == 0:
        return CutMixBatch(images, labels, labels, 1.0, (0, 0, 0, 0))
    seed = int(torch.randint(2**62, (1,), generator=generator))
    lam = float(np.random.default_rng(seed).beta(beta, beta))
    partner = torch.randperm(images.shape[0], generator=generator).to(images.device)
    height, width = images.shape[-2:]
    y0, x0, y1, x1 = cutmix_box(height, width, lam, generator)
    mixed = images.clone()
    mixed[:, :, y0:y1, x0:x1] = images[partner, :, y0:y1, x0:x1]
    lam = 1.0 - (y1 - y0) * (x1 - x0) / (height * width)
    return CutMixBatch(mixed, labels, labels[partner], lam, (y0, x0, y1, x1))


def step_generator(offset: int = 0) -> torch.Generator:
    """A CPU generator seeded from the global torch RNG (plus ``offset``, e.g. the DDP rank).

    Called once per training step, it makes the batch transforms reproducible under
    ``seed_everything`` while advancing the global RNG by exactly one draw.
    """
    seed = int(torch.randint(2**62, (1,))) + offset
    return torch.Generator().manual_seed(seed)
