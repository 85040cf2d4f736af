"""DANet LightningModule: HDA + DDA losses, fused localization maps, per-level accuracy."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torchmetrics import Metric

from wsol_lightning.data.batch import WSOLBatch
from wsol_lightning.errors import ConfigError
from wsol_lightning.hierarchy import ClassHierarchy, load_hierarchy
from wsol_lightning.models.base import WSOLModule, crop_averaged_scores
from wsol_lightning.models.components.backbones import VGGPooling
from wsol_lightning.models.components.network import LocalizationOutput
from wsol_lightning.models.components.options import require_choice
from wsol_lightning.models.danet.loss import (
    hierarchical_cross_entropy,
    official_cosine_loss,
    per_level_cosine_loss,
)
from wsol_lightning.models.danet.metrics import IndependentLevelUnionLoc, LevelAccuracy
from wsol_lightning.models.danet.torch_model import DANetNet
from wsol_lightning.models.search_space import LR, Param, weight


class DANet(WSOLModule):
    """Divergent activation (Xue et al., ICCV 2019): hierarchical (HDA) and discrepant (DDA).

    Loss ``L = sum_l w CE(s^l, y^l) + alpha L_cos`` (note §3); localization map = per-pixel average
    of the levels' class maps of the image's class and its ancestors (note §4).

    Args:
        hierarchy: class hierarchy: a shipped name (``cub``, ``ilsvrc``, ``synthetic``,
            ``synthetic:<classes>:<groups>``) or the path of a hierarchy file (CSV ``level,name,parent``,
            format in ``wsol_lightning/hierarchy/data/README.md``; relative to the working directory);
            its finest level must have the data's ``num_classes`` classes, in label order.
        levels: hierarchy levels to use, coarsest first, the finest included (``None``: all).
        hda: hierarchical divergent activation; ``False`` keeps the finest level only.
        dda: discrepant divergent activation: the cosine loss over the GT class's K maps.
        num_maps: K, maps per class (paper/VGG: 8; official InceptionV3: 4).
        backbone_units: backbone unit whose output feeds each used level's head, coarsest first
            (``None``: the note's units).
        head_width: hidden width of the levels' heads: one for all, or one per level, coarsest first
            (``None``: the official widths).
        level_loss_weight: weight of each level's cross-entropy (official: 0.5).
        cosine_weight: alpha, weight of the cosine loss (official script: 0.01).
        cosine_form: ``official`` (pairs of a random subset of maps drawn across levels) or
            ``per_level`` (all pairs of the K maps within each level).
        num_selected_maps: maps drawn by the official form (``None``: ``floor(L*K/2)``).
        relu_maps: average ReLU'd maps for localization (official evaluation) instead of raw maps.
        consistent_level_predictions: rank a coarse level's classes by their best descendant
            finest class (ancestors of the predicted class) instead of the level's own logits
            (official, independent arg-sort); affects the per-level accuracies only.
        vgg_pooling: VGG16 only. ``acol``: ACoL's 3x3 max-pools; with ``large_feature_map`` and
            ``backbone_units: [pool3, conv4_inserted, conv5]`` the official ``vgg_DA_p.py`` (28x28 maps
            on every level); ``torchvision``: 2x2/s2 (``vgg_DA.py``, wsolevaluation's VGG16).
        **kwargs: the shared options of :class:`~wsol_lightning.models.base.WSOLModule`.
    """

    SEARCH_SPACE = (LR, weight("cosine_weight", 1e-3, 1.0, "alpha (official 0.01)"),
                    Param("num_maps", "int", 2, 8, step=2, note="K maps per class (paper 8, official Inception 4)"))

    def __init__(
        self,
        hierarchy: str = "synthetic",
        levels: list[str] | None = None,
        hda: bool = True,
        dda: bool = True,
        num_maps: int = 8,
        backbone_units: list[str] | None = None,
        head_width: int | list[int] | None = None,
        level_loss_weight: float = 0.5,
        cosine_weight: float = 0.01,
        cosine_form: Literal["official", "per_level"] = "official",
        num_selected_maps: int | None = None,
        relu_maps: bool = True,
        consistent_level_predictions: bool = False,
        vgg_pooling: VGGPooling = "torchvision",
        **kwargs: Any,
    ) -> None:
        require_choice("cosine_form", cosine_form, ("official", "per_level"))
        super().__init__(**kwargs)

    # -- network --------------------------------------------------------------------------
    def _resolve_hierarchy(self) -> ClassHierarchy:
        hp = self.hparams
        hierarchy = load_hierarchy(hp.hierarchy)
        hierarchy.check_num_classes(
            hp.num_classes,
            "num_classes (the data's class count, linked into model.init_args.num_classes)",
            hint=f"; give model.init_args.hierarchy a hierarchy file whose finest level lists the data's "
            f"{hp.num_classes} classes in label order (format: wsol_lightning/hierarchy/data/README.md)",
        )
        if not hp.hda:
            if hp.levels is not None and len(hp.levels) > 1:
                raise ConfigError(f"hda: false uses the finest level only, but levels is {hp.levels}")
            return hierarchy.select_levels([hierarchy.level_names[-1]])
        return hierarchy if hp.levels is None else hierarchy.select_levels(hp.levels)

    def build_model(self) -> DANetNet:
        hp = self.hparams
        self.hierarchy = self._resolve_hierarchy()
        if hp.dda and hp.cosine_form == "per_level" and hp.num_maps < 2:
            raise ConfigError(f"dda with cosine_form 'per_level' needs num_maps >= 2, got {hp.num_maps}")
        total_maps = self.hierarchy.num_levels * hp.num_maps
        selected = total_maps // 2 if hp.num_selected_maps is None else hp.num_selected_maps
        if hp.dda and hp.cosine_form == "official" and not 2 <= selected <= total_maps:
            raise ConfigError(
                f"dda with cosine_form 'official' draws num_selected_maps={selected} of the {total_maps} maps "
                f"(levels x num_maps); it needs 2 <= num_selected_maps <= {total_maps}: raise num_maps or set dda: false"
            )
        return DANetNet(**{**self.network_options(DANetNet), "hierarchy": self.hierarchy})

    def configure_metrics(self) -> dict[str, Metric]:
        """Per-level accuracies ``level<k>_top1`` / ``level<k>_top<n>``; with ``union_box_threshold``, the
        official Top-1/Top-5 Loc of independently ranked levels (``top1_loc_union_levels``)."""
        metrics: dict[str, Metric] = {
            "level_accuracy": LevelAccuracy(
                self.model.ancestors, self.hierarchy.level_sizes, self.hparams.consistent_level_predictions
            )
        }
        if self.hparams.union_box_threshold is not None:
            metrics["union_box_loc_levels"] = IndependentLevelUnionLoc(self.hparams.union_box_threshold)
            metrics["union_box_loc_levels_ten_crop"] = IndependentLevelUnionLoc(
                self.hparams.union_box_threshold, ten_crop=True)  # kept when the data provides ten_crop
        return metrics

    def evaluation_extras(
        self, batch: WSOLBatch, out: LocalizationOutput, crop_outputs: list[Any] | None
    ) -> dict[str, Any]:
        """With ten crops and ``union_box_threshold``, also the official evaluation's ranked maps: each level
        ranked by its softmax averaged over the ten crops (``exper/val_hierarchy.py`` L143-157), the maps
        of those classes from the evaluated image (``ranked_maps_ten_crop``, ``ranked_classes_ten_crop``)."""
        extras = super().evaluation_extras(batch, out, crop_outputs)
        if crop_outputs is None or self.hparams.union_box_threshold is None:
            return extras
        level_scores = [crop_averaged_scores(torch.cat([o.level_logits[level] for o in crop_outputs]), len(batch))
                        for level in range(len(crop_outputs[0].level_logits))]
        level_maps = self.model(batch.image).level_maps  # the evaluated image's maps of every class
        extras["ranked_maps_ten_crop"], extras["ranked_classes_ten_crop"] = self.model.ranked_maps(level_maps, level_scores)
        return extras

    # -- training -------------------------------------------------------------------------
    def training_losses(self, batch: WSOLBatch) -> dict[str, torch.Tensor]:
        hp = self.hparams
        out = self.model(batch.image)
        level_labels = self.model.level_labels(batch.label)
        cross_entropies = hierarchical_cross_entropy(out.level_logits, level_labels, hp.level_loss_weight)
        losses = {f"ce_level{k}": ce for k, ce in enumerate(cross_entropies)}
        if hp.dda:
            batch_index = torch.arange(len(batch), device=batch.label.device)
            gt_maps = [maps[batch_index, labels] for maps, labels in zip(out.level_maps, level_labels)]
            if hp.cosine_form == "official":
                cosine = official_cosine_loss(gt_maps, hp.num_selected_maps)
            else:
                cosine = per_level_cosine_loss(gt_maps)
            losses["cosine"] = hp.cosine_weight * cosine
        return losses
