"""The batch every dataset yields and every method reads: :class:`WSOLBatch`, built by :func:`collate`.

A dataset sample is a ``dict`` with the keys below (one image); :func:`collate` turns a list of
samples into a :class:`WSOLBatch` for training, evaluation and ``predict`` alike. Boxes are
inclusive pixel coordinates ``[x0, y0, x1, y1]`` in the frame of ``image``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

BOX_PAD = -1
#: Optional per-pixel fields ``[B, H, W]`` uint8 and the datasets that provide them.
OPTIONAL_MAP_FIELDS = ("mask", "part_mask", "skull_mask")
#: Optional per-image vector fields ``[B, N]`` float32.
OPTIONAL_VECTOR_FIELDS = ("multi_hot", "attributes")
#: Optional per-image image stacks ``[B, N, 3, H, W]`` float32 (``data.ten_crop``).
OPTIONAL_IMAGE_FIELDS = ("ten_crop_images",)
#: Optional per-image string fields (``predict`` folders).
OPTIONAL_LIST_FIELDS = ("path", "failed")


@dataclass
class WSOLBatch:
    """A batch of images with their labels and annotations.

    Attributes:
        image: float ``[B, 3, H, W]``, RGB in ``[0, 1]`` (each network normalizes its own input).
        label: int64 ``[B]``, class index (``-1``: unknown, e.g. an image folder given to ``predict``).
        boxes: int64 ``[B, K_max, 4]``, every GT box in the frame of ``image``; padding rows are -1.
        num_boxes: int64 ``[B]``, valid rows of ``boxes`` (0: no object, e.g. an MRI slice without tumour).
        image_id: ids of the images (path relative to the dataset root).
        orig_size: int64 ``[B, 2]``, (height, width) of the stored image before resizing.
        mask: uint8 ``[B, H, W]``: 1 object, 0 background, 255 ignore (datasets with masks).
        part_mask: uint8 ``[B, H, W]``: 1 on the discriminative part (synthetic set).
        skull_mask: uint8 ``[B, H, W]``: 1 on the skull ring (synthetic MRI set).
        multi_hot: float32 ``[B, C]``: multi-label targets (MRI with ``multilabel``).
        attributes: float32 ``[B, A]``: per-image binary attributes (``attributes: true``, training).
        ten_crop_images: float32 ``[B, 10, 3, h, w]``: torchvision's ten crops of each image
            (``data.ten_crop``, evaluation).
        path: the image files (``predict`` folders).
        failed: per image, why it could not be decoded, or ``None`` (``predict`` folders).
    """

    image: torch.Tensor
    label: torch.Tensor
    boxes: torch.Tensor
    num_boxes: torch.Tensor
    image_id: list[str]
    orig_size: torch.Tensor
    mask: torch.Tensor | None = None
    part_mask: torch.Tensor | None = None
    skull_mask: torch.Tensor | None = None
    multi_hot: torch.Tensor | None = None
    attributes: torch.Tensor | None = None
    ten_crop_images: torch.Tensor | None = None
    path: list[str] | None = None
    failed: list[str | None] | None = None

    def __len__(self) -> int:
        return self.image.shape[0]

    def has(self, field: str) -> bool:
        """Whether the optional ``field`` is present (``boxes``: whether some image has a box)."""
        if field == "boxes":
            return bool((self.num_boxes > 0).any())
        return getattr(self, field) is not None

    def gt_boxes(self) -> list[torch.Tensor]:
        """The valid boxes of every image, ``[K_i, 4]`` each."""
        return [self.boxes[i, : int(n)] for i, n in enumerate(self.num_boxes)]

    def pin_memory(self) -> WSOLBatch:
        """A copy with every tensor in pinned memory (called by the DataLoader with ``pin_memory``)."""
        return dataclasses.replace(
            self,
            **{
                f.name: getattr(self, f.name).pin_memory()
                for f in dataclasses.fields(self)
                if isinstance(getattr(self, f.name), torch.Tensor)
            },
        )


def collate(samples: list[dict[str, Any]]) -> WSOLBatch:
    """Collate dataset samples into a :class:`WSOLBatch`, padding the variable number of boxes.

    Raises:
        ValueError: some samples carry an optional field and others do not.
    """
    boxes = [torch.as_tensor(s["boxes"], dtype=torch.long).reshape(-1, 4) for s in samples]
    padded = torch.full((len(samples), max(1, max(len(b) for b in boxes)), 4), BOX_PAD, dtype=torch.long)
    for i, b in enumerate(boxes):
        padded[i, : len(b)] = b
    optional: dict[str, Any] = {}
    for field in (*OPTIONAL_MAP_FIELDS, *OPTIONAL_VECTOR_FIELDS, *OPTIONAL_IMAGE_FIELDS, *OPTIONAL_LIST_FIELDS):
        present = [field in s for s in samples]
        if any(present) and not all(present):
            raise ValueError(f"batch mixes samples with and without {field!r}")
        if not all(present):
            continue
        values = [s[field] for s in samples]
        if field in OPTIONAL_LIST_FIELDS:
            optional[field] = values
        else:
            dtype = torch.uint8 if field in OPTIONAL_MAP_FIELDS else torch.float32
            optional[field] = torch.stack([torch.as_tensor(v, dtype=dtype) for v in values])
    return WSOLBatch(
        image=torch.stack([s["image"] for s in samples]),
        label=torch.as_tensor([int(s["label"]) for s in samples], dtype=torch.long),
        boxes=padded,
        num_boxes=torch.as_tensor([len(b) for b in boxes], dtype=torch.long),
        image_id=[s["image_id"] for s in samples],
        orig_size=torch.stack([torch.as_tensor(s["orig_size"], dtype=torch.long) for s in samples]),
        **optional,
    )
