"""Boxes through resize, crop and flip, against hand-computed values."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from wsol_lightning.data.transforms import apply_transform, build_transform


def _run(steps, image, box):
    pipeline = A.Compose(
        [*steps, A.ToFloat(max_value=255.0)],  # like build_transform: RGB in [0, 1], no normalization
        bbox_params=A.BboxParams(
            format="pascal_voc", label_fields=["box_ids"], clip=True, min_visibility=0.0
        ),
    )
    return apply_transform(pipeline, True, image, np.array([box]), {})


def test_resize_crop_flip_by_hand() -> None:
    image = np.zeros((20, 40, 3), np.uint8)
    # resize 40x20 -> 20x10: inclusive (4, 2, 11, 7) = continuous [4, 12) x [2, 8) -> [2, 6) x [1, 4) -> (2, 1, 5, 3)
    _, boxes, _ = _run([A.Resize(10, 20)], image, [4, 2, 11, 7])
    assert boxes.tolist() == [[2, 1, 5, 3]]
    # then crop x in [3, 13), y in [1, 9): [2, 6) x [1, 4) -> [-1, 3) x [0, 3) -> clipped [0, 3) x [0, 3) -> (0, 0, 2, 2)
    _, boxes, _ = _run([A.Resize(10, 20), A.Crop(x_min=3, y_min=1, x_max=13, y_max=9)], image, [4, 2, 11, 7])
    assert boxes.tolist() == [[0, 0, 2, 2]]
    # then flip the 10-px-wide crop: [0, 3) -> [10 - 3, 10 - 0) = [7, 10) -> (7, 0, 9, 2)
    out, boxes, _ = _run(
        [A.Resize(10, 20), A.Crop(x_min=3, y_min=1, x_max=13, y_max=9), A.HorizontalFlip(p=1.0)],
        image,
        [4, 2, 11, 7],
    )
    assert boxes.tolist() == [[7, 0, 9, 2]] and tuple(out.shape) == (3, 8, 10)


@pytest.mark.parametrize("seed", range(6))
def test_training_pipeline_flip_matches_the_image(seed: int) -> None:
    """resize 40x20 -> 16x16 (no crop room), flip at random: the box follows the bright column."""
    image = np.zeros((20, 40, 3), np.uint8)
    image[:, :10] = 255  # bright left quarter = the object, inclusive box (0, 0, 9, 19)
    pipeline = build_transform(True, 16, 16)
    torch.manual_seed(seed)  # the training pipeline draws its seed from torch's RNG
    out, boxes, _ = apply_transform(pipeline, True, image, np.array([[0, 0, 9, 19]]), {})
    # RGB in [0, 1] (the network normalizes its own input): the bright column is exactly 1.0
    assert out.dtype == torch.float32 and float(out.min()) == 0.0 and float(out.max()) == 1.0
    flipped = out[0, 8, -1] > out[0, 8, 0]
    assert float(out[0, 8, -1 if flipped else 0]) == 1.0 and float(out[0, 8, 0 if flipped else -1]) == 0.0
    # [0, 10) x [0, 20) scaled by (0.4, 0.8) = [0, 4) x [0, 16): (0, 0, 3, 15), flipped (12, 0, 15, 15)
    assert boxes.tolist() == ([[12, 0, 15, 15]] if flipped else [[0, 0, 3, 15]])


def _crops(pipeline: A.Compose, count: int) -> list[list[int]]:
    """Where a bright 1-px marker of a 24x24 image lands after crop 16 + flip, for ``count`` draws."""
    image = np.zeros((24, 24, 3), np.uint8)
    image[12, 12] = 255
    return [apply_transform(pipeline, True, image, np.array([[12, 12, 12, 12]]), {})[1].tolist() for _ in range(count)]


def test_training_augmentation_is_reproducible_from_the_torch_seed() -> None:
    """Same torch seed, same crops and flips (albumentations alone would seed from OS entropy)."""
    torch.manual_seed(3)
    first = _crops(build_transform(True, 24, 16), 8)
    torch.manual_seed(3)
    again = _crops(build_transform(True, 24, 16), 8)
    torch.manual_seed(4)
    other = _crops(build_transform(True, 24, 16), 8)
    assert first == again
    assert first != other
    assert len({str(b) for b in first}) > 1  # the draws vary within a run


class _MarkerCrops(Dataset):
    def __init__(self) -> None:
        self.pipeline = build_transform(True, 24, 16)

    def __len__(self) -> int:
        return 8

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.tensor(_crops(self.pipeline, 1)[0][0])


def test_dataloader_workers_draw_different_augmentations_reproducibly() -> None:
    """Two workers forked from one dataset do not repeat each other's crops; the loader's seed fixes them."""
    def load() -> list[list[int]]:
        loader = DataLoader(_MarkerCrops(), batch_size=4, num_workers=2,
                            generator=torch.Generator().manual_seed(0))
        return [b.tolist() for b in loader]  # batch 0 from worker 0, batch 1 from worker 1

    first, again = load(), load()
    assert first == again
    assert first[0] != first[1]
