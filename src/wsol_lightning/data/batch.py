"""The batch format shared by every dataset and method.

A sample (one ``dict`` from a dataset) and a batch (the collated ``dict``) carry:

========== ======================= =====================================================
key        batch shape / type      meaning
========== ======================= =====================================================
image      float [B, 3, H, W]      normalized image at the evaluated size
label      int64 [B]               class index
boxes      int64 [B, K_max, 4]     every GT box, inclusive pixel x0, y0, x1, y1 in the
                                   evaluated image's frame; padding rows are -1
num_boxes  int64 [B]               number of valid rows of ``boxes``
mask       uint8 [B, H, W]         optional: 1 object, 0 background, 255 ignore
part_mask  uint8 [B, H, W]         optional (synthetic set): 1 on the discriminative part
skull_mask uint8 [B, H, W]         optional (synthetic MRI set): 1 on the skull ring
attributes float32 [B, A]          optional (``data.load_attributes``, training batches):
                                   per-image binary attributes, 1 present
multi_hot  float32 [B, C]          optional (``mri_multilabel``): multi-hot targets, 1 per class present
image_id   list[str]               id of the image (path relative to the dataset root)
orig_size  int64 [B, 2]            original (height, width) before resizing
========== ======================= =====================================================
"""

from __future__ import annotations

from typing import Any

import torch

BOX_PAD = -1
OPTIONAL_MAP_KEYS = ("mask", "part_mask", "skull_mask")
OPTIONAL_VECTOR_KEYS = ("multi_hot", "attributes")


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Collate samples into the batch format, padding the variable number of boxes."""
    batch: dict[str, Any] = {
        "image": torch.stack([s["image"] for s in samples]),
        "label": torch.as_tensor([int(s["label"]) for s in samples], dtype=torch.long),
        "image_id": [s["image_id"] for s in samples],
        "orig_size": torch.stack([torch.as_tensor(s["orig_size"], dtype=torch.long) for s in samples]),
    }
    boxes = [torch.as_tensor(s["boxes"], dtype=torch.long).reshape(-1, 4) for s in samples]
    k_max = max(1, max(len(b) for b in boxes))
    padded = torch.full((len(samples), k_max, 4), BOX_PAD, dtype=torch.long)
    for i, b in enumerate(boxes):
        padded[i, : len(b)] = b
    batch["boxes"] = padded
    batch["num_boxes"] = torch.as_tensor([len(b) for b in boxes], dtype=torch.long)
    optional = [(key, torch.uint8) for key in OPTIONAL_MAP_KEYS] + [(key, torch.float32) for key in OPTIONAL_VECTOR_KEYS]
    for key, dtype in optional:
        present = [key in s for s in samples]
        if all(present):
            batch[key] = torch.stack([torch.as_tensor(s[key], dtype=dtype) for s in samples])
        elif any(present):
            raise ValueError(f"batch mixes samples with and without {key!r}")
    return batch


def unpad_boxes(boxes: torch.Tensor, num_boxes: torch.Tensor) -> list[torch.Tensor]:
    """Padded ``[B, K_max, 4]`` boxes to a list of ``[K_i, 4]`` tensors."""
    return [boxes[i, : int(n)] for i, n in enumerate(num_boxes)]
