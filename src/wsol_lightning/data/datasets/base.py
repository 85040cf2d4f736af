"""Base classes of the datasets: :class:`DatasetSpec` (what ``data.dataset`` names) and :class:`WSOLDataset`.

A :class:`DatasetSpec` is one dataset with its own options (``Synthetic(train_size=...)``,
``CUB(root=...)``, ``MRI(root=..., modality=...)``); :class:`~wsol_lightning.data.WSOLDataModule`
asks it for each split's :class:`WSOLDataset` (raw loading plus the shared transform step).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from torch.utils.data import Dataset

from wsol_lightning.data.transforms import apply_transform, build_transform, ten_crop_views
from wsol_lightning.errors import ConfigError


@dataclass
class RawSample:
    """An image as stored, with annotations in its original pixel frame."""

    image: np.ndarray  # [H, W, 3] uint8 RGB
    label: int
    boxes: np.ndarray  # [K, 4] int64 inclusive x0, y0, x1, y1
    image_id: str
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # "mask", "part_mask": [H, W] uint8
    attributes: np.ndarray | None = None  # [A] per-image binary attributes (1 present), when loaded


class WSOLDataset(Dataset):
    """A split of a WSOL dataset returning samples in the package's batch format.

    Subclasses implement :meth:`__len__`, :meth:`load` and :attr:`num_classes`; a dataset whose
    samples carry per-image ``attributes`` (``RawSample.attributes``) sets :attr:`num_attributes`,
    and one with masks or images without an object says so in :attr:`provided_fields`.

    Args:
        split: ``train``, ``val`` or ``test``.
        resize_size: training resize side (wsolevaluation: 256).
        crop_size: training crop and evaluation side (wsolevaluation: 224).
        train_transform: use the training augmentation (defaults to ``split == "train"``).
    """

    def __init__(self, split: str, resize_size: int, crop_size: int, train_transform: bool | None = None) -> None:
        self.split = split
        self.train_transform = split == "train" if train_transform is None else train_transform
        self.resize_size, self.crop_size = resize_size, crop_size
        self.image_resize, self.ten_crop = "opencv", False
        self.transform = build_transform(self.train_transform, resize_size, crop_size)

    def configure_images(self, image_resize: str = "opencv", ten_crop: bool = False, train_resize: str = "square") -> None:
        """Resize images with ``"opencv"`` or ``"pil"``, training images ``"square"`` or by their
        ``"shorter_side"``; with ``ten_crop`` (evaluation splits only) each sample also carries
        ``ten_crop_images`` (see :mod:`wsol_lightning.data.transforms`)."""
        self.image_resize, self.ten_crop = image_resize, ten_crop and not self.train_transform
        self.transform = build_transform(
            self.train_transform, self.resize_size, self.crop_size, image_resize, train_resize
        )

    num_classes: int
    num_attributes: int = 0
    #: What the samples carry for evaluation (:data:`wsol_lightning.metrics.evaluator.FIELDS`).
    provided_fields: frozenset[str] = frozenset({"boxes"})

    def class_names(self) -> list[str]:
        return [str(c) for c in range(self.num_classes)]

    def load(self, index: int) -> RawSample:
        raise NotImplementedError

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Any]:
        """Sample ``index``; a training sampler passes ``(index, augmentation_seed)``."""
        index, seed = index if isinstance(index, tuple) else (index, None)
        raw = self.load(index)
        image, boxes, masks = apply_transform(
            self.transform, self.train_transform, raw.image, raw.boxes, raw.masks, seed
        )
        sample: dict[str, Any] = {
            "image": image,
            "label": raw.label,
            "boxes": boxes,
            "image_id": raw.image_id,
            "orig_size": raw.image.shape[:2],
        }
        sample.update(masks)
        if self.ten_crop:
            sample["ten_crop_images"] = ten_crop_views(raw.image, self.resize_size, self.crop_size, self.image_resize)
        if raw.attributes is not None:
            sample["attributes"] = raw.attributes
        return sample


class DatasetSpec:
    """A dataset and its own options: the value of ``data.dataset``.

    A subclass takes its options as typed, documented ``__init__`` arguments (they are its config
    keys), stores each under its own name, and implements :meth:`build`.
    """

    #: Short name (run names, W&B tags): ``synthetic``, ``cub``, ...
    name: ClassVar[str] = "dataset"
    #: Whether the targets are multi-hot (linked into the model's ``multilabel`` by the CLI).
    multilabel: bool = False
    #: Whether training samples carry per-image ``attributes`` (I2C's attribute level).
    attributes: bool = False

    def class_names(self) -> list[str] | None:
        """The class names when the spec knows them without reading a split (``None``: the val split says)."""
        return None

    def build(self, split: str, resize_size: int, crop_size: int, seed: int) -> WSOLDataset:
        """One split in the batch format.

        Args:
            split: ``train``, ``val`` or ``test``.
            resize_size: training resize side (before the random crop).
            crop_size: training crop and evaluation side.
            seed: seed of the dataset's random choices (synthetic images, val hold-out and
                subsampling, MRI patient split).
        """
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The spec's init arguments by name (its config keys and values)."""
        names = list(inspect.signature(type(self)).parameters)
        return {name: getattr(self, name) for name in names}

    def describe(self) -> dict[str, Any]:
        """``{"class_path", "init_args"}``: the spec as a config value (saved in checkpoints)."""
        cls = type(self)
        return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": self.options()}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.options() == self.options()

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted((k, repr(v)) for k, v in self.options().items()))))

    @staticmethod
    def from_description(description: dict[str, Any]) -> DatasetSpec:
        """The spec of a :meth:`describe` dict (a checkpoint's ``datamodule_hyper_parameters``)."""
        module_name, _, class_name = description["class_path"].rpartition(".")
        if not module_name.startswith("wsol_lightning."):
            raise ConfigError(f"not a wsol_lightning dataset: {description['class_path']!r}")
        cls = getattr(importlib.import_module(module_name), class_name)
        return cls(**description.get("init_args", {}))

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({options})"
