"""Data: the WSOL datamodule, the dataset choices (``data.dataset``), transforms and the batch."""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from wsol_lightning.data.batch import WSOLBatch, collate  # noqa: E402
from wsol_lightning.data.datamodule import WSOLDataModule  # noqa: E402
from wsol_lightning.data.datasets import CUB, ILSVRC, MRI, DatasetSpec, OpenImages, Synthetic, SyntheticMRI  # noqa: E402

__all__ = ["CUB", "ILSVRC", "MRI", "DatasetSpec", "OpenImages", "Synthetic", "SyntheticMRI", "WSOLBatch",
           "WSOLDataModule", "collate"]
