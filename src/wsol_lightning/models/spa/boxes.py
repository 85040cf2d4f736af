"""SPA's own box rule, for diagnostics: the tight box around *all* pixels above the threshold.

The official metrics of the package always use the standard contour rule (wsolevaluation); SPA's
code instead takes the union of every foreground pixel (``mode='union'`` of
``get_topk_boxes_hier_scg``), with inclusive ``+1`` IoU and a hit when IoU ``> 0.5`` (strict). This
module reproduces that rule so SPA's maps can also be read the way the paper read them
(note pitfall 5: the two rules give different numbers).
"""

from __future__ import annotations

from typing import Any

import torch
from torchmetrics import Metric

from wsol_lightning.models.components.cam import minmax_normalize


def union_boxes(maps: torch.Tensor, threshold: float) -> torch.Tensor:
    """Inclusive ``(x0, y0, x1, y1)`` box around every pixel ``>= threshold``: ``[B, H, W] -> [B, 4]``.

    An image with no such pixel gets ``(0, 0, 0, 0)`` (as the reference).
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


def inclusive_iou(boxes: torch.Tensor, gt_boxes: torch.Tensor) -> torch.Tensor:
    """IoU of inclusive pixel boxes (``+1`` on sides, as SPA's ``cal_iou``), broadcast: ``[..., 4]``."""
    boxes, gt_boxes = boxes.double(), gt_boxes.double()
    lower = torch.maximum(boxes[..., :2], gt_boxes[..., :2])
    upper = torch.minimum(boxes[..., 2:], gt_boxes[..., 2:])
    intersection = (upper - lower + 1).clamp(min=0).prod(dim=-1)
    area = (boxes[..., 2:] - boxes[..., :2] + 1).prod(dim=-1)
    gt_area = (gt_boxes[..., 2:] - gt_boxes[..., :2] + 1).prod(dim=-1)
    return intersection / (area + gt_area - intersection)


class UnionBoxGTKnownLoc(Metric):
    """GT-known Loc (percent) with SPA's union box rule, at the best of a threshold sweep.

    ``update(maps, boxes, num_boxes)`` takes GT-class maps ``[B, H, W]`` at the evaluated size
    (min-max normalized here) and the batch's padded GT boxes ``[B, K, 4]`` with ``num_boxes [B]``
    (the batch format); an image counts at threshold ``t``
    when the :func:`union_boxes` box has IoU ``> 0.5`` with one of its GT boxes. States are summed
    across processes.

    Args:
        cam_curve_interval: step of the thresholds ``0, step, ..., < 1``.
        iou_threshold: IoU a hit must exceed (SPA: 0.5, strict).
        kwargs: torchmetrics ``Metric`` options.
    """

    full_state_update = False
    higher_is_better = True
    hits: torch.Tensor
    count: torch.Tensor

    def __init__(self, cam_curve_interval: float = 0.01, iou_threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 < cam_curve_interval < 1:
            raise ValueError(f"cam_curve_interval must be in (0, 1), got {cam_curve_interval}")
        self.thresholds = torch.arange(0.0, 1.0, cam_curve_interval, dtype=torch.float64).tolist()
        self.iou_threshold = iou_threshold
        self.add_state("hits", torch.zeros(len(self.thresholds), dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, maps: torch.Tensor, boxes: torch.Tensor, num_boxes: torch.Tensor) -> None:
        normalized = minmax_normalize(torch.as_tensor(maps, dtype=torch.float64, device=self.hits.device))
        boxes = boxes.to(self.hits.device)
        valid = torch.arange(boxes.shape[1], device=boxes.device)[None] < num_boxes.to(boxes.device)[:, None]
        for index, threshold in enumerate(self.thresholds):
            iou = inclusive_iou(union_boxes(normalized, threshold)[:, None], boxes)
            self.hits[index] += ((iou > self.iou_threshold) & valid).any(dim=1).sum()
        self.count += boxes.shape[0]

    def compute(self) -> torch.Tensor:
        if int(self.count) == 0:
            raise RuntimeError("UnionBoxGTKnownLoc.compute() called before any update")
        return self.hits.max().double() * 100.0 / self.count

    def best_threshold(self) -> float:
        """Threshold of the best accuracy (lowest on ties)."""
        return self.thresholds[int(self.hits.argmax())]
