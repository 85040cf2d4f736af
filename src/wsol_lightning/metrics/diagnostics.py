"""Diagnostics of where a localization map sits: on the discriminative part, on the skull.

Part focus, on datasets that know where the part is (the built-in synthetic set's ``part_mask``):

* ``part_peak_share``: percentage of images whose map peak (arg-max of the map at the evaluated
  image size, first in raster order) lies on the part. Plain CAM is expected to peak on the part.
* ``gt_box_coverage``: mean percentage of each GT box covered by the predicted box (largest
  contour of the normalized map at the given threshold, the standard rule), i.e. how much of the
  object the box finds. The shared evaluation uses the threshold chosen on validation.

Skull share, on datasets that know where the skull is (the synthetic MRI set's ``skull_mask``):

* ``skull_cam_share`` / ``skull_cam_share_no_tumour``: mean percentage of the tumour-class map's
  mass on the skull ring, over the slices with / without a tumour (:class:`SkullShare`).

All are summed states, so they are exact under DDP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torchmetrics import Metric

from wsol_lightning.cam import box_coverage, cam_to_boxes, normalize_cam

if TYPE_CHECKING:
    from wsol_lightning.metrics.evaluator import EvaluationStep


class PartFocus(Metric):
    """Accumulates ``part_peak_share`` and ``gt_box_coverage`` (percent); see the module docstring."""

    full_state_update = False
    higher_is_better = None
    requires: ClassVar[frozenset[str]] = frozenset({"part_mask", "boxes"})

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

    def update_from_step(self, step: EvaluationStep) -> None:
        """Every image's map at the threshold chosen on validation when the batch was evaluated."""
        boxes = [torch.from_numpy(b) for b in step.boxes]
        self.update(torch.from_numpy(step.maps), step.annotations["part_mask"], boxes, step.cam_threshold)

    def logged_values(self, reference_threshold: float | None = None) -> dict[str, torch.Tensor]:
        return self.compute()

    def compute(self) -> dict[str, torch.Tensor]:
        images = max(int(self.num_images), 1)
        boxes = max(int(self.num_boxes), 1)
        return {
            "part_peak_share": self.peak_on_part.double() * 100.0 / images,
            "gt_box_coverage": self.coverage_sum * 100.0 / boxes,
        }


class SkullShare(Metric):
    """Mean share (percent) of a map's mass on the skull ring, over tumour and tumour-free slices apart.

    For slice ``i`` with the map ``n_i`` min-max normalized at the image size (the evaluation's
    normalization) and skull ring ``S_i``: ``share_i = sum_{p in S_i} n_i(p) / sum_p n_i(p)``. A map
    spread uniformly scores the ring's area share, and so does a constant map (normalized to zeros,
    its limit); one on the tumour scores 0. ``compute`` returns ``skull_cam_share`` (slices
    with a tumour) and ``skull_cam_share_no_tumour`` (without), each only if such slices were seen.
    """

    full_state_update = False
    higher_is_better = False
    requires: ClassVar[frozenset[str]] = frozenset({"skull_mask"})

    def __init__(self, map_class: int = 1) -> None:
        super().__init__()
        self.map_class = map_class
        self.map_classes = (map_class,)
        # index 0: tumour-free slices, 1: slices with a tumour
        self.add_state("share_sum", torch.zeros(2, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("num_slices", torch.zeros(2, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, cams: torch.Tensor, skull_masks: torch.Tensor, has_tumour: torch.Tensor) -> None:
        """Raw maps ``[N, H, W]`` at the image size, skull rings ``[N, H, W]``, tumour flags ``[N]`` bool."""
        normalized = normalize_cam(torch.as_tensor(cams).detach().cpu()).flatten(1)
        skull = torch.as_tensor(skull_masks).detach().cpu().flatten(1) > 0
        mass = normalized.sum(dim=1)
        on_skull = (normalized * skull).sum(dim=1)
        area_share = skull.double().mean(dim=1)
        share = torch.where(mass > 0, on_skull / mass.clamp_min(torch.finfo(torch.float64).tiny), area_share)
        tumour = torch.as_tensor(has_tumour).detach().cpu().bool()
        sums = torch.stack([share[~tumour].sum(), share[tumour].sum()])
        counts = torch.stack([(~tumour).sum(), tumour.sum()])
        self.share_sum += sums.to(self.share_sum)
        self.num_slices += counts.to(self.num_slices)

    def update_from_step(self, step: EvaluationStep) -> None:
        """The maps of class ``map_class`` (the tumour) on every slice; a tumour is where the label is it."""
        maps = torch.from_numpy(step.resized_class_maps(self.map_class))
        self.update(maps, step.annotations["skull_mask"], step.labels == self.map_class)

    def logged_values(self, reference_threshold: float | None = None) -> dict[str, torch.Tensor]:
        return self.compute()

    def compute(self) -> dict[str, torch.Tensor]:
        names = ("skull_cam_share_no_tumour", "skull_cam_share")
        return {
            name: self.share_sum[group] * 100.0 / self.num_slices[group]
            for group, name in enumerate(names)
            if int(self.num_slices[group]) > 0
        }
