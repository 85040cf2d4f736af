"""Base class of every WSOL dataset: raw loading plus the shared transform step."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from wsol_lightning.data.transforms import apply_transform, build_transform


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
    samples carry per-image ``attributes`` (``RawSample.attributes``) sets :attr:`num_attributes`.

    Args:
        split: ``train``, ``val`` or ``test``.
        resize_size: training resize side (wsolevaluation: 256).
        crop_size: training crop and evaluation side (wsolevaluation: 224).
        train_transform: use the training augmentation (defaults to ``split == "train"``).
    """

    def __init__(self, split: str, resize_size: int, crop_size: int, train_transform: bool | None = None) -> None:
        self.split = split
        self.train_transform = split == "train" if train_transform is None else train_transform
        self.transform = build_transform(self.train_transform, resize_size, crop_size)

    num_classes: int
    num_attributes: int = 0

    def class_names(self) -> list[str]:
        return [str(c) for c in range(self.num_classes)]

    def load(self, index: int) -> RawSample:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any]:
        raw = self.load(index)
        image, boxes, masks = apply_transform(self.transform, self.train_transform, raw.image, raw.boxes, raw.masks)
        sample: dict[str, Any] = {
            "image": image,
            "label": raw.label,
            "boxes": boxes,
            "image_id": raw.image_id,
            "orig_size": raw.image.shape[:2],
        }
        sample.update(masks)
        if raw.attributes is not None:
            sample["attributes"] = raw.attributes
        return sample
