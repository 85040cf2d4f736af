"""CUB per-image attributes: both layouts, names, malformed lines, images without attributes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from wsol_lightning.data import CUB, ILSVRC, MRI, OpenImages, WSOLDataModule
from wsol_lightning.data.datasets.cub import build_cub
from wsol_lightning.data.errors import DatasetNotFoundError, MetadataError

NAMES = ["has_bill_shape::dagger", "has_wing_color::blue", "has_crown_color::red"]


def cub(root: Path, split: str) -> object:
    """The reader with attributes on every split (the spec asks for them on ``train`` only)."""
    return build_cub(CUB(str(root), cache_dir=str(root) + "_cache"), split, 16, 16, seed=0, load_attributes=True)


def present(key: int, attribute: int) -> int:
    """The hand-made rule of the tiny attribute files: attribute a of image k is present iff k % a == 0."""
    return int(key % attribute == 0)


def write_attributes(base: Path, keys: range, names: list[str] = NAMES, skip: tuple[int, ...] = ()) -> Path:
    """``attributes/attributes.txt`` and ``image_attribute_labels.txt`` (some lines with extra fields)."""
    folder = base / "attributes"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "attributes.txt").write_text("".join(f"{a} {n}\n" for a, n in enumerate(names, start=1)))
    lines = [
        f"{k} {a} {present(k, a)} 3 {'12.5 0' if k == 2 else '7.0'}"
        for k in keys
        if k not in skip
        for a in range(1, len(names) + 1)
    ]
    path = folder / "image_attribute_labels.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_original_layout_reads_is_present_per_image(cub_original_root: Path) -> None:
    write_attributes(cub_original_root, range(1, 17))
    listed = (cub_original_root / "images.txt").read_text().split()
    keys = dict(zip(listed[1::2], map(int, listed[0::2])))
    for split in ("train", "test"):
        dataset = cub(cub_original_root, split)
        assert dataset.num_attributes == 3 and dataset.attributes.dtype == np.uint8
        for row, rel in enumerate(dataset.index.image_paths):
            expected = [present(keys[rel], a) for a in (1, 2, 3)]
            assert dataset.attributes[row].tolist() == expected
        sample = dataset[0]
        assert sample["attributes"].tolist() == dataset.attributes[0].tolist()


def test_metadata_layout_reads_the_archive_files_and_rejects_images_without_attributes(
    cub_metadata_root: Path,
) -> None:
    archive = cub_metadata_root / "CUB_200_2011"
    ids = ["001.Albatross/a_0001.jpg", "002.Auklet/b_0001.jpg", "001.Albatross/a_0002.jpg"]
    ids.append("002.Auklet/b_0002.jpg")
    archive.mkdir()
    (archive / "images.txt").write_text("".join(f"{k} {rel}\n" for k, rel in enumerate(ids, start=1)))
    write_attributes(archive, range(1, 5))
    train = cub(cub_metadata_root, "train")  # a_0001 is image 1, b_0001 image 2
    assert train.attributes.tolist() == [[1, 0, 0], [1, 1, 0]]
    not_listed = r"images\.txt:0: image 001\.Albatross/30107316117\.jpg is not listed"
    with pytest.raises(MetadataError, match=not_listed):
        cub(cub_metadata_root, "val")  # CUBV2 images are not CUB_200_2011 images


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("3 1 1", "expected 'image_id attribute_id is_present certainty_id time', got 3 field"),
        ("3 4 1 3 7.0", r"attribute id '4' out of range \[1, 3\]"),
        ("3 1 yes 3 7.0", "is_present must be 0 or 1, got 'yes'"),
        ("99 1 1 3 7.0", "image id 99 is not in images.txt"),
    ],
)
def test_malformed_line_names_file_and_line(cub_original_root: Path, line: str, problem: str) -> None:
    path = write_attributes(cub_original_root, range(1, 17))
    lines = path.read_text().split("\n")
    lines[4] = line
    path.write_text("\n".join(lines))
    with pytest.raises(MetadataError, match=rf"image_attribute_labels\.txt:5: {problem}"):
        cub(cub_original_root, "test")


def test_image_without_any_line_is_named(cub_original_root: Path) -> None:
    write_attributes(cub_original_root, range(1, 17), skip=(7,))  # 7 = 001.Albatross/img_0006.jpg (test)
    assert cub(cub_original_root, "train").num_attributes == 3  # image 7 is not in train
    with pytest.raises(MetadataError, match=r"image id 7 \(001\.Albatross/img_0006\.jpg\) has no line"):
        cub(cub_original_root, "test")


def test_names_from_the_archive_top_level_file_or_312_by_default(cub_original_root: Path) -> None:
    write_attributes(cub_original_root, range(1, 17))
    (cub_original_root / "attributes" / "attributes.txt").unlink()
    assert cub(cub_original_root, "test").num_attributes == 312  # no names file: CUB's 312
    (cub_original_root.parent / "attributes.txt").write_text("1 a\n2 b\n3 c\n4 d\n")  # archive top level
    assert cub(cub_original_root, "test").attributes.shape == (4, 4)
    (cub_original_root.parent / "attributes.txt").write_text("1 a\n3 c\n")
    with pytest.raises(MetadataError, match=r"attributes\.txt:2: expected attribute id 2, got '3'"):
        cub(cub_original_root, "test")


def test_missing_attribute_files_list_where_they_were_looked_for(cub_original_root: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        cub(cub_original_root, "train")
    message = str(err.value)
    assert str(cub_original_root / "attributes" / "image_attribute_labels.txt") in message
    assert "attributes: false" in message  # how to turn it off


def test_spec_attributes_reach_the_train_split_only(cub_original_root: Path) -> None:
    write_attributes(cub_original_root, range(1, 17))
    spec = CUB(root=str(cub_original_root), cache_dir=str(cub_original_root) + "_cache", attributes=True)
    assert spec.attributes and spec.describe()["init_args"]["attributes"] is True
    train = spec.build("train", 16, 16, seed=0)
    assert train.num_attributes == 3 and train[0]["attributes"].tolist() == train.attributes[0].tolist()
    test = spec.build("test", 16, 16, seed=0)
    assert test.num_attributes == 0 and test.attributes is None and "attributes" not in test[0]
    plain = CUB(root=str(cub_original_root), cache_dir=str(cub_original_root) + "_cache")
    assert not plain.attributes and plain.build("train", 16, 16, seed=0).num_attributes == 0


@pytest.mark.parametrize("spec", [ILSVRC, OpenImages, MRI])
def test_other_datasets_refuse_attributes(tmp_path: Path, spec: type) -> None:
    """Only CUB and Synthetic have per-image attributes: the others have no such option."""
    assert spec(root=str(tmp_path)).attributes is False
    assert "attributes" not in spec(root=str(tmp_path)).options()
    with pytest.raises(TypeError, match="unexpected keyword argument 'attributes'"):
        spec(root=str(tmp_path), attributes=True)
    assert WSOLDataModule(dataset=spec(root=str(tmp_path)), num_workers=0).num_attributes == 0
