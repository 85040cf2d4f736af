"""Boxes of a localization map at one threshold, and inclusive-pixel IoU.

Boxes are inclusive pixel coordinates ``[x0, y0, x1, y1]`` throughout the package. The foreground
of a min-max normalized map at threshold ``t`` is the standard evaluation's: the map is quantized
to ``q = floor(255 v)`` and a pixel is foreground when ``q > int(t * max(q))`` (definition 2 of
:mod:`wsol_lightning.cam.maps`). Three box rules:

* ``largest``: the bounding box of the largest outer contour (GT-known / Top-1 Loc, wsolevaluation v1);
* ``all``: one box per contour (MaxBoxAccV2);
* ``union``: the tight box around every foreground pixel (SPA's and DANet's own protocol).

The contour rules run OpenCV's ``findContours`` (``RETR_TREE``, ``CHAIN_APPROX_SIMPLE``) and give
``[x, y, min(x + w, W - 1), min(y + h, H - 1)]`` as the reference does (one pixel too wide unless
clipped). No foreground gives the reference's ``[[0, 0, 0, 0]]``. The metrics sweep every
threshold at once with :mod:`wsol_lightning.cam.sweep`, which is bit-identical to these rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np
import torch

from wsol_lightning.cam.maps import normalize_cam, quantize_cam

BoxRule = Literal["largest", "all", "union"]
BOX_RULES: tuple[str, ...] = ("largest", "all", "union")


def foreground_mask(cam: np.ndarray, threshold: float) -> np.ndarray:
    """Foreground of a normalized ``[H, W]`` map: ``floor(255 v) > int(threshold * max)`` (bool)."""
    quantized = quantize_cam(np.nan_to_num(cam, nan=0.0).clip(0, 1))
    return quantized > int(threshold * int(quantized.max()))


def cam_to_boxes(cam: np.ndarray, threshold: float, rule: BoxRule = "largest") -> np.ndarray:
    """Boxes ``int64 [K, 4]`` of a normalized ``[H, W]`` map at one threshold (see the module docstring).

    Args:
        cam: normalized map in ``[0, 1]`` (NaN counts as 0).
        threshold: CAM threshold in ``[0, 1)``.
        rule: ``largest`` contour, ``all`` contours, or the ``union`` of the foreground pixels.
    """
    if rule not in BOX_RULES:
        raise ValueError(f"box rule must be one of {', '.join(BOX_RULES)}, got {rule!r}")
    height, width = cam.shape
    binary = foreground_mask(cam, threshold)
    if rule == "union":
        if not binary.any():
            return np.zeros((1, 4), np.int64)
        rows, cols = np.flatnonzero(binary.any(axis=1)), np.flatnonzero(binary.any(axis=0))
        return np.array([[cols[0], rows[0], cols[-1], rows[-1]]], np.int64)
    contours, _ = cv2.findContours(binary.astype(np.uint8), cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return np.zeros((1, 4), np.int64)
    if rule == "largest":
        contours = [max(contours, key=cv2.contourArea)]
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
    return np.asarray(boxes, np.int64)


def union_boxes(maps: torch.Tensor, threshold: float) -> torch.Tensor:
    """Batched ``union`` rule on float maps: the box around every pixel ``>= threshold``, ``[B, H, W] -> [B, 4]``.

    SPA's and DANet's code threshold the normalized map directly (``>=``, no quantization); an
    image with no such pixel gets ``[0, 0, 0, 0]``.
    """
    foreground = maps >= threshold
    rows, cols = foreground.any(dim=2), foreground.any(dim=1)
    height, width = maps.shape[-2:]
    y0 = rows.int().argmax(dim=1)
    y1 = height - 1 - rows.flip(1).int().argmax(dim=1)
    x0 = cols.int().argmax(dim=1)
    x1 = width - 1 - cols.flip(1).int().argmax(dim=1)
    boxes = torch.stack([x0, y0, x1, y1], dim=1).long()
    return boxes * rows.any(dim=1, keepdim=True)


def box_iou(boxes: np.ndarray | torch.Tensor, gt_boxes: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """IoU of inclusive pixel boxes (``+1`` on every side), broadcast over ``[..., 4]``, float64.

    Works on numpy arrays and on tensors (the result has the kind of ``boxes``).
    """
    if isinstance(boxes, torch.Tensor):
        iou = box_iou(boxes.detach().cpu().numpy(), torch.as_tensor(gt_boxes).cpu().numpy())
        return torch.as_tensor(iou, dtype=torch.float64, device=boxes.device)
    boxes, gt_boxes = np.asarray(boxes, np.float64), np.asarray(gt_boxes, np.float64)
    lower = np.maximum(boxes[..., :2], gt_boxes[..., :2])
    upper = np.minimum(boxes[..., 2:], gt_boxes[..., 2:])
    intersection = (upper - lower + 1).clip(min=0).prod(axis=-1)
    area = (boxes[..., 2:] - boxes[..., :2] + 1).prod(axis=-1)
    gt_area = (gt_boxes[..., 2:] - gt_boxes[..., :2] + 1).prod(axis=-1)
    return intersection / (area + gt_area - intersection)


def union_box_hits(cams: np.ndarray, boxes: Sequence[np.ndarray], threshold: float, iou_threshold: float) -> np.ndarray:
    """bool ``[N]``: the union box of each min-max normalized map at ``threshold`` has IoU ``> iou_threshold``
    with some GT box (SPA's and DANet's rule; float64 maps ``[N, H, W]``, every image with a box)."""
    predicted = union_boxes(torch.from_numpy(normalize_cam(cams)), threshold).numpy()
    return np.array([box_iou(predicted[j], np.asarray(b)).max() > iou_threshold for j, b in enumerate(boxes)],
                    dtype=bool)


def box_coverage(gt: np.ndarray, pred: np.ndarray) -> float:
    """Share of the inclusive GT box ``[x0, y0, x1, y1]`` covered by the inclusive predicted box."""
    ix = min(gt[2], pred[2]) - max(gt[0], pred[0]) + 1
    iy = min(gt[3], pred[3]) - max(gt[1], pred[1]) + 1
    inter = max(ix, 0) * max(iy, 0)
    return inter / float((gt[2] - gt[0] + 1) * (gt[3] - gt[1] + 1))
