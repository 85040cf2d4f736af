"""I2C LightningModule: CE + stochastic consistency + global consistency (Zhang et al., ECCV 2020)."""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pytorch_lightning.utilities import rank_zero_warn

from wsol_lightning.models.base import WSOLModule
from wsol_lightning.models.components import gather_class_maps
from wsol_lightning.models.components.cam import minmax_normalize
from wsol_lightning.models.i2c.loss import global_consistency_loss, same_class_pairs, stochastic_consistency_loss
from wsol_lightning.models.i2c.torch_model import I2CNet, gather_seed_vectors, select_object_seeds


class I2C(WSOLModule):
    """Inter-image communication: object seeds of same-class images agree with each other and a class bank.

    ``L = CE + sc_weight * L_SC + gc_weight * L_GC`` (official code). Training batches must hold
    same-class pairs at positions ``(2k, 2k + 1)``: set ``data.pair_sampling: true``. The
    localization map is the plain class map of the GT (eval) or predicted class.

    Args:
        seed_threshold: object positions of the min-max normalized GT-class map (paper: 0.7).
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
        **kwargs: the shared options of :class:`~wsol_lightning.models.base.WSOLModule`.
    """

    def __init__(
        self,
        seed_threshold: float = 0.7,
        num_seeds: int = 3,
        seed_sampling: Literal["random", "raster"] = "random",
        sc_weight: float = 0.008,
        gc_weight: float = 0.001,
        centroid_momentum_decay: float = 0.002,
        head: Literal["i2c", "cam"] = "i2c",
        head_width: int = 1024,
        head_dropout: float = 0.5,
        **kwargs: Any,
    ) -> None:
        if not 0.0 <= seed_threshold < 1.0:
            raise ValueError(f"seed_threshold must be in [0, 1), got {seed_threshold}")
        if num_seeds < 1:
            raise ValueError(f"num_seeds must be >= 1, got {num_seeds}")
        if seed_sampling not in ("random", "raster"):
            raise ValueError(f"seed_sampling must be 'random' or 'raster', got {seed_sampling!r}")
        if sc_weight < 0 or gc_weight < 0:
            raise ValueError(f"sc_weight and gc_weight must be >= 0, got {sc_weight} and {gc_weight}")
        super().__init__(**kwargs)
        self._warned_no_pairs = False

    def build_model(self) -> I2CNet:
        hp = self.hparams
        return I2CNet(
            hp.backbone, hp.num_classes, hp.pretrained, hp.large_feature_map, hp.head, hp.head_width,
            hp.head_dropout, hp.centroid_momentum_decay,
        )

    def training_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        hp = self.hparams
        labels = batch["label"]
        out = self.model(batch["image"])
        losses = {"ce": F.cross_entropy(out.logits, labels)}
        attention = minmax_normalize(gather_class_maps(out.class_maps, labels).float())
        positions = select_object_seeds(attention, hp.num_seeds, hp.seed_threshold, hp.seed_sampling)
        seeds = gather_seed_vectors(out.seed_features, positions)
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

    def localization_maps(self, images: torch.Tensor, classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(images)
        return out.logits, gather_class_maps(out.class_maps, classes)
