"""I2C: Inter-Image Communication for Weakly Supervised Localization (Zhang et al., ECCV 2020)."""

from wsol_lightning.models.i2c.lightning_model import I2C
from wsol_lightning.models.i2c.torch_model import CentroidBank, I2CNet, I2COutput

__all__ = ["CentroidBank", "I2C", "I2CNet", "I2COutput"]
