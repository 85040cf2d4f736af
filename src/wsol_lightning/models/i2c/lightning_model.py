"""I2C LightningModule: CE + stochastic consistency + global consistency (Zhang et al., ECCV 2020)."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_warn

from wsol_lightning.cam import minmax_normalize
from wsol_lightning.data.batch import WSOLBatch
from wsol_lightning.errors import ConfigError
from wsol_lightning.models.base import WSOLModule
from wsol_lightning.models.components import gather_class_maps
from wsol_lightning.models.components.backbones import VGGPooling
from wsol_lightning.models.components.options import require, require_choice
from wsol_lightning.models.i2c.loss import (
    attribute_consistency_loss,
    attribute_global_consistency_loss,
    attribute_overlap,
    global_consistency_loss,
    same_class_pairs,
    stochastic_consistency_loss,
)
from wsol_lightning.models.i2c.torch_model import I2CNet, gather_seed_vectors, select_object_seeds
from wsol_lightning.models.search_space import LR, unit, weight

NO_ATTRIBUTES = (
    "I2C consistency_unit: attribute needs per-image attributes in the training batches "
    "('attributes' [B, A]): set the dataset's attributes: true (data.dataset Synthetic or CUB)"
)


class I2C(WSOLModule):
    """Inter-image communication: object seeds of same-class images agree with each other and a class bank.

    ``L = CE + sc_weight * L_SC + gc_weight * L_GC`` (official code). Training batches must hold
    same-class pairs at positions ``(2k, 2k + 1)``: set ``data.pair_sampling: true``. The
    localization map is the plain class map of the GT (eval) or predicted class.

    ``consistency_unit: attribute`` replaces the class by the image's binary attributes (batch key
    ``attributes``, the dataset's ``attributes: true``): SC over every image pair of the batch weighted
    by the Jaccard overlap of their attribute sets, GC towards the mean of the image's per-attribute
    centroids (equations in :mod:`wsol_lightning.models.i2c.loss`).

    Args:
        foreground_threshold: object seeds are positions of the min-max normalized GT-class map
            ``>=`` it (the paper's seed threshold: 0.7).
        num_seeds: object seeds per image (``local_seed_num``, official: 3).
        seed_sampling: ``random`` (paper: stochastic seeds) or ``raster`` (official C++ op: the first
            object positions in raster order).
        sc_weight: weight of the stochastic consistency loss (official: 0.008; 0 switches it off).
        gc_weight: weight of the global consistency loss (official ``train.sh``: 0.001, argparse
            default 0.01; 0 switches it off).
        centroid_momentum_decay: bank moving-average rate, ``eta = exp(-decay * visits)`` (official: 0.002).
        head: ``i2c`` (official 3-layer conv head) or ``cam`` (the CAM baseline's neck + GAP-linear).
        head_width: channels of the ``i2c`` head (official: 1024).
        head_dropout: dropout of the ``i2c`` head (official: 0.5; active when the seed CAM is computed).
        vgg_pooling: VGG16 only. ``acol``: ACoL's 3x3 max-pools, with ``large_feature_map`` the
            official ``vgg_i2c.py`` configuration ``D1`` (3x3/s2 pools, stride-1 pools after conv4
            and conv5: 28x28 maps at 224 px); ``torchvision``: 2x2/s2 (wsolevaluation's VGG16).
        feature_smoothing: a 3x3/s1 average pool on the backbone feature before the head and the
            seeds (official VGG16: ``feat4``); off: the feature as the backbone gives it.
        consistency_unit: ``class`` (paper: same-class pairs, class centroids) or ``attribute``
            (attribute-overlap-weighted pairs, per-attribute centroids).
        num_attributes: size of the per-attribute bank with ``consistency_unit: attribute``; 0 takes
            it from the datamodule (``num_attributes``) when fit starts, or from the checkpoint.
        **kwargs: the shared options of :class:`~wsol_lightning.models.base.WSOLModule`.
    """

    SEARCH_SPACE = (LR, weight("sc_weight", 1e-4, 0.1, "stochastic consistency (official 0.008)"),
                    weight("gc_weight", 1e-4, 0.1, "global consistency (official 0.001)"),
                    unit("foreground_threshold", "seed threshold (paper 0.7)", 0.3, 0.9))

    def __init__(
        self,
        foreground_threshold: float = 0.7,
        num_seeds: int = 3,
        seed_sampling: Literal["random", "raster"] = "random",
        sc_weight: float = 0.008,
        gc_weight: float = 0.001,
        centroid_momentum_decay: float = 0.002,
        head: Literal["i2c", "cam"] = "i2c",
        head_width: int = 1024,
        head_dropout: float = 0.5,
        vgg_pooling: VGGPooling = "torchvision",
        feature_smoothing: bool = False,
        consistency_unit: Literal["class", "attribute"] = "class",
        num_attributes: int = 0,
        **kwargs: Any,
    ) -> None:
        require(0.0 <= foreground_threshold < 1.0, "foreground_threshold", "in [0, 1)", foreground_threshold)
        require(num_seeds >= 1, "num_seeds", ">= 1", num_seeds)
        require_choice("seed_sampling", seed_sampling, ("random", "raster"))
        if sc_weight < 0 or gc_weight < 0:
            raise ConfigError(f"sc_weight and gc_weight must be >= 0, got {sc_weight} and {gc_weight}")
        require_choice("consistency_unit", consistency_unit, ("class", "attribute"))
        require(num_attributes >= 0, "num_attributes", ">= 0", num_attributes)
        super().__init__(**kwargs)
        self._warned_no_pairs = False

    def build_model(self) -> I2CNet:
        options = self.network_options(I2CNet)
        options["num_attributes"] = self.hparams.num_attributes if self.hparams.consistency_unit == "attribute" else 0
        return I2CNet(**options)

    def setup(self, stage: str) -> None:
        """Attribute level: size the attribute bank from the datamodule before fit (and DDP) starts."""
        super().setup(stage)
        if stage != "fit" or self.hparams.consistency_unit != "attribute":
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        available = getattr(datamodule, "num_attributes", 0)
        bank = self.model.attribute_bank
        if bank is None:
            if not available:
                raise ConfigError(f"{NO_ATTRIBUTES} (or give model.init_args.num_attributes)")
            self.model.add_attribute_bank(available)
        elif available and available != bank.centroids.shape[0]:
            raise ConfigError(
                f"I2C num_attributes={bank.centroids.shape[0]} but the datamodule's batches carry "
                f"{available} attributes"
            )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Add the attribute bank a checkpoint holds (its size is that of the stored centroids)."""
        super().on_load_checkpoint(checkpoint)
        centroids = checkpoint["state_dict"].get("model.attribute_bank.centroids")
        if centroids is not None and self.model.attribute_bank is None:
            self.model.add_attribute_bank(centroids.shape[0])

    def training_losses(self, batch: WSOLBatch) -> dict[str, torch.Tensor]:
        hp = self.hparams
        labels = batch.label
        out = self.model(batch.image)
        losses = {"ce": F.cross_entropy(out.logits, labels)}
        attention = minmax_normalize(gather_class_maps(out.class_maps, labels).float())
        positions = select_object_seeds(attention, hp.num_seeds, hp.foreground_threshold, hp.seed_sampling)
        seeds = gather_seed_vectors(out.seed_features, positions)
        if hp.consistency_unit == "attribute":
            losses.update(self.attribute_consistency_losses(seeds, batch))
            return losses
        first, second = same_class_pairs(labels)
        if len(first) == 0 and not self._warned_no_pairs:
            rank_zero_warn("I2C: no same-class pair at batch positions (2k, 2k+1); set data.pair_sampling: true")
            self._warned_no_pairs = True
        losses["sc"] = hp.sc_weight * stochastic_consistency_loss(seeds[first], seeds[second])
        centres = torch.cat([seeds[first], seeds[second]], dim=1).float().mean(dim=1)
        bank = self.model.centroid_bank
        losses["gc"] = hp.gc_weight * global_consistency_loss(centres, bank.centroids, labels[first], bank.seen)
        bank.update(labels[first], centres)
        return losses

    def attribute_consistency_losses(self, seeds: torch.Tensor, batch: WSOLBatch) -> dict[str, torch.Tensor]:
        """Attribute-level SC and GC of ``seeds [B, S, D]``; updates the attribute bank."""
        hp = self.hparams
        if batch.attributes is None:
            raise ConfigError(NO_ATTRIBUTES)
        bank = self.model.attribute_bank
        present = batch.attributes > 0
        if bank is None or present.shape[1] != bank.centroids.shape[0]:
            size = 0 if bank is None else bank.centroids.shape[0]
            raise ConfigError(
                f"I2C: the batch carries {present.shape[1]} attributes but the attribute bank holds {size} "
                "(set model.init_args.num_attributes to match, or 0 to take it from the datamodule)"
            )
        centres = seeds.float().mean(dim=1)
        sc = attribute_consistency_loss(seeds, attribute_overlap(present))
        gc = attribute_global_consistency_loss(centres, bank.centroids, present, bank.seen)
        losses = {"sc": hp.sc_weight * sc, "gc": hp.gc_weight * gc}
        images, attributes = present.nonzero(as_tuple=True)
        bank.update(attributes, centres[images])
        return losses
