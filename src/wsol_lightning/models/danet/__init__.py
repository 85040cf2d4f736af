"""DANet: Divergent Activation for Weakly Supervised Object Localization (Xue et al., ICCV 2019)."""

from wsol_lightning.models.danet.lightning_model import DANet
from wsol_lightning.models.danet.loss import (
    hierarchical_cross_entropy,
    official_cosine_loss,
    per_level_cosine_loss,
    sample_map_subset,
    summed_pairwise_cosine,
)
from wsol_lightning.models.danet.torch_model import DANetNet, DANetOutput, LevelHead, fuse_level_maps

__all__ = [
    "DANet",
    "DANetNet",
    "DANetOutput",
    "LevelHead",
    "fuse_level_maps",
    "hierarchical_cross_entropy",
    "official_cosine_loss",
    "per_level_cosine_loss",
    "sample_map_subset",
    "summed_pairwise_cosine",
]
