"""Map-level operations: resize, normalize, quantize, thresholds (wsolevaluation, Choe et al., CVPR 2020).

The evaluation functions follow one numbered definition of issue 2 ("Exact definitions"), which
restates the reference evaluator (``clovaai/wsolevaluation``: ``inference.py`` and
``evaluation.py``) including its quirks; they are float64 and work on one map ``[H, W]`` or a
batch ``[N, H, W]``. :func:`minmax_normalize` and :func:`max_normalize` are the batched,
differentiable torch forms the methods use inside their networks (ACoL's fusion, SPA's seeds,
MCIS's co-attention average). One rule holds for every normalization here: a map containing
NaN, or a constant map, becomes all zeros.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import cv2
import numpy as np
import torch

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)


def as_numpy_float64(cams: np.ndarray | torch.Tensor) -> np.ndarray:
    """Return ``cams`` as a C-contiguous float64 numpy array (a copy only when needed)."""
    if isinstance(cams, torch.Tensor):
        cams = cams.detach().to(device="cpu", dtype=torch.float64).numpy()
    return np.ascontiguousarray(cams, dtype=np.float64)


def _batched(cams: np.ndarray) -> np.ndarray:
    if cams.ndim == 2:
        return cams[None]
    if cams.ndim != 3:
        raise ValueError(f"expected a map [H, W] or a batch of maps [N, H, W], got shape {tuple(cams.shape)}")
    return cams


def normalize_cam(cams: ArrayOrTensor) -> ArrayOrTensor:
    """Min-max normalize each map to [0, 1] in float64 (definition 1; reference ``normalize_scoremap``).

    A map containing NaN, or a constant map, becomes all zeros. Otherwise ``x - min`` is divided
    (not multiplied by a reciprocal) by its maximum, so the maximum is exactly 1.0.

    Args:
        cams: raw maps ``[H, W]`` or ``[N, H, W]`` (numpy array or tensor, any float dtype).

    Returns:
        float64 maps of the same shape and kind (a tensor stays on its device).

    Raises:
        ValueError: a non-constant map without NaN contains +-inf (the reference rejects the NaN
            its normalization then produces).
    """
    if isinstance(cams, torch.Tensor):
        return torch.from_numpy(normalize_cam(as_numpy_float64(cams))).to(cams.device)
    maps = _batched(as_numpy_float64(cams))
    flat = maps.reshape(len(maps), -1)
    lowest = flat.min(axis=1) if flat.shape[1] else np.zeros(len(maps))
    highest = flat.max(axis=1) if flat.shape[1] else np.zeros(len(maps))
    zero = np.isnan(flat).any(axis=1) | (lowest == highest)
    if not np.isfinite(flat[~zero]).all():
        raise ValueError("a CAM contains +-inf; only NaN maps (set to zeros) and finite maps are accepted")
    out = np.zeros_like(maps)
    keep = ~zero
    if keep.any():
        shifted = maps[keep] - lowest[keep, None, None]
        out[keep] = shifted / shifted.reshape(len(shifted), -1).max(axis=1)[:, None, None]
    return out.reshape(np.shape(cams))


def quantize_cam(normalized: np.ndarray) -> np.ndarray:
    """Floor-quantize normalized maps to uint8, ``uint8(v * 255)`` (definition 2)."""
    return (np.asarray(normalized, dtype=np.float64) * 255).astype(np.uint8)


def cam_thresholds(cam_curve_interval: float) -> np.ndarray:
    """The reference's CAM thresholds, exactly ``np.arange(0, 1, cam_curve_interval)`` in float64."""
    if not 0 < cam_curve_interval < 1:
        raise ValueError(f"cam_curve_interval must be in (0, 1), got {cam_curve_interval}")
    return np.arange(0, 1, cam_curve_interval, dtype=np.float64)


def threshold_cuts(thresholds: np.ndarray, quantized_max: np.ndarray) -> np.ndarray:
    """Integer cuts ``int(t * max(q))`` per map and threshold (definition 2); foreground is ``q > cut``.

    Args:
        thresholds: float64 thresholds ``[K]``.
        quantized_max: maximum of each uint8 map ``[N]``.

    Returns:
        int64 cuts ``[N, K]``.
    """
    products = (
        np.asarray(thresholds, dtype=np.float64)[None, :]
        * np.asarray(quantized_max, dtype=np.float64)[:, None]
    )
    return products.astype(np.int64)


def pxap_bin_edges(cam_curve_interval: float) -> np.ndarray:
    """PxAP histogram edges ``np.append(np.arange(0, 1, interval), [1, 2, 3])`` (definition 6)."""
    return np.append(cam_thresholds(cam_curve_interval), [1.0, 2.0, 3.0])


def resize_cam(cams: ArrayOrTensor, size: Sequence[int]) -> ArrayOrTensor:
    """Resize maps to ``size = (H, W)`` with float64 bicubic interpolation (reference ``inference.py``).

    Identical to ``cv2.resize(cam.astype(float64), (W, H), interpolation=cv2.INTER_CUBIC)`` (which
    it calls): the reference resizes the raw map before normalizing it.

    Args:
        cams: raw maps ``[h, w]`` or ``[N, h, w]`` (numpy array or tensor).
        size: target ``(H, W)``.

    Returns:
        float64 maps ``[H, W]`` or ``[N, H, W]`` of the same kind (a tensor stays on its device).
    """
    if isinstance(cams, torch.Tensor):
        return torch.from_numpy(resize_cam(as_numpy_float64(cams), size)).to(cams.device)
    height, width = (int(s) for s in size)
    maps = _batched(as_numpy_float64(cams))
    out = np.empty((len(maps), height, width), dtype=np.float64)
    for i, cam in enumerate(maps):
        out[i] = cv2.resize(cam, (width, height), interpolation=cv2.INTER_CUBIC)
    return out if np.ndim(cams) == 3 else out[0]


def minmax_normalize(maps: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Differentiable per-map min-max normalization over the last two dims: ``(x - min) / (max - min)``.

    A constant map and any map with a NaN become all zeros (the rule of :func:`normalize_cam`), so
    the result is always finite. ``eps`` is added to the denominator when positive (some papers'
    code does so). Dtype and device are kept.
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


def max_normalize(maps: torch.Tensor) -> torch.Tensor:
    """Per-map division by the maximum over the last two dims, for non-negative maps (e.g. ReLU'd).

    A map whose maximum is not positive, or that holds a NaN, becomes all zeros (the rule above).
    """
    flat = maps.flatten(-2)
    peak = flat.amax(dim=-1, keepdim=True)
    valid = torch.isfinite(flat).all(dim=-1, keepdim=True) & (peak > 0)
    out = torch.where(valid, flat / torch.where(valid, peak, torch.ones_like(peak)), torch.zeros_like(flat))
    return out.view_as(maps)
