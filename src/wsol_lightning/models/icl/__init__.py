"""ICL: In-sample Contrastive Learning and Consistent Attention for WSOL (Ki et al., ACCV 2020)."""

from wsol_lightning.models.icl.lightning_model import ICL
from wsol_lightning.models.icl.torch_model import ICLAttentionLayer, ICLNet, ICLOutput, RegionEmbeddings

__all__ = ["ICL", "ICLAttentionLayer", "ICLNet", "ICLOutput", "RegionEmbeddings"]
