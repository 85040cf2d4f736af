"""``data.image_resize: pil``: images resized as torchvision's ``Resize`` on a PIL image (wsolevaluation)."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms

from wsol_lightning.data import CUB, SyntheticMRI, WSOLDataModule
from wsol_lightning.data.transforms import (
    PILBilinearResize,
    ShorterSideResize,
    apply_transform,
    build_transform,
)
from wsol_lightning.errors import ConfigError

PHOTO = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def _photo() -> np.ndarray:
    with Image.open(PHOTO) as image:
        return np.asarray(image.convert("RGB"))


def _torchvision(image: np.ndarray, side: int) -> torch.Tensor:
    """wsolevaluation's resize: ``transforms.Resize((side, side))`` then ``ToTensor``."""
    return transforms.ToTensor()(transforms.Resize((side, side))(Image.fromarray(image)))


def test_evaluation_resize_equals_torchvision_on_a_photo() -> None:
    image = _photo()  # 600 x 512: shrunk to 224, where antialiasing matters
    out, _, _ = apply_transform(build_transform(False, 256, 224, "pil"), False, image, np.zeros((0, 4)), {})
    assert torch.equal(out, _torchvision(image, 224))
    opencv, _, _ = apply_transform(build_transform(False, 256, 224), False, image, np.zeros((0, 4)), {})
    assert (opencv - out).abs().max() > 0.05  # the default is OpenCV's (no antialiasing): not the same


def test_training_image_is_a_crop_of_the_torchvision_resize() -> None:
    image = _photo()
    resized = _torchvision(image, 64)
    out, _, _ = apply_transform(build_transform(True, 64, 48, "pil"), True, image, np.array([[0, 0, 9, 9]]), {}, seed=3)
    crops = [
        view[:, y : y + 48, x : x + 48]
        for view in (resized, resized.flip(-1))
        for y in range(17)
        for x in range(17)
    ]
    assert any(torch.equal(out, crop) for crop in crops)


def test_masks_stay_nearest_neighbour() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    mask = (rng.random((50, 70)) > 0.5).astype(np.uint8)
    _, _, masks = apply_transform(build_transform(False, 32, 32, "pil"), False, image, np.zeros((0, 4)), {"mask": mask})
    assert torch.equal(masks["mask"], torch.from_numpy(cv2.resize(mask, (32, 32), interpolation=cv2.INTER_NEAREST)))


def test_non_rgb_image_is_refused() -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        PILBilinearResize(8, 8).apply(np.zeros((10, 10), np.float32))


def test_datamodule_resizes_every_split_with_pil(cub_metadata_root: Path) -> None:
    dm = WSOLDataModule(CUB(root=str(cub_metadata_root)), resize_size=36, crop_size=32, image_resize="pil")
    for split in ("train", "val", "test"):
        resizes = [t for t in dm.get_dataset(split).transform.transforms if isinstance(t, PILBilinearResize)]
        assert len(resizes) == 1, split
    sample = dm.get_dataset("test")[0]
    raw = dm.get_dataset("test").load(0).image
    assert torch.equal(sample["image"], _torchvision(raw, 32))
    with pytest.raises(ConfigError, match="data.image_resize"):
        WSOLDataModule(image_resize="bicubic")


def test_shorter_side_training_resize_is_torchvision_resize_of_the_shorter_side() -> None:
    image = _photo()  # 512 wide, 600 high: Resize(63) gives 63 x int(63 * 600 / 512) = 73 (rounding: 74)
    with Image.open(PHOTO) as photo:
        resized = transforms.ToTensor()(transforms.Resize(63)(photo.convert("RGB")))
    assert resized.shape == (3, 73, 63)
    transform = build_transform(True, 63, 48, "pil", "shorter_side")
    out, boxes, _ = apply_transform(transform, True, image, np.array([[0, 0, 511, 599]]), {}, seed=5)
    crops = [view[:, y : y + 48, x : x + 48] for view in (resized, resized.flip(-1)) for y in range(26) for x in range(16)]
    assert any(torch.equal(out, crop) for crop in crops)
    assert boxes.tolist() == [[0, 0, 47, 47]]  # the whole-image box, cropped to the crop
    mask = np.random.default_rng(0).choice(np.array([0, 1, 255], np.uint8), size=(600, 512))
    resize = ShorterSideResize(63)
    nearest = cv2.resize(mask, (63, 73), interpolation=cv2.INTER_NEAREST)
    assert np.array_equal(resize.apply_to_mask(mask, scale=0.0), nearest)  # nearest-neighbour, the image's shape
    assert resize.apply(image, scale=0.0).shape == (73, 63, 3)
    with pytest.raises(ConfigError, match="data.train_resize"):
        WSOLDataModule(train_resize="longer_side")


def test_image_options_reach_the_wrapped_multilabel_mri_splits() -> None:
    data = WSOLDataModule(SyntheticMRI(multilabel=True, image_size=32), resize_size=40, crop_size=32,
                          image_resize="pil", train_resize="shorter_side", num_workers=0)
    for split in ("train", "val"):
        transforms_ = data.get_dataset(split).dataset.transform.transforms
        assert any(isinstance(t, (PILBilinearResize, ShorterSideResize)) for t in transforms_), split
    assert data.get_dataset("val")[0]["multi_hot"].shape == (2,)
