"""OpenImages30k: instance masks + ignore mask -> 1 / 0 / 255, mask boxes, missing masks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from wsol_lightning.data import OpenImages
from wsol_lightning.data.errors import DatasetNotFoundError


def openimages(root: Path, split: str):
    return OpenImages(root=str(root), cache_dir=str(root) + "_c").build(split, 16, 16, seed=0)


def _mask(path: Path, shape, rect) -> None:
    m = np.zeros(shape, np.uint8)
    x0, y0, x1, y1 = rect
    m[y0 : y1 + 1, x0 : x1 + 1] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), m)


@pytest.fixture
def oi_root(tmp_path: Path, write) -> Path:
    root = tmp_path / "OpenImages"
    write.image(root / "test" / "01226z" / "img1.jpg", 20, 10)
    _mask(root / "test" / "01226z" / "img1_m01226z_a.png", (10, 20), (2, 2, 5, 5))
    _mask(root / "test" / "01226z" / "img1_m01226z_b.png", (20, 40), (24, 4, 31, 9))  # stored at 2x: resized
    _mask(root / "test" / "01226z" / "img1_ignore.png", (10, 20), (0, 0, 9, 9))
    split_dir = root / "metadata" / "OpenImages" / "test"
    write.lines(split_dir / "image_ids.txt", ["test/01226z/img1.jpg"])
    write.lines(split_dir / "class_labels.txt", ["test/01226z/img1.jpg,7"])
    write.lines(split_dir / "image_sizes.txt", [])
    write.lines(
        split_dir / "localization.txt",
        [
            "test/01226z/img1.jpg,test/01226z/img1_m01226z_a.png,test/01226z/img1_ignore.png",
            "test/01226z/img1.jpg,test/01226z/img1_m01226z_b.png,",
        ],
    )
    return root


def test_mask_is_foreground_ignore_background(oi_root: Path) -> None:
    with pytest.warns(UserWarning, match=r"class ids 0, 1, 2, 3, 4, 5, 6 have no image .* 8 outputs"):
        test = openimages(oi_root, "test")
    assert test.num_classes == 8 and test.class_names()[7] == "01226z"  # labels as written: max label + 1
    assert test.provided_fields == frozenset({"boxes", "mask"})
    raw = test.load(0)
    expected = np.zeros((10, 20), np.uint8)
    expected[0:10, 0:10] = 255
    expected[2:6, 2:6] = 1
    expected[2:5, 12:16] = 1
    np.testing.assert_array_equal(raw.masks["mask"], expected)
    assert raw.boxes.tolist() == [[2, 2, 5, 5], [12, 2, 15, 4]]
    sample = test[0]
    assert sample["mask"].shape == (16, 16) and set(sample["mask"].unique().tolist()) == {0, 1, 255}


@pytest.mark.filterwarnings("ignore:OpenImages. class ids")
def test_missing_mask_file_is_named(oi_root: Path) -> None:
    (oi_root / "test" / "01226z" / "img1_m01226z_b.png").unlink()
    with pytest.raises(DatasetNotFoundError, match="img1_m01226z_b.png"):
        openimages(oi_root, "test")
