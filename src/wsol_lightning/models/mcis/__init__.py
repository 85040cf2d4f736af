"""MCIS: Mining Cross-Image Semantics (Sun et al., ECCV 2020), co-attention for localization."""

from wsol_lightning.models.mcis.lightning_model import MCIS
from wsol_lightning.models.mcis.torch_model import (
    CoAttention,
    MCISNet,
    MCISOutput,
    PairOutput,
    aggregate_coattention_maps,
    coattention,
)

__all__ = ["MCIS", "CoAttention", "MCISNet", "MCISOutput", "PairOutput", "aggregate_coattention_maps", "coattention"]
