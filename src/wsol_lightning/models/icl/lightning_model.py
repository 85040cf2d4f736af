"""ICL LightningModule (Ki et al., ACCV 2020): CE + contrastive attention + foreground consistency."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F

from wsol_lightning.data.batch import WSOLBatch
from wsol_lightning.errors import ConfigError
from wsol_lightning.models.base import WSOLModule
from wsol_lightning.models.components.adl import DrawMode
from wsol_lightning.models.components.options import require, require_choice
from wsol_lightning.models.icl.loss import (
    ThresholdReference,
    attention_masks,
    contrastive_attention_loss,
    foreground_consistency_loss,
    mask_is_nonempty,
)
from wsol_lightning.models.icl.torch_model import ICLNet, ICLOutput
from wsol_lightning.models.search_space import LR, weight


class ICL(WSOLModule):
    """In-sample contrastive learning and consistent attention (Ki et al., ACCV 2020).

    ``L = CE + contrastive_weight * L_CA + consistency_weight * L_FC`` (total loss form ours; the
    paper's body was not readable, every default below is "ours" unless marked otherwise; see the
    README). Each of the four parts switches off on its own: ``use_non_local=False`` (ADL's
    channel-mean attention), ``contrastive_weight=0``, ``consistency_weight=0``,
    ``random_selection=False``; ``drop_background=False`` gives ADL's peak-only drop mask.

    Args:
        backbone_units: backbone units (plus ``"neck"``) after which the attention layers go;
            ``None``: ADL's positions for the backbone (ours: ICL builds on ADL).
        use_non_local: non-local blocks give the attention (paper); ``False``: ADL's channel mean.
        non_local_reduction: non-local embedding channels ``C // non_local_reduction`` (ours: 2, as
            Wang et al.).
        random_selection: ADL-style random choice of drop mask / importance map in training (paper).
        drop_background: the drop mask removes the background as well as the peak (paper).
        apply_prob: probability of the drop mask (ours: 0.75, ADL's drop rate).
        foreground_threshold: ``gamma_d``: attention ``>= gamma_d * max`` is the most discriminative
            part (ours: 0.9, ADL in wsolevaluation). Also cuts the contrastive loss's dropped foreground.
        background_threshold: ``gamma_bg``: attention ``< gamma_bg * max`` is background (ours: 0.2).
        threshold_reference: thresholds apply to the per-sample min-max normalized attention
            (``"minmax"``, ours) or are fractions of the raw attention's max (``"max"``, ADL's rule;
            on post-ReLU channel means it often finds no background at all).
        draw: ``"batch"`` (ADL: one draw per layer per step) or ``"sample"``.
        contrastive_weight: ``lambda_CA`` of the contrastive attention loss (ours: 0.1); 0 disables
            it (and builds no projection head).
        contrastive_margin: triplet margin ``m`` (ours: 0.5, on unit embeddings).
        contrastive_squared_distance: ``d`` is the squared L2 distance (ours); ``False``: L2.
        contrastive_units: ``"last"``: the loss at the last attention layer only (ours);
            ``"all"``: averaged over every attention layer.
        embedding_dim: projection head output size (ours: 128).
        consistency_weight: ``lambda_FC`` of the foreground consistency loss (ours: 0.1); 0 disables
            it (it also needs at least two positions).
        consistency_norm: ``"l2"`` (squared difference, ours) or ``"l1"``.
        **kwargs: the shared options of :class:`~wsol_lightning.models.base.WSOLModule`.
    """

    SEARCH_SPACE = (LR, weight("contrastive_weight", 0.01, 1.0, "lambda_CA"),
                    weight("consistency_weight", 0.01, 1.0, "feature consistency"))

    def __init__(
        self,
        backbone_units: list[str] | None = None,
        use_non_local: bool = True,
        non_local_reduction: int = 2,
        random_selection: bool = True,
        drop_background: bool = True,
        apply_prob: float = 0.75,
        foreground_threshold: float = 0.9,
        background_threshold: float = 0.2,
        threshold_reference: ThresholdReference = "minmax",
        draw: DrawMode = "batch",
        contrastive_weight: float = 0.1,
        contrastive_margin: float = 0.5,
        contrastive_squared_distance: bool = True,
        contrastive_units: Literal["last", "all"] = "last",
        embedding_dim: int = 128,
        consistency_weight: float = 0.1,
        consistency_norm: Literal["l2", "l1"] = "l2",
        **kwargs: Any,
    ) -> None:
        for key, value in (("contrastive_weight", contrastive_weight), ("consistency_weight", consistency_weight)):
            if value < 0:
                raise ConfigError(f"{key} must be >= 0, got {value}")
        require(contrastive_margin >= 0, "contrastive_margin", ">= 0", contrastive_margin)
        require_choice("contrastive_units", contrastive_units, ("last", "all"))
        require_choice("consistency_norm", consistency_norm, ("l2", "l1"))
        super().__init__(**kwargs)

    def build_model(self) -> ICLNet:
        options = self.network_options(ICLNet)
        if self.hparams.contrastive_weight == 0:
            options["contrastive_units"] = "none"  # no projection head without the contrastive loss
        return ICLNet(**options)

    def icl_losses(self, output: ICLOutput) -> dict[str, torch.Tensor]:
        """Unweighted ``L_CA`` and ``L_FC`` of one forward pass (the enabled ones)."""
        hp = self.hparams
        losses: dict[str, torch.Tensor] = {}
        if hp.contrastive_weight > 0:
            terms = []
            for position in self.model.contrastive_units:
                masks = attention_masks(
                    output.attentions[position], hp.background_threshold, hp.foreground_threshold, hp.threshold_reference
                )
                valid = mask_is_nonempty(masks.background) & mask_is_nonempty(masks.dropped_foreground)
                embeddings = self.model.region_embeddings(position, output.attended_features[position], masks)
                terms.append(
                    contrastive_attention_loss(
                        embeddings.foreground,
                        embeddings.dropped_foreground,
                        embeddings.background,
                        valid,
                        hp.contrastive_margin,
                        hp.contrastive_squared_distance,
                    )
                )
            losses["contrastive"] = torch.stack(terms).mean()
        positions = self.model.attention_units
        if hp.consistency_weight > 0 and len(positions) > 1:
            maps = [output.attentions[p] for p in positions]
            losses["consistency"] = foreground_consistency_loss(maps[:-1], maps[-1], hp.consistency_norm)
        return losses

    def training_losses(self, batch: WSOLBatch) -> dict[str, torch.Tensor]:
        hp = self.hparams
        output = self.model(batch.image)
        losses = {"ce": F.cross_entropy(output.logits, batch.label)}
        weights = {"contrastive": hp.contrastive_weight, "consistency": hp.consistency_weight}
        for name, value in self.icl_losses(output).items():
            losses[name] = weights[name] * value
        return losses
