"""``WSOLDataModule``: one datamodule for every dataset of the package."""

from __future__ import annotations

import signal
from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from wsol_lightning.data.batch import collate
from wsol_lightning.data.datasets.base import DatasetSpec, WSOLDataset
from wsol_lightning.data.datasets.folder import ImageFolderDataset
from wsol_lightning.data.datasets.synthetic import Synthetic
from wsol_lightning.data.samplers import (
    ClassPairedSampler,
    EpochSampler,
    ResumableSampler,
    UnpaddedDistributedSampler,
    dataset_labels,
)
from wsol_lightning.data.transforms import IMAGE_RESIZES, TRAIN_RESIZES
from wsol_lightning.errors import ConfigError


def _ignore_interrupts(_worker_id: int) -> None:
    """Loader workers leave Ctrl-C to the main process, which stops the fit cleanly (see the CLI)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class WSOLDataModule(pl.LightningDataModule):
    """Train/val/test loaders for a WSOL dataset in the package's batch format.

    Splits follow wsolevaluation: ``train`` (image labels only), ``val`` (small fully annotated
    split for choosing thresholds and hyperparameters), ``test``. Evaluation loaders shard the
    split over DDP ranks without duplicates, so every image is counted exactly once.

    Args:
        dataset: which dataset to read, with its own options
            (:mod:`wsol_lightning.data.datasets`: ``Synthetic``, ``SyntheticMRI``, ``CUB``,
            ``ILSVRC``, ``OpenImages``, ``MRI``); e.g. ``--data.dataset CUB --data.dataset.root DIR``.
            ``None``: ``Synthetic()``.
        resize_size: training resize side before the random crop (paper recipe: 256).
        crop_size: training crop and evaluation image side (paper recipe: 224).
        image_resize: how images are resized, in training and evaluation: ``"opencv"``
            (``cv2.INTER_LINEAR``, no antialiasing) or ``"pil"`` (PIL's antialiased bilinear, i.e.
            torchvision's ``Resize``: wsolevaluation's and the papers' PyTorch code's).
        train_resize: training images resized ``"square"`` to ``resize_size`` x ``resize_size``
            (wsolevaluation, SPA, DANet) or by their ``"shorter_side"`` to ``resize_size``, the
            aspect ratio kept (torchvision's ``Resize(resize_size)``: I2C's training code), before
            the random crop; evaluation images are resized square either way.
        ten_crop: evaluation samples also carry torchvision's ``TenCrop(crop_size)`` of the image
            resized to ``resize_size`` square; the model then logs the ten-crop classification
            (softmax per crop, averaged: SPA's and DANet's evaluation) as ``cls_top1_ten_crop`` and,
            with ``union_box_threshold``, ``top1_loc_union_ten_crop``. Costs ten more forwards per
            evaluated image; single-label datasets only.
        batch_size: training batch size per process.
        eval_batch_size: evaluation batch size (defaults to ``batch_size``).
        num_workers: loader worker processes.
        seed: seed of the synthetic generators and of any split choice or subsampling.
        pair_sampling: build training batches from image pairs at positions ``(2k, 2k + 1)``
            (:class:`~wsol_lightning.data.samplers.ClassPairedSampler`; I2C, MCIS). Needs an even
            ``batch_size``; evaluation loaders are unchanged.
        different_class_pairs: with ``pair_sampling``, how many of the ``batch_size // 2`` pairs of
            a training batch hold two different classes (the rest are same-class pairs).
        predict_dir: folder of images for ``predict`` (any size, grayscale, RGBA, 16-bit, EXIF
            orientation applied; see :class:`~wsol_lightning.data.datasets.folder.ImageFolderDataset`);
            ``None``: ``predict`` serves the test split.
    """

    def __init__(
        self,
        dataset: DatasetSpec | None = None,
        resize_size: int = 72,
        crop_size: int = 64,
        image_resize: Literal["opencv", "pil"] = "opencv",
        train_resize: Literal["square", "shorter_side"] = "square",
        ten_crop: bool = False,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        num_workers: int = 2,
        seed: int = 0,
        pair_sampling: bool = False,
        different_class_pairs: int = 0,
        predict_dir: str | None = None,
    ) -> None:
        super().__init__()
        for key, value in (("batch_size", batch_size), ("crop_size", crop_size), ("resize_size", resize_size)):
            if value < 1:
                raise ConfigError(f"data.{key} must be a positive integer, got {value}")
        if eval_batch_size is not None and eval_batch_size < 1:
            raise ConfigError(f"data.eval_batch_size must be a positive integer, got {eval_batch_size}")
        if num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0, got {num_workers}")
        if image_resize not in IMAGE_RESIZES:
            raise ConfigError(f"data.image_resize must be one of {', '.join(IMAGE_RESIZES)}, got {image_resize!r}")
        if train_resize not in TRAIN_RESIZES:
            raise ConfigError(f"data.train_resize must be one of {', '.join(TRAIN_RESIZES)}, got {train_resize!r}")
        if resize_size < crop_size:
            raise ConfigError(f"data.resize_size ({resize_size}) must be >= data.crop_size ({crop_size})")
        if dataset is None:
            dataset = Synthetic()
        elif isinstance(dataset, dict):  # the saved hyperparameters of a checkpoint (load_from_checkpoint)
            dataset = DatasetSpec.from_description(dataset)
        if ten_crop and dataset.multilabel:
            raise ConfigError("data.ten_crop averages softmax scores over crops: it needs a single-label dataset "
                              "(set the dataset's multilabel to false or data.ten_crop to false)")
        self.save_hyperparameters(ignore=["dataset"])
        self.hparams["dataset"] = dataset.describe()
        self.dataset = dataset
        self.resize_size = resize_size
        self.crop_size = crop_size
        self.image_resize = image_resize
        self.train_resize = train_resize
        self.ten_crop = ten_crop
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.seed = seed
        self._datasets: dict[str, WSOLDataset] = {}
        self._train_labels: np.ndarray | None = None
        self._resume_at: tuple[int, int] | None = None

    # -- dataset construction -------------------------------------------------------------
    def build_dataset(self, split: str) -> WSOLDataset:
        """Build (uncached) one split of the configured dataset (``predict``: the ``predict_dir`` folder)."""
        if split == "predict":
            dataset = ImageFolderDataset(self.hparams.predict_dir, self.crop_size)
        elif split in ("train", "val", "test"):
            dataset = self.dataset.build(split, self.resize_size, self.crop_size, self.seed)
        else:
            raise ConfigError(f"split must be train, val, test or predict, got {split!r}")
        dataset.configure_images(self.image_resize, self.ten_crop and split in ("val", "test"), self.train_resize)
        return dataset

    def get_dataset(self, split: str) -> WSOLDataset:
        if split not in self._datasets:
            self._datasets[split] = self.build_dataset(split)
        return self._datasets[split]

    @property
    def num_classes(self) -> int:
        """Number of classes (linked into the model's ``num_classes`` by the CLI)."""
        return len(self.class_names())

    @property
    def provided_fields(self) -> frozenset[str]:
        """What the dataset's samples carry for evaluation (the evaluator keeps the metrics they allow)."""
        fields = self.get_dataset("val").provided_fields
        return fields | {"ten_crop"} if self.ten_crop else fields

    @property
    def multilabel(self) -> bool:
        """Targets are multi-hot (an MRI dataset's ``multilabel``; linked into the model's by the CLI)."""
        return bool(self.dataset.multilabel)

    @property
    def num_attributes(self) -> int:
        """Length ``A`` of the training batches' ``attributes`` (0 unless the dataset's ``attributes``)."""
        return self.get_dataset("train").num_attributes if self.dataset.attributes else 0

    def class_names(self) -> list[str]:
        """The class names, index order (the dataset spec's, or its val split's)."""
        names = self.dataset.class_names()
        return names if names is not None else self.get_dataset("val").class_names()

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
        if train:
            sampler = self.train_sampler()
        elif torch.distributed.is_available() and torch.distributed.is_initialized():
            sampler = UnpaddedDistributedSampler(dataset)
        return DataLoader(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate,
            drop_last=train and len(dataset) > self.batch_size,
            persistent_workers=self.num_workers > 0,
            worker_init_fn=_ignore_interrupts,
            pin_memory=torch.cuda.is_available(),
        )

    def train_sampler(self) -> ResumableSampler:
        """The training order: shuffled per epoch, or class pairs (``pair_sampling``); resumable."""
        if self.hparams.pair_sampling:
            sampler: ResumableSampler = ClassPairedSampler(
                self.train_labels(), self.batch_size, self.hparams.different_class_pairs, self.seed
            )
        else:
            sampler = EpochSampler(len(self.get_dataset("train")), self.seed)
        if self._resume_at is not None:
            epoch, batches = self._resume_at
            sampler.skip(epoch, batches * self.batch_size)
        return sampler

    # -- resuming ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, int]:
        """Where the fit is in its training order (saved in checkpoints): epoch and batches done in it."""
        trainer = self.trainer
        if trainer is None or not trainer.training:
            return {}
        progress = trainer.fit_loop.epoch_loop.batch_progress.current
        return {"epoch": int(trainer.current_epoch), "batches": int(progress.processed)}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        """Resume the training order after the batches a checkpoint had done."""
        if state_dict:
            self._resume_at = (int(state_dict["epoch"]), int(state_dict["batches"]))

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


