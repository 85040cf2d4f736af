"""HaS: Hide-and-Seek (Singh & Lee, ICCV 2017), as in wsolevaluation (Choe et al., CVPR 2020)."""

from wsol_lightning.models.has.lightning_model import HaS

__all__ = ["HaS"]
