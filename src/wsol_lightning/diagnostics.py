"""Part-focus diagnostics: how much a localization map is stuck on the discriminative part.

Defined on datasets that know where the part is (the built-in synthetic set's ``part_mask``):

* ``part_peak_share``: percentage of images whose map peak (arg-max of the map at the evaluated
  image size, first in raster order) lies on the part. Plain CAM is expected to peak on the part.
* ``gt_box_coverage``: mean percentage of each GT box covered by the predicted box (largest
  contour of the normalized map at the given threshold, the standard rule), i.e. how much of the
  object the box finds. The shared evaluation uses the threshold chosen on validation.

Both are summed states, so they are exact under DDP.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric

from wsol_lightning.metrics import normalize_cam
from wsol_lightning.models.components.cam import cam_to_boxes


def box_coverage(gt: np.ndarray, pred: np.ndarray) -> float:
    """Share of the inclusive GT box ``[x0, y0, x1, y1]`` covered by the inclusive predicted box."""
    ix = min(gt[2], pred[2]) - max(gt[0], pred[0]) + 1
    iy = min(gt[3], pred[3]) - max(gt[1], pred[1]) + 1
    inter = max(ix, 0) * max(iy, 0)
    return inter / float((gt[2] - gt[0] + 1) * (gt[3] - gt[1] + 1))


class PartFocus(Metric):
    """Accumulates ``part_peak_share`` and ``gt_box_coverage`` (percent); see the module docstring."""

    full_state_update = False
    higher_is_better = None

    def __init__(self) -> None:
        super().__init__()
        self.add_state("peak_on_part", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("coverage_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_boxes", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("num_images", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, cams: torch.Tensor, part_masks: torch.Tensor, boxes: list[torch.Tensor], threshold: float) -> None:
        """``cams`` raw ``[N, H, W]`` at the image size, ``part_masks`` ``[N, H, W]``, GT boxes per image."""
        cams_np = torch.as_tensor(cams).detach().cpu().numpy()
        parts = torch.as_tensor(part_masks).detach().cpu().numpy()
        peaks = coverage = n_boxes = 0
        for cam, part, gt in zip(cams_np, parts, boxes):
            normalized = normalize_cam(cam)
            peak = np.unravel_index(int(np.argmax(normalized)), normalized.shape)
            peaks += int(part[peak] > 0)
            pred = cam_to_boxes(normalized, threshold)[0]
            for box in torch.as_tensor(gt).cpu().numpy().reshape(-1, 4):
                coverage += box_coverage(box, pred)
                n_boxes += 1
        self.peak_on_part += peaks
        self.coverage_sum += coverage
        self.num_boxes += n_boxes
        self.num_images += len(cams_np)

    def compute(self) -> dict[str, torch.Tensor]:
        images = max(int(self.num_images), 1)
        boxes = max(int(self.num_boxes), 1)
        return {
            "part_peak_share": self.peak_on_part.double() * 100.0 / images,
            "gt_box_coverage": self.coverage_sum * 100.0 / boxes,
        }
