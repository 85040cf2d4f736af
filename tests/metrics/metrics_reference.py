"""A deliberately naive reference of the wsolevaluation metrics, written from issue 2's definitions.

One OpenCV contour search per threshold per image, as the standard evaluator does, with no
shared code with ``wsol_lightning.metrics``: it is what the fast implementation is checked
against.
"""

from __future__ import annotations

import cv2
import numpy as np


def normalize(cam: np.ndarray) -> np.ndarray:
    """Definition 1: NaN or constant -> zeros, else ``(x - min) / max(x - min)`` in float64."""
    cam = np.array(cam, dtype=np.float64)
    if np.isnan(cam).any() or cam.min() == cam.max():
        return np.zeros_like(cam)
    cam -= cam.min()
    cam /= cam.max()
    return cam


def thresholds(interval: float) -> np.ndarray:
    return np.arange(0, 1, interval)


def boxes_at_threshold(
    scoremap: np.ndarray, threshold: float, multi_contour: bool
) -> list[tuple[int, int, int, int]]:
    """Definitions 2-3 with OpenCV: threshold the uint8 map, find contours, box them."""
    height, width = scoremap.shape
    image = (scoremap * 255).astype(np.uint8)
    cut = int(threshold * np.max(image))
    _, binary = cv2.threshold(image, cut, 255, cv2.THRESH_BINARY)
    contours, _ = cv2.findContours(binary, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    if len(contours) == 0:
        return [(0, 0, 0, 0)]
    if not multi_contour:
        contours = [max(contours, key=cv2.contourArea)]
    boxes = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        boxes.append((x, y, min(x + w, width - 1), min(y + h, height - 1)))
    return boxes


def hits(boxes: list[tuple[int, int, int, int]], gt_boxes: np.ndarray, deltas: tuple[int, ...]) -> list[bool]:
    """Definition 4: some (box, GT box) pair has IoU >= delta / 100, compared in integers."""
    pred = np.asarray(boxes, dtype=np.int64)[:, None, :]
    gt = np.asarray(gt_boxes, dtype=np.int64).reshape(-1, 4)[None, :, :]
    inter_w = np.maximum(0, np.minimum(pred[..., 2], gt[..., 2]) - np.maximum(pred[..., 0], gt[..., 0]) + 1)
    inter_h = np.maximum(0, np.minimum(pred[..., 3], gt[..., 3]) - np.maximum(pred[..., 1], gt[..., 1]) + 1)
    inter = inter_w * inter_h
    area_pred = (pred[..., 2] - pred[..., 0] + 1) * (pred[..., 3] - pred[..., 1] + 1)
    area_gt = (gt[..., 2] - gt[..., 0] + 1) * (gt[..., 3] - gt[..., 1] + 1)
    union = area_pred + area_gt - inter
    return [bool((100 * inter >= delta * union).any()) for delta in deltas]


def hit_table(
    cams: list[np.ndarray],
    gt_boxes: list[np.ndarray],
    interval: float,
    deltas: tuple[int, ...],
    multi_contour: bool,
) -> np.ndarray:
    """bool ``[N, D, K]``: image n hits IoU deltas[d] at threshold k."""
    ts = thresholds(interval)
    table = np.zeros((len(cams), len(deltas), len(ts)), dtype=bool)
    for n, (cam, gt) in enumerate(zip(cams, gt_boxes)):
        scoremap = normalize(cam)
        for k, t in enumerate(ts):
            table[n, :, k] = hits(boxes_at_threshold(scoremap, t, multi_contour), gt, deltas)
    return table


def max_box_acc(table: np.ndarray, interval: float) -> dict[str, object]:
    """Definition 5 from a hit table: per-delta maximum, its first threshold, their mean."""
    counts = table.sum(axis=0)
    accuracy = counts * 100.0 / float(table.shape[0])
    best = [int(np.argmax(row)) for row in counts]
    return {
        "counts": counts,
        "per_delta": [float(accuracy[d, b]) for d, b in enumerate(best)],
        "best_threshold": [float(thresholds(interval)[b]) for b in best],
        "value": float(np.mean([accuracy[d, b] for d, b in enumerate(best)])),
    }


def top_one_loc(table50: np.ndarray, correct: np.ndarray, own: bool) -> tuple[int, float]:
    """Top-1 Loc from the IoU-50 hit table ``[N, K]``: threshold index and value in percent."""
    loc = (table50 & correct[:, None]).sum(axis=0)
    index = int(np.argmax(loc if own else table50.sum(axis=0)))
    return index, loc[index] * 100.0 / table50.shape[0]


def pxap(
    cams: list[np.ndarray], masks: list[np.ndarray], interval: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """Definition 6 with np.histogram and a plain loop: (positive hist, negative hist, PxAP)."""
    edges = np.append(thresholds(interval), [1.0, 2.0, 3.0])
    positive = np.zeros(len(edges) - 1, dtype=np.int64)
    negative = np.zeros(len(edges) - 1, dtype=np.int64)
    for cam, mask in zip(cams, masks):
        scores = normalize(cam)
        positive += np.histogram(scores[mask == 1], bins=edges)[0]
        negative += np.histogram(scores[mask == 0], bins=edges)[0]
    n_positive = int(positive.sum())
    if n_positive == 0:
        raise RuntimeError("no positive pixel")
    tp = fp = 0
    previous_recall = None
    total = 0.0
    for pos, neg in zip(positive[::-1], negative[::-1]):
        tp += int(pos)
        fp += int(neg)
        recall = tp / n_positive
        if previous_recall is not None and tp + fp > 0:
            total += tp / (tp + fp) * (recall - previous_recall)
        previous_recall = recall
    return positive, negative, total * 100
