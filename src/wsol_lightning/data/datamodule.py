"""``WSOLDataModule``: one datamodule for every dataset of the package."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from wsol_lightning.data.batch import collate
from wsol_lightning.data.datasets.base import WSOLDataset
from wsol_lightning.data.datasets.folder import ImageFolderDataset
from wsol_lightning.data.datasets.mri import HeadTumourLabels
from wsol_lightning.data.datasets.synthetic import SyntheticDataset
from wsol_lightning.data.datasets.synthetic_mri import SyntheticMRIDataset
from wsol_lightning.data.samplers import ClassPairedSampler, UnpaddedDistributedSampler, dataset_labels
from wsol_lightning.data.synthetic import SyntheticWSOL
from wsol_lightning.data.synthetic_mri import SyntheticMRI

ATTRIBUTE_DATASETS = ("synthetic", "cub")
DatasetName = Literal["synthetic", "synthetic_mri", "cub", "ilsvrc", "openimages", "mri"]


class WSOLDataModule(pl.LightningDataModule):
    """Train/val/test loaders for a WSOL dataset in the package's batch format.

    Splits follow wsolevaluation: ``train`` (image labels only), ``val`` (small fully annotated
    split for choosing thresholds and hyperparameters), ``test``. Evaluation loaders shard the
    split over DDP ranks without duplicates, so every image is counted exactly once.

    Args:
        dataset: which dataset to read.
        root: dataset root directory (not used by ``synthetic``).
        resize_size: training resize side before the random crop (paper recipe: 256).
        crop_size: training crop and evaluation image side (paper recipe: 224).
        batch_size: training batch size per process.
        eval_batch_size: evaluation batch size (defaults to ``batch_size``).
        num_workers: loader worker processes.
        seed: seed of the synthetic generator and of any split subsampling.
        synthetic_num_classes: fine classes of the synthetic set.
        synthetic_num_coarse: coarse classes (hierarchy) of the synthetic set.
        synthetic_image_size: side of the generated synthetic images.
        synthetic_train_size: synthetic training images.
        synthetic_val_size: synthetic validation images.
        synthetic_test_size: synthetic test images.
        synthetic_two_object_prob: share of synthetic images with two objects.
        synthetic_mri_tumour_prob: share of ``synthetic_mri`` slices with a tumour (it uses the
            ``synthetic_image_size`` and ``synthetic_*_size`` keys too).
        metadata_dir: wsolevaluation metadata folder of the dataset (``metadata/CUB`` ...);
            default: searched next to ``root`` (cub, ilsvrc, openimages).
        cache_dir: where split indexes (and BraTS slices) are cached; default ``<root>/.wsol_index``
            when writable, else ``~/.cache/wsol_lightning``.
        num_val_sample_per_class: keep at most this many val images per class, seeded (0: all;
            wsolevaluation tunes with 10 / 5 / 5 for ILSVRC / CUB / OpenImages).
        mri_split_ratios: (train, val, test) fractions of the MRI patients (patient-level, seeded).
        mri_modality: BraTS sequence read by ``dataset: mri`` on NIfTI volumes
            (``flair``, ``t1``, ``t1ce``, ``t2``).
        mri_multilabel: ``mri`` / ``synthetic_mri`` only: multi-label classes ``{head, tumour}``
            instead of ``{no_tumour, tumour}``; samples gain the multi-hot ``multi_hot`` (head 1
            on every slice, tumour 1 iff tumour; ``label`` unchanged), and the CLI makes the model
            multi-label (:class:`~wsol_lightning.data.datasets.mri.HeadTumourLabels`).
        pair_sampling: build training batches from image pairs at positions ``(2k, 2k + 1)``
            (:class:`~wsol_lightning.data.samplers.ClassPairedSampler`; I2C, MCIS). Needs an even
            ``batch_size``; evaluation loaders are unchanged.
        different_class_pairs: with ``pair_sampling``, how many of the ``batch_size // 2`` pairs of
            a training batch hold two different classes (the rest are same-class pairs).
        predict_dir: folder of images for ``predict`` (any size, grayscale, RGBA, 16-bit, EXIF
            orientation applied; see :class:`~wsol_lightning.data.datasets.folder.ImageFolderDataset`);
            ``None``: ``predict`` serves the test split.
        load_attributes: training batches carry ``attributes`` (float ``[B, A]``, per-image binary
            attributes: the synthetic set's :data:`~wsol_lightning.data.synthetic.ATTRIBUTE_NAMES`,
            CUB's 312 from ``attributes/image_attribute_labels.txt``); evaluation batches never do.
            Read by I2C's ``consistency_unit: attribute``. Only ``synthetic`` and ``cub``.
    """

    def __init__(
        self,
        dataset: DatasetName = "synthetic",
        root: str | None = None,
        resize_size: int = 72,
        crop_size: int = 64,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        seed: int = 0,
        synthetic_num_classes: int = 8,
        synthetic_num_coarse: int = 4,
        synthetic_image_size: int = 64,
        synthetic_train_size: int = 2000,
        synthetic_val_size: int = 200,
        synthetic_test_size: int = 400,
        synthetic_two_object_prob: float = 0.2,
        synthetic_mri_tumour_prob: float = 0.5,
        metadata_dir: str | None = None,
        cache_dir: str | None = None,
        num_val_sample_per_class: int = 0,
        mri_split_ratios: tuple[float, float, float] = (0.7, 0.1, 0.2),
        mri_modality: str = "flair",
        mri_multilabel: bool = False,
        pair_sampling: bool = False,
        different_class_pairs: int = 0,
        predict_dir: str | None = None,
        load_attributes: bool = False,
    ) -> None:
        super().__init__()
        if load_attributes and dataset not in ATTRIBUTE_DATASETS:
            raise ValueError(
                f"data.load_attributes: true needs dataset {' or '.join(ATTRIBUTE_DATASETS)} (the datasets "
                f"with per-image attributes), got dataset {dataset!r}"
            )
        if mri_multilabel and dataset not in ("mri", "synthetic_mri"):
            raise ValueError(
                f"data.mri_multilabel: true needs dataset mri or synthetic_mri, got dataset {dataset!r}"
            )
        self.save_hyperparameters()
        self.dataset = dataset
        self.root = root
        self.resize_size = resize_size
        self.crop_size = crop_size
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        self._datasets: dict[str, WSOLDataset | HeadTumourLabels] = {}
        self._train_labels: np.ndarray | None = None

    # -- dataset construction -------------------------------------------------------------
    def build_dataset(self, split: str) -> WSOLDataset | HeadTumourLabels:
        """Build (uncached) one split of the configured dataset (``predict``: the ``predict_dir`` folder)."""
        if split == "predict":
            return ImageFolderDataset(self.hparams.predict_dir, self.crop_size)
        if self.hparams.mri_multilabel:
            return HeadTumourLabels(self._build_single_label_dataset(split))
        return self._build_single_label_dataset(split)

    def _build_single_label_dataset(self, split: str) -> WSOLDataset:
        if self.dataset == "synthetic":
            hp = self.hparams
            length = {
                "train": hp.synthetic_train_size,
                "val": hp.synthetic_val_size,
                "test": hp.synthetic_test_size,
            }[split]
            generator = SyntheticWSOL(
                split=split,
                length=length,
                image_size=hp.synthetic_image_size,
                num_classes=hp.synthetic_num_classes,
                num_coarse=hp.synthetic_num_coarse,
                seed=self.seed,
                two_object_prob=hp.synthetic_two_object_prob,
            )
            with_attributes = hp.load_attributes and split == "train"
            return SyntheticDataset(generator, self.resize_size, self.crop_size, with_attributes)
        if self.dataset == "synthetic_mri":
            hp = self.hparams
            sizes = {
                "train": hp.synthetic_train_size,
                "val": hp.synthetic_val_size,
                "test": hp.synthetic_test_size,
            }
            mri = SyntheticMRI(
                split=split,
                length=sizes[split],
                image_size=hp.synthetic_image_size,
                seed=self.seed,
                tumour_prob=hp.synthetic_mri_tumour_prob,
            )
            return SyntheticMRIDataset(mri, self.resize_size, self.crop_size)
        from wsol_lightning.data.datasets import build_real_dataset

        hp = self.hparams
        return build_real_dataset(
            self.dataset, self.root, split, self.resize_size, self.crop_size, self.seed,
            metadata_dir=hp.metadata_dir,
            cache_dir=hp.cache_dir,
            num_val_sample_per_class=hp.num_val_sample_per_class,
            mri_split_ratios=tuple(hp.mri_split_ratios), mri_modality=hp.mri_modality,
            load_attributes=hp.load_attributes and split == "train",
        )

    def get_dataset(self, split: str) -> WSOLDataset | HeadTumourLabels:
        if split not in self._datasets:
            self._datasets[split] = self.build_dataset(split)
        return self._datasets[split]

    @property
    def num_classes(self) -> int:
        """Number of classes (linked into the model's ``num_classes`` by the CLI)."""
        if self.dataset == "synthetic":
            return int(self.hparams.synthetic_num_classes)
        if self.dataset == "synthetic_mri":
            return SyntheticMRI.num_classes
        return self.get_dataset("val").num_classes

    @property
    def multilabel(self) -> bool:
        """Targets are multi-hot (``mri_multilabel``; linked into the model's ``multilabel`` by the CLI)."""
        return bool(self.hparams.mri_multilabel)

    @property
    def num_attributes(self) -> int:
        """Length ``A`` of the training batches' ``attributes`` (0 without ``load_attributes``)."""
        return self.get_dataset("train").num_attributes if self.hparams.load_attributes else 0

    def class_names(self) -> list[str]:
        return self.get_dataset("val").class_names()

    def setup(self, stage: str) -> None:
        splits = {"fit": ["train", "val"], "validate": ["val"], "test": ["test"], "predict": [self._predict_split]}[stage]
        for split in splits:
            self.get_dataset(split)

    # -- loaders --------------------------------------------------------------------------
    @property
    def _predict_split(self) -> str:
        return "predict" if self.hparams.predict_dir is not None else "test"

    def _loader(self, split: str, train: bool) -> DataLoader:
        dataset = self.get_dataset(split)
        sampler = None
        if not train and torch.distributed.is_available() and torch.distributed.is_initialized():
            sampler = UnpaddedDistributedSampler(dataset)
        paired = train and self.hparams.pair_sampling
        if paired:
            sampler = ClassPairedSampler(
                self.train_labels(), self.batch_size, self.hparams.different_class_pairs, self.seed
            )
        generator = torch.Generator().manual_seed(self.seed) if train else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train and not paired,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=ImageFolderDataset.collate if isinstance(dataset, ImageFolderDataset) else collate,
            drop_last=train and not paired and len(dataset) > self.batch_size,
            persistent_workers=self.num_workers > 0,
            generator=generator,
            pin_memory=torch.cuda.is_available(),
        )

    def train_labels(self) -> np.ndarray:
        """Class index of every training sample, computed once without rendering (pair sampling)."""
        if self._train_labels is None:
            self._train_labels = dataset_labels(self.get_dataset("train"))
        return self._train_labels

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", train=False)

    def predict_dataloader(self) -> DataLoader:
        """The ``predict_dir`` folder when set (batches add ``path`` and ``failed``), else the test split."""
        return self._loader(self._predict_split, train=False)


