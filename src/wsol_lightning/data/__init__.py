"""Data: the WSOL datamodule, datasets, transforms and the batch format."""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from wsol_lightning.data.batch import collate, unpad_boxes  # noqa: E402
from wsol_lightning.data.datamodule import WSOLDataModule  # noqa: E402
from wsol_lightning.data.synthetic import SyntheticWSOL  # noqa: E402

__all__ = ["SyntheticWSOL", "WSOLDataModule", "collate", "unpad_boxes"]
