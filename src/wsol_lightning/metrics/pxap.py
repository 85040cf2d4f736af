"""PxAP, the pixel-wise average precision of wsolevaluation's ``MaskEvaluator`` (issue 2, definition 6)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from wsol_lightning.cam.maps import as_numpy_float64, normalize_cam, pxap_bin_edges
from wsol_lightning.metrics.percent import PercentMetric

if TYPE_CHECKING:
    from wsol_lightning.metrics.evaluator import EvaluationStep


class PxAP(PercentMetric):
    """Pixel average precision of normalized maps against object masks, in percent.

    Scores (per-map min-max normalized, float64) of object and background pixels are histogrammed
    over the edges ``np.append(np.arange(0, 1, interval), [1, 2, 3])`` (bin ``i`` holds
    ``edges[i] <= s < edges[i + 1]``; the last bin is closed) and summed over the dataset. From
    the top bin down, ``tp`` and ``fp`` are cumulative counts; precision ``tp / (tp + fp)``,
    recall ``tp / #object pixels``; ``PxAP = 100 * sum_i precision_i * (recall_i - recall_{i-1})``
    over ``i >= 1`` with ``tp_i + fp_i > 0``.

    States: ``positive_hist`` and ``negative_hist`` int64 ``[len(edges) - 1]``, summed across
    processes. ``compute()`` raises ``RuntimeError`` when no object pixel was seen (which
    includes no image at all).

    In an :class:`~wsol_lightning.metrics.Evaluator` it is logged as ``pxap``; with
    ``objects_only`` it counts only the images with an object and is logged as
    ``pxap_with_object`` (datasets where some images have none, e.g. MRI slices without tumour).

    Args:
        cam_curve_interval: width of the histogram bins below 1.
        objects_only: in an evaluator, only the images with at least one GT box.
        kwargs: torchmetrics ``Metric`` options.
    """


    positive_hist: torch.Tensor
    negative_hist: torch.Tensor

    def __init__(self, cam_curve_interval: float = 0.01, objects_only: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cam_curve_interval = float(cam_curve_interval)
        self.objects_only = objects_only
        self.requires = frozenset({"mask", "images_without_object"} if objects_only else {"mask"})
        self.edges = pxap_bin_edges(self.cam_curve_interval)
        n_bins = len(self.edges) - 1
        self.add_state("positive_hist", torch.zeros(n_bins, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("negative_hist", torch.zeros(n_bins, dtype=torch.long), dist_reduce_fx="sum")

    def _histogram(self, scores: np.ndarray) -> torch.Tensor:
        # Normalized scores lie in [0, 1], so every score falls in a half-open bin.
        bins = np.searchsorted(self.edges, scores, side="right") - 1
        counts = np.bincount(bins, minlength=len(self.edges) - 1)
        return torch.from_numpy(counts.astype(np.int64)).to(self.positive_hist.device)

    def update(self, cams: torch.Tensor, masks: torch.Tensor) -> None:
        """Accumulate a batch.

        Args:
            cams: raw localization maps ``[N, H, W]`` at the mask size (normalized per map inside).
            masks: uint8 ``[N, H, W]``: 1 object, 0 background, anything else (255) ignored.
        """
        scores = normalize_cam(as_numpy_float64(cams))
        labels = masks.detach().cpu().numpy() if isinstance(masks, torch.Tensor) else np.asarray(masks)
        if scores.ndim != 3 or labels.shape != scores.shape:
            raise ValueError(
                f"cams [N, H, W] and masks must have one shape, got {scores.shape} and {labels.shape}"
            )
        self.positive_hist += self._histogram(scores[labels == 1])
        self.negative_hist += self._histogram(scores[labels == 0])

    def update_from_step(self, step: EvaluationStep) -> None:
        masks = step.annotations["mask"]
        if self.objects_only:
            self.update(step.maps[step.boxed], masks[torch.from_numpy(step.boxed)])
        else:
            self.update(step.maps, masks)

    def logged_values(self, reference_threshold: float | None = None) -> dict[str, torch.Tensor]:
        with self.sync_context():
            if int(self.positive_hist.sum()) == 0:
                return {}
        return {"pxap_with_object" if self.objects_only else "pxap": self.compute()}

    def compute(self) -> torch.Tensor:
        """PxAP in percent (0-dim float64)."""
        positive = self.positive_hist.cpu().numpy().astype(np.float64)
        negative = self.negative_hist.cpu().numpy().astype(np.float64)
        n_positive = positive.sum()
        if n_positive == 0:
            raise RuntimeError("PxAP needs at least one object pixel (mask value 1); none was seen")
        tp = np.cumsum(positive[::-1])
        fp = np.cumsum(negative[::-1])
        predicted = tp + fp
        valid = predicted > 0
        precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=valid)
        recall = tp / n_positive
        average_precision = (precision[1:] * np.diff(recall))[valid[1:]].sum() * 100
        return torch.tensor(average_precision, dtype=torch.float64, device=self.positive_hist.device)
