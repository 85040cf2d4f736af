"""DANet's per-level classification accuracy (``<stage>/level<k>_top1``, ``level<k>_top<n>``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from torchmetrics import Metric

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
