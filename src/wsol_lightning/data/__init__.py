"""Data: the WSOL datamodule, the dataset choices (``data.dataset``), transforms and the batch."""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from wsol_lightning.data.batch import WSOLBatch, collate  # noqa: E402
from wsol_lightning.data.datamodule import WSOLDataModule  # noqa: E402
from wsol_lightning.data.datasets import (  # noqa: E402
    CUB,
    ILSVRC,
    MRI,
    DatasetSpec,
    ImageNetClasses,
    OpenImages,
    Synthetic,
    SyntheticMRI,
)

__all__ = ["CUB", "ILSVRC", "MRI", "DatasetSpec", "ImageNetClasses", "OpenImages", "Synthetic", "SyntheticMRI",
           "WSOLBatch", "WSOLDataModule", "collate"]
