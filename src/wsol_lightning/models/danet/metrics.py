"""DANet's evaluation metrics: per-level accuracy (``<stage>/level<k>_top1``, ``level<k>_top<n>``) and
the official Top-1/Top-5 Loc of independently ranked levels (``top1_loc_union_levels``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torchmetrics import Metric

from wsol_lightning.cam import resize_cam, union_box_hits
from wsol_lightning.metrics.percent import PercentMetric

if TYPE_CHECKING:
    from wsol_lightning.metrics.evaluator import EvaluationStep


class LevelAccuracy(Metric):
    """Top-1 and top-``n`` accuracy (fractions) of every hierarchy level, coarsest first.

    Reads the network's ``level_logits`` (the evaluation step's extras) and the finest labels,
    mapped to each level through ``ancestors``. With ``consistent`` a coarse level's classes are
    ranked by their best descendant finest class (the ancestors of the predicted class) instead of
    the level's own logits (the official, independent arg-sort).

    Args:
        ancestors: int64 ``[L, C]``: level ``l``'s class of every finest class.
        level_sizes: number of classes per level.
        consistent: rank coarse levels by their descendants' finest logits.
    """

    requires: ClassVar[frozenset[str]] = frozenset()
    full_state_update = False
    correct: torch.Tensor
    count: torch.Tensor

    def __init__(self, ancestors: torch.Tensor, level_sizes: list[int], consistent: bool = False) -> None:
        super().__init__()
        self.register_buffer("ancestors", ancestors.clone(), persistent=False)
        self.level_sizes = list(level_sizes)
        self.top_ks = [min(5, size) for size in level_sizes]
        self.consistent = consistent
        self.add_state("correct", torch.zeros(len(level_sizes), 2, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def level_scores(self, level_logits: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        """Per-level class scores, coarsest first (see the class docstring)."""
        if not self.consistent:
            return list(level_logits)
        fine = level_logits[-1].float()
        scores = []
        for logits, ancestors in zip(level_logits, self.ancestors.to(fine.device)):
            index = ancestors.expand(fine.shape[0], -1)
            empty = torch.full((fine.shape[0], logits.shape[1]), float("-inf"), device=fine.device)
            scores.append(empty.scatter_reduce(1, index, fine, reduce="amax", include_self=True))
        return scores

    def update(self, level_logits: tuple[torch.Tensor, ...], labels: torch.Tensor) -> None:
        ancestors = self.ancestors.to(labels.device)
        for level, (scores, top_k) in enumerate(zip(self.level_scores(level_logits), self.top_ks)):
            target = ancestors[level][labels]
            top = scores.topk(top_k, dim=1).indices
            self.correct[level, 0] += int((top[:, 0] == target).sum())
            self.correct[level, 1] += int((top == target[:, None]).any(dim=1).sum())
        self.count += len(labels)

    def update_from_step(self, step: EvaluationStep) -> None:
        self.update(tuple(step.extras["level_logits"]), step.labels)

    def compute(self) -> dict[str, torch.Tensor]:
        fraction = self.correct.double() / max(int(self.count), 1)
        values = {}
        for level, top_k in enumerate(self.top_ks):
            values[f"level{level}_top1"] = fraction[level, 0]
            values[f"level{level}_top{top_k}"] = fraction[level, 1]
        return values

    def logged_values(self, reference_threshold: float | None = None) -> dict[str, torch.Tensor]:
        return self.compute()


class IndependentLevelUnionLoc(PercentMetric):
    """Top-1 / Top-5 Loc (percent) of DANet's official evaluation: union boxes of independently ranked levels.

    ``val_hierarchy.py`` with ``utils/localization.py`` ``get_topk_boxes_hier`` (L56-102): rank ``i``
    fuses each level's own ``i``-th class (independent arg-sorts, not the ancestors of the ``i``-th
    finest class; the network's ``ranked_maps`` extra); its union box at ``threshold``
    (:func:`~wsol_lightning.cam.union_box_hits`, IoU ``> iou_threshold``) is labelled
    with the ``i``-th finest class. Top-1: rank 0 is the label and hits; Top-5: some rank is the label
    and hits. Maps are resized to the evaluated frame like the shared maps (``resize_cam``). The
    classes are ranked on the evaluated image (``ranked_maps``: ``top1_loc_union_levels``,
    ``top5_loc_union_levels``), or with ``ten_crop`` on the ten-crop scores of every level
    (``ranked_maps_ten_crop``: ``top1_loc_union_levels_ten_crop``, ..., the official protocol; needs
    data providing ``ten_crop``). Images without a GT box are not counted.

    Args:
        threshold: the union-box threshold (the model's ``union_box_threshold``).
        iou_threshold: IoU a hit must exceed (DANet: 0.5).
        ten_crop: rank with the ten-crop scores.
    """

    requires: ClassVar[frozenset[str]] = frozenset({"boxes"})  # with ten_crop the instance's adds "ten_crop"
    top1_hits: torch.Tensor
    top5_hits: torch.Tensor
    count: torch.Tensor

    def __init__(self, threshold: float, iou_threshold: float = 0.5, ten_crop: bool = False) -> None:
        super().__init__()
        self.threshold = float(threshold)
        self.iou_threshold = float(iou_threshold)
        self.suffix = "_ten_crop" if ten_crop else ""
        if ten_crop:
            self.requires = frozenset({"boxes", "ten_crop"})
        for name in ("top1_hits", "top5_hits", "count"):
            self.add_state(name, torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def update(self, ranked_maps: np.ndarray, ranked_classes: torch.Tensor, labels: torch.Tensor,
               boxes: list[np.ndarray], image_size: tuple[int, int]) -> None:
        """Accumulate a batch: raw ``ranked_maps [B, R, h, w]``, ``ranked_classes [B, R]``, labels, GT boxes."""
        boxed = np.flatnonzero([len(b) > 0 for b in boxes])
        if not len(boxed):
            return
        maps = np.asarray(ranked_maps, dtype=np.float64)[boxed]
        ranks = maps.shape[1]
        resized = resize_cam(maps.reshape(-1, *maps.shape[2:]), image_size)
        hits = union_box_hits(resized, [boxes[i] for i in boxed for _ in range(ranks)], self.threshold,
                              self.iou_threshold).reshape(len(boxed), ranks)
        classes = np.asarray(ranked_classes).astype(np.int64)  # extras reach the evaluator as float32
        right = (classes[boxed] == np.asarray(labels)[boxed, None]) & hits
        self.top1_hits += int(right[:, 0].sum())
        self.top5_hits += int(right.any(axis=1).sum())
        self.count += len(boxed)

    def update_from_step(self, step: EvaluationStep) -> None:
        self.update(step.extras[f"ranked_maps{self.suffix}"].numpy(), step.extras[f"ranked_classes{self.suffix}"],
                    step.labels, step.boxes, step.image_size)

    def compute(self) -> dict[str, torch.Tensor]:
        """``top1_loc_union_levels`` and ``top5_loc_union_levels`` (with ``ten_crop``: ``..._ten_crop``) in percent."""
        return self._values()

    def _values(self) -> dict[str, torch.Tensor]:
        if int(self.count) == 0:
            raise RuntimeError("IndependentLevelUnionLoc.compute() needs at least one image with a box")
        return {f"{name}_loc_union_levels{self.suffix}": getattr(self, f"{name}_hits").double() * 100.0
                / float(self.count) for name in ("top1", "top5")}

    def logged_values(self, reference_threshold: float | None = None) -> dict[str, torch.Tensor]:
        """The values of :meth:`compute`, synced across processes (nothing when no boxed image was seen)."""
        with self.sync_context():
            return {} if int(self.count) == 0 else self._values()
