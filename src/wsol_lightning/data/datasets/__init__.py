"""Datasets: one :class:`DatasetSpec` per dataset (the value of ``data.dataset``) and their readers.

========================= =====================================================================
``data.dataset``          what
========================= =====================================================================
``Synthetic``             built-in part-vs-body set (no files)
``SyntheticMRI``          built-in MRI-like slices with a skull ring (no files)
``CUB``                   CUB-200-2011 (original archive or wsolevaluation metadata layout)
``ILSVRC``                ILSVRC 2012 (class folders + XML/CSV boxes, or wsolevaluation metadata)
``OpenImages``            OpenImages30k masks (wsolevaluation)
``MRI``                   brain-tumour MRI slices (LGG, slice folders, BraTS NIfTI)
``ImageNetClasses``       the 1000 ImageNet class names, no images (``predict`` on a folder)
========================= =====================================================================
"""

from __future__ import annotations

from wsol_lightning.data.datasets.base import DatasetSpec, RawSample, WSOLDataset
from wsol_lightning.data.datasets.cub import CUB
from wsol_lightning.data.datasets.ilsvrc import ILSVRC
from wsol_lightning.data.datasets.imagenet_classes import ImageNetClasses
from wsol_lightning.data.datasets.mri import MRI
from wsol_lightning.data.datasets.openimages import OpenImages
from wsol_lightning.data.datasets.synthetic import Synthetic, SyntheticDataset, SyntheticGenerator
from wsol_lightning.data.datasets.synthetic_mri import (
    SyntheticMRI,
    SyntheticMRIDataset,
    SyntheticMRIGenerator,
)

__all__ = [
    "CUB",
    "ILSVRC",
    "MRI",
    "DatasetSpec",
    "ImageNetClasses",
    "OpenImages",
    "RawSample",
    "Synthetic",
    "SyntheticDataset",
    "SyntheticGenerator",
    "SyntheticMRI",
    "SyntheticMRIDataset",
    "SyntheticMRIGenerator",
    "WSOLDataset",
]
