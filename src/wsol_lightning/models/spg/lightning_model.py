"""SPG LightningModule."""

from __future__ import annotations

from typing import Any

import torch

from wsol_lightning.data.batch import WSOLBatch
from wsol_lightning.errors import ConfigError
from wsol_lightning.models.base import WSOLModule
from wsol_lightning.models.components.options import require
from wsol_lightning.models.search_space import LR, thresholds
from wsol_lightning.models.spg.loss import SeedThresholds, spg_losses
from wsol_lightning.models.spg.torch_model import SPGNet


class SPG(WSOLModule):
    """Self-produced Guidance (Zhang et al., ECCV 2018), wsolevaluation's form (CAM note §7).

    Training: ``L = CE + BCE(B2, mask(A)) + BCE(B1, mask(sigmoid B2)) + BCE(C, mask(fused))``
    (:func:`~wsol_lightning.models.spg.loss.spg_losses`), masks built from the GT-class map at the
    input size. Evaluation: the main class map ``M_c`` is the CAM; the guidance branches do not
    enter it.

    Args:
        attention_thresholds: ``(high, low)`` of the mask of the classifier's attention, target of
            B2 (wsolevaluation: (0.7, 0.01)).
        b2_thresholds: ``(high, low)`` of the mask of ``sigmoid(B2)``, target of B1 (0.5, 0.05).
        fused_thresholds: ``(high, low)`` of the mask of the fused B1/B2 map, target of C (0.7, 0.1).
        min_foreground_pixels: below this many pixels above ``high``, an image's foreground is
            ``score > fallback_ratio * max`` instead (wsolevaluation: 30, at any input size).
        fallback_ratio: the ratio of that fallback rule (wsolevaluation: 0.7).
        guidance_weight: weight of the three guidance terms (SPG: 1; 0 trains the classifier alone).
        backbone_units: the two backbone units feeding B1 and B2; ``None``: wsolevaluation's
            (see :data:`~wsol_lightning.models.spg.torch_model.DEFAULT_GUIDANCE_UNITS`).
        **kwargs: the shared options of :class:`~wsol_lightning.models.base.WSOLModule`.
    """

    SEARCH_SPACE = (LR, *thresholds("attention_thresholds", "mask of A (target of B2):"),
                    *thresholds("b2_thresholds", "mask of sigmoid(B2) (target of B1):"),
                    *thresholds("fused_thresholds", "mask of the fused map (target of C):"))

    def __init__(
        self,
        attention_thresholds: tuple[float, float] = (0.7, 0.01),
        b2_thresholds: tuple[float, float] = (0.5, 0.05),
        fused_thresholds: tuple[float, float] = (0.7, 0.1),
        min_foreground_pixels: int = 30,
        fallback_ratio: float = 0.7,
        guidance_weight: float = 1.0,
        backbone_units: tuple[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        for key, pair in (
            ("attention_thresholds", attention_thresholds),
            ("b2_thresholds", b2_thresholds),
            ("fused_thresholds", fused_thresholds),
        ):
            if len(pair) != 2 or not 0.0 <= pair[1] <= pair[0] <= 1.0:
                raise ConfigError(f"{key} must be (high, low) with 0 <= low <= high <= 1, got {tuple(pair)}")
        require(min_foreground_pixels >= 0, "min_foreground_pixels", ">= 0", min_foreground_pixels)
        require(0.0 <= fallback_ratio <= 1.0, "fallback_ratio", "in [0, 1]", fallback_ratio)
        require(guidance_weight >= 0, "guidance_weight", ">= 0", guidance_weight)
        super().__init__(**kwargs)

    def build_model(self) -> SPGNet:
        return SPGNet(**self.network_options(SPGNet))

    def training_losses(self, batch: WSOLBatch) -> dict[str, torch.Tensor]:
        hp = self.hparams
        out = self.model(batch.image)
        return spg_losses(
            out.logits,
            out.class_maps,
            out.guidance_b1,
            out.guidance_b2,
            out.guidance_c,
            batch.label,
            tuple(batch.image.shape[-2:]),
            attention_thresholds=SeedThresholds(*hp.attention_thresholds),
            b2_thresholds=SeedThresholds(*hp.b2_thresholds),
            fused_thresholds=SeedThresholds(*hp.fused_thresholds),
            min_foreground_pixels=hp.min_foreground_pixels,
            fallback_ratio=hp.fallback_ratio,
            guidance_weight=hp.guidance_weight,
        )
