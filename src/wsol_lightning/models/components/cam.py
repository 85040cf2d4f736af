"""CAM normalization in torch, batched, for use inside training and in methods' forward passes.

The evaluation's own float64 normalization lives in :mod:`wsol_lightning.metrics`; this one is the
differentiable, batched form the methods use (ACoL's branch fusion, SPA's seeds, ...).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch


def minmax_normalize(maps: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Per-map min-max normalization over the last two dims: ``(x - min) / (max - min)``.

    A constant map (``max == min``) and any map with a NaN become all zeros, as in the
    standard evaluation, so the result is always finite. ``eps`` is added to the denominator
    when positive (some papers' code does so).
    """
    flat = maps.flatten(-2)
    finite = torch.isfinite(flat).all(dim=-1, keepdim=True)
    safe = torch.where(torch.isfinite(flat), flat, torch.zeros_like(flat))
    low = safe.amin(dim=-1, keepdim=True)
    span = safe.amax(dim=-1, keepdim=True) - low
    valid = finite & (span > 0)
    denom = torch.where(valid, span, torch.ones_like(span)) + eps
    out = torch.where(valid, (safe - low) / denom, torch.zeros_like(safe))
    return out.view_as(maps)


def cam_to_boxes(cam: np.ndarray, threshold: float, multi_contour: bool = False) -> np.ndarray:
    """Boxes of a normalized ``[H, W]`` map at one threshold, by the standard evaluation's rule.

    The map is quantized to uint8 (``floor(255 v)``), foreground is ``q > int(threshold * q.max())``,
    and every outer contour gives ``[x, y, min(x + w, W - 1), min(y + h, H - 1)]`` (inclusive);
    ``multi_contour=False`` keeps the largest contour. No foreground gives ``[[0, 0, 0, 0]]``.
    This is the single-threshold form used for display and prediction; the metrics sweep every
    threshold at once.
    """
    height, width = cam.shape
    quantized = (np.nan_to_num(cam, nan=0.0).clip(0, 1) * 255).astype(np.uint8)
    cut = int(threshold * int(quantized.max()))
    binary = (quantized > cut).astype(np.uint8)
    contours, _ = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return np.zeros((1, 4), np.int64)
    if not multi_contour:
        contours = [max(contours, key=cv2.contourArea)]
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
    return np.asarray(boxes, np.int64)
