"""CUB readers: both layouts, the val rule, bad input, boxes through the evaluation transform."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from wsol_lightning.data import CUB, ILSVRC, OpenImages
from wsol_lightning.data.datasets.base import DatasetSpec
from wsol_lightning.data.datasets.cub import build_cub
from wsol_lightning.data.errors import CorruptImageError, DatasetNotFoundError, MetadataError


def cub(root, split, **kw):
    return CUB(root=str(root), cache_dir=str(root) + "_cache", **kw).build(split, 16, 16, seed=0)


def test_metadata_layout_loads_and_reports_it(cub_metadata_root: Path, caplog) -> None:
    with caplog.at_level(logging.INFO):
        val = cub(cub_metadata_root, "val")
    assert "wsolevaluation metadata layout" in caplog.text
    assert "CUB: 2 classes" in caplog.text
    assert len(val) == 2 and val.num_classes == 2  # the classes of the data (the fixture has 2)
    assert val.class_names() == ["Albatross", "Auklet"]
    raw = val.load(1)
    assert raw.image.shape == (24, 36, 3) and raw.image.dtype == np.uint8 and raw.label == 1
    assert raw.boxes.tolist() == [[1, 1, 10, 10], [20, 5, 30, 20]]  # both boxes kept
    assert raw.image_id == "002.Auklet/44272303765.jpg"
    assert val.provided_fields == frozenset({"boxes"})


def test_spec_builds_what_the_module_reader_builds(cub_metadata_root: Path) -> None:
    spec = CUB(root=str(cub_metadata_root), cache_dir=str(cub_metadata_root) + "_cache")
    assert spec.name == "cub" and not spec.multilabel and not spec.attributes
    assert spec.describe() == {
        "class_path": "wsol_lightning.data.datasets.cub.CUB",
        "init_args": {
            "root": str(cub_metadata_root),
            "metadata_dir": None,
            "cache_dir": str(cub_metadata_root) + "_cache",
            "num_val_sample_per_class": 0,
            "attributes": False,
            "drop_invalid_boxes": False,
        },
    }
    for split in ("train", "val", "test"):
        from_spec = spec.build(split, 16, 16, seed=0)
        direct = build_cub(CUB(str(cub_metadata_root), cache_dir=spec.cache_dir), split, 16, 16, 0)
        assert list(from_spec.index.image_paths) == list(direct.index.image_paths)
        assert from_spec.index.labels.tolist() == direct.index.labels.tolist()


def test_eval_boxes_use_the_reference_floor_rule(cub_metadata_root: Path) -> None:
    sample = cub(cub_metadata_root, "val")[0]  # 40x30 image, box (10, 5, 39, 29), evaluated at 16x16
    assert sample["image"].shape == (3, 16, 16)
    # RGB in [0, 1], not normalized: the bright left quarter (250) stays 250 / 255
    assert 0.0 <= float(sample["image"].min()) and float(sample["image"].max()) <= 1.0
    assert torch.allclose(sample["image"][:, 8, 0], torch.full((3,), 250 / 255), atol=3 / 255)
    assert sample["boxes"].tolist() == [
        [10 * 16 // 40, 5 * 16 // 30, 39 * 16 // 40, 29 * 16 // 30]
    ]  # [4, 2, 15, 15]
    assert tuple(sample["orig_size"]) == (30, 40)


def test_original_layout_converts_boxes_and_holds_out_val(cub_original_root: Path, caplog, recwarn) -> None:
    with caplog.at_level(logging.INFO):
        train, test = cub(cub_original_root, "train"), cub(cub_original_root, "test")
    assert "original CUB_200_2011 archive layout" in caplog.text
    with pytest.warns(UserWarning, match="no val split"):
        val = cub(cub_original_root, "val")
    assert (len(train), len(val), len(test)) == (2, 10, 4)  # 5 per class held out of the 12 train images
    ids = [set(d.index.image_paths) for d in (train, val, test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sorted(val.index.labels.tolist()) == [0] * 5 + [1] * 5
    assert val.class_names()[:2] == ["Albatross", "Auklet"]
    # (x, y, w, h) = (5, 4, 35, 20) on a 40-px-wide image: x1 = min(x + w, W - 1) = 39, silently
    every = {
        p: d.index.boxes_of(i).tolist() for d in (train, val, test) for i, p in enumerate(d.index.image_paths)
    }
    assert every["001.Albatross/img_0000.jpg"] == [[5, 4, 39, 24]]
    assert every["001.Albatross/img_0001.jpg"] == [[3, 2, 13, 10]]
    assert not [w for w in recwarn if "clipped" in str(w.message)]
    # the same seed gives the same hold-out
    with pytest.warns(UserWarning):
        assert list(cub(cub_original_root, "val").index.image_paths) == list(val.index.image_paths)


def test_val_subsampling_per_class(cub_metadata_root: Path) -> None:
    assert len(cub(cub_metadata_root, "val", num_val_sample_per_class=1)) == 2


def test_missing_root_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="nowhere"):
        cub(tmp_path / "nowhere", "train")


def test_root_without_any_layout_lists_what_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as err:
        cub(tmp_path, "test")
    message = str(err.value)
    assert "metadata/CUB/train/image_ids.txt" in message and "images.txt" in message and "CUBV2" in message


def test_missing_split_files_are_all_named(cub_metadata_root: Path) -> None:
    split_dir = cub_metadata_root / "metadata" / "CUB" / "test"
    (split_dir / "class_labels.txt").unlink()
    (split_dir / "localization.txt").unlink()
    with pytest.raises(DatasetNotFoundError) as err:
        cub(cub_metadata_root, "test")
    assert str(split_dir / "class_labels.txt") in str(err.value) and str(
        split_dir / "localization.txt"
    ) in str(err.value)


def test_image_listed_but_missing_on_disk(cub_metadata_root: Path) -> None:
    (cub_metadata_root / "002.Auklet" / "b_0002.jpg").unlink()
    with pytest.raises(DatasetNotFoundError, match="b_0002.jpg"):
        cub(cub_metadata_root, "test")


def test_corrupt_image_names_the_file(cub_metadata_root: Path) -> None:
    (cub_metadata_root / "001.Albatross" / "a_0002.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(CorruptImageError, match="a_0002.jpg"):
        cub(cub_metadata_root, "test")


def test_corrupt_image_at_load_time_names_the_file(cub_metadata_root: Path) -> None:
    test = cub(cub_metadata_root, "test")
    (cub_metadata_root / "001.Albatross" / "a_0002.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(CorruptImageError, match="a_0002.jpg"):
        test.load(0)


def test_boxes_outside_the_image_are_clipped_with_one_warning(cub_metadata_root: Path, write) -> None:
    split_dir = cub_metadata_root / "metadata" / "CUB" / "test"
    write.lines(
        split_dir / "localization.txt",
        ["001.Albatross/a_0002.jpg,-3,4,60,28", "002.Auklet/b_0002.jpg,5,6,25,45"],
    )
    with pytest.warns(UserWarning, match="2 box") as record:
        test = cub(cub_metadata_root, "test")
    clipped = [str(w.message) for w in record if "clipped" in str(w.message)]
    assert len(clipped) == 1
    # the warning names the annotation file, the line and the image of every clipped box
    localization = split_dir / "localization.txt"
    first, second = cub_metadata_root / "001.Albatross/a_0002.jpg", cub_metadata_root / "002.Auklet/b_0002.jpg"
    assert f"{localization}:1: [-3, 4, 60, 28] -> [0, 4, 47, 28] on {first} (48x32)" in clipped[0]
    assert f"{localization}:2: [5, 6, 25, 45] -> [5, 6, 25, 39] on {second} (30x40)" in clipped[0]
    assert test.index.boxes_of(0).tolist() == [[0, 4, 47, 28]] and test.index.boxes_of(1).tolist() == [
        [5, 6, 25, 39]
    ]


def test_box_entirely_outside_its_image_is_an_error_naming_file_line_and_image(
    cub_metadata_root: Path, write
) -> None:
    split_dir = cub_metadata_root / "metadata" / "CUB" / "val"
    # 002.Auklet/44272303765.jpg is 36x24: its second box starts right of the image
    write.lines(
        split_dir / "localization.txt",
        [
            "001.Albatross/30107316117.jpg,10,5,39,29",
            "002.Auklet/44272303765.jpg,1,1,10,10",
            "002.Auklet/44272303765.jpg,36,5,50,20",
        ],
    )
    image = cub_metadata_root / "002.Auklet" / "44272303765.jpg"
    message = f"{split_dir / 'localization.txt'}:3: box [36, 5, 50, 20] lies entirely outside its image {image} (36x24)"
    with pytest.raises(MetadataError) as err:
        cub(cub_metadata_root, "val")
    assert str(err.value).startswith(message) and "drop_invalid_boxes" in str(err.value)
    assert err.value.line_number == 3
    # drop_invalid_boxes: the box is dropped with the same message as a warning, the others are kept
    with pytest.warns(UserWarning) as record:
        val = cub(cub_metadata_root, "val", drop_invalid_boxes=True)
    dropped = [str(w.message) for w in record if "dropped" in str(w.message)]
    assert len(dropped) == 1 and dropped[0].startswith(message)
    assert val.index.boxes_of(1).tolist() == [[1, 1, 10, 10]] and val.index.boxes_of(0).tolist() == [[10, 5, 39, 29]]
    assert [len(val.load(i).boxes) for i in range(2)] == [1, 1]


def test_invalid_box_of_the_original_layout_names_bounding_boxes_txt(cub_original_root: Path) -> None:
    path = cub_original_root / "bounding_boxes.txt"
    lines = path.read_text().splitlines()
    lines[3] = "4 3.0 31.0 10.0 8.0"  # y = 31 below the 30-px-high image
    path.write_text("\n".join(lines) + "\n")
    image = cub_original_root / "images" / "001.Albatross" / "img_0003.jpg"
    message = f"bounding_boxes.txt:4: box [3, 31, 13, 39] lies entirely outside its image {image} (40x30)"
    with pytest.raises(MetadataError, match=re.escape(message)):
        cub(cub_original_root, "test")
    with pytest.warns(UserWarning, match=re.escape(message) + ".*dropped"):
        test = cub(cub_original_root, "test", drop_invalid_boxes=True)  # the box is a train image's
    with pytest.warns(UserWarning, match="no val split"):
        val = cub(cub_original_root, "val", drop_invalid_boxes=True)
    train = cub(cub_original_root, "train", drop_invalid_boxes=True)
    every = {p: d.index.boxes_of(i).tolist() for d in (train, val, test) for i, p in enumerate(d.index.image_paths)}
    assert every["001.Albatross/img_0003.jpg"] == [] and every["001.Albatross/img_0002.jpg"] == [[3, 2, 13, 10]]


def test_drop_invalid_boxes_is_a_dataset_option() -> None:
    for spec in (CUB, ILSVRC, OpenImages):
        described = spec(root="r", drop_invalid_boxes=True).describe()
        assert described["init_args"]["drop_invalid_boxes"] is True
        assert DatasetSpec.from_description(described).drop_invalid_boxes is True
        assert spec(root="r").drop_invalid_boxes is False


def test_size_mismatch_warns_and_scales_boxes_by_the_real_size(cub_metadata_root: Path, write) -> None:
    split_dir = cub_metadata_root / "metadata" / "CUB" / "test"
    # the image a_0002.jpg is 48x32, the metadata says 96x64 (boxes drawn on 96x64)
    write.lines(
        split_dir / "image_sizes.txt", ["001.Albatross/a_0002.jpg,96,64", "002.Auklet/b_0002.jpg,30,40"]
    )
    write.lines(
        split_dir / "localization.txt",
        ["001.Albatross/a_0002.jpg,8,8,80,56", "002.Auklet/b_0002.jpg,5,6,25,35"],
    )
    with pytest.warns(UserWarning, match=r"1 image.*a_0002.jpg \(listed 96x64, actual 48x32\)"):
        test = cub(cub_metadata_root, "test")
    assert test.index.boxes_of(0).tolist() == [[4, 4, 40, 28]]
    assert test.index.sizes[0].tolist() == [48, 32]


def test_index_is_cached_and_not_rescanned(cub_metadata_root: Path) -> None:
    cub(cub_metadata_root, "test")
    cached = list(Path(str(cub_metadata_root) + "_cache").glob("cub_test_*.npz"))
    assert len(cached) == 1
    # the cached index is used: a later deletion is only noticed when the image is loaded
    (cub_metadata_root / "002.Auklet" / "b_0002.jpg").unlink()
    test = cub(cub_metadata_root, "test")
    with pytest.raises(FileNotFoundError, match="b_0002.jpg"):
        test.load(1)
