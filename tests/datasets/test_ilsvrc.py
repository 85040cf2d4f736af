"""ILSVRC readers: raw layout with XML or CSV boxes, the metadata layout, the val rule."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from wsol_lightning.data import ILSVRC
from wsol_lightning.data.errors import DatasetNotFoundError, MetadataError

WNIDS = ["n01440764", "n01443537"]


def ilsvrc(root, split, **kw):
    return ILSVRC(root=str(root), cache_dir=str(root) + "_cache", **kw).build(split, 16, 16, seed=0)


@pytest.fixture
def raw_root(tmp_path: Path, write, voc_xml) -> Path:
    root = tmp_path / "imagenet"
    for wnid in reversed(WNIDS):  # created out of order: class order must still be sorted
        for j in range(3):
            write.image(root / "train" / wnid / f"{wnid}_{j}.JPEG", 24, 20)
    write.image(root / "val" / "ILSVRC2012_val_00000001.JPEG", 40, 30)
    voc_xml(
        root / "val" / "ILSVRC2012_val_00000001.xml",
        [(WNIDS[1], [1, 2, 10, 12]), (WNIDS[1], [20, 5, 39, 29])],
        (40, 30),
    )
    write.image(root / "val" / "ILSVRC2012_val_00000002.JPEG", 30, 30)
    voc_xml(root / "val" / "ILSVRC2012_val_00000002.xml", [(WNIDS[0], [0, 0, 29, 40])], (30, 30))
    return root


def test_raw_layout_sorted_wnids_and_every_xml_box(raw_root: Path, caplog) -> None:
    with caplog.at_level(logging.INFO):
        train = ilsvrc(raw_root, "train")
    assert "raw train/<wnid>/ + val/ layout" in caplog.text
    assert train.num_classes == 2 and train.class_names() == WNIDS
    assert train.index.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert train.index.image_paths[0] == f"train/{WNIDS[0]}/{WNIDS[0]}_0.JPEG"
    xml = raw_root / "val" / "ILSVRC2012_val_00000002.xml"
    image = raw_root / "val" / "ILSVRC2012_val_00000002.JPEG"
    clipped = rf"{xml}:1: \[0, 0, 29, 40\] -> \[0, 0, 29, 29\] on {image} \(30x30\)"
    with pytest.warns(UserWarning, match=rf"1 box.*clipped to it: {clipped}"):  # (0, 0, 29, 40) on a 30-px-high image
        test = ilsvrc(raw_root, "test")
    assert test.index.labels.tolist() == [1, 0]
    assert test.load(0).boxes.tolist() == [[1, 2, 10, 12], [20, 5, 39, 29]]
    assert test.load(1).boxes.tolist() == [[0, 0, 29, 29]]


def test_raw_layout_reads_loc_val_solution_csv(raw_root: Path) -> None:
    for xml in (raw_root / "val").glob("*.xml"):
        xml.unlink()
    (raw_root / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        f"ILSVRC2012_val_00000001,{WNIDS[0]} 1 1 5 5 {WNIDS[0]} 6 6 9 9 \n"
        f"ILSVRC2012_val_00000002,{WNIDS[1]} 2 3 4 5 \n"
    )
    test = ilsvrc(raw_root, "test")
    assert test.index.labels.tolist() == [0, 1]
    assert test.index.boxes_of(0).tolist() == [[1, 1, 5, 5], [6, 6, 9, 9]]


def test_val_image_without_annotation_is_an_error(raw_root: Path) -> None:
    (raw_root / "val" / "ILSVRC2012_val_00000002.xml").unlink()
    with pytest.raises(DatasetNotFoundError, match="ILSVRC2012_val_00000002.xml"):
        ilsvrc(raw_root, "test")


def test_malformed_csv_line_names_file_and_line(raw_root: Path) -> None:
    (raw_root / "LOC_val_solution.csv").write_text(
        f"ImageId,PredictionString\nILSVRC2012_val_00000001,{WNIDS[0]} 1 1 5\n"
    )
    with pytest.raises(MetadataError, match=r"LOC_val_solution.csv:2:"):
        ilsvrc(raw_root, "test")


def test_raw_val_needs_train_boxes_then_holds_them_out(raw_root: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="LOC_train_solution.csv"):
        ilsvrc(raw_root, "val")
    (raw_root / "LOC_train_solution.csv").write_text(
        "ImageId,PredictionString\n" + "".join(f"{w}_0,{w} 1 1 8 8 \n" for w in WNIDS)
    )
    with pytest.warns(UserWarning, match="no val split"):
        val = ilsvrc(raw_root, "val")
    train = ilsvrc(raw_root, "train")
    assert sorted(val.index.image_paths) == [f"train/{w}/{w}_0.JPEG" for w in WNIDS]
    assert len(train) == 4 and not set(train.index.image_paths) & set(val.index.image_paths)


def test_metadata_layout(tmp_path: Path, write) -> None:
    root = tmp_path / "ILSVRC"
    write.image(root / "val2" / "0" / "0.jpeg", 20, 20)
    write.image(root / "val2" / "999" / "1.jpeg", 20, 20)
    write.metadata_split(
        root / "metadata" / "ILSVRC" / "val",
        [
            ("val2/0/0.jpeg", 0, (20, 20), [[1, 1, 5, 5], [2, 2, 9, 9], [0, 0, 19, 19]]),
            ("val2/999/1.jpeg", 999, (20, 20), [[3, 3, 4, 4]]),
        ],
    )
    with pytest.warns(UserWarning, match="class ids 1, 2, .* have no image"):
        val = ilsvrc(root, "val")
    assert val.num_classes == 1000 and val.index.labels.tolist() == [0, 999]  # max label + 1
    assert len(val.load(0).boxes) == 3
    # the 1000 synsets of LOC_synset_mapping.txt name the classes and bound the labels
    synsets = [f"n{k:08d}" for k in range(1000)]
    write.lines(root / "LOC_synset_mapping.txt", [f"{w} words of {w}" for w in synsets])
    with pytest.warns(UserWarning, match="have no image"):
        val = ilsvrc(root, "val")
    assert val.num_classes == 1000 and val.class_names()[999] == "words of n00000999"
    write.lines(
        root / "metadata" / "ILSVRC" / "val" / "class_labels.txt", ["val2/0/0.jpeg,0", "val2/999/1.jpeg,1000"]
    )
    with pytest.raises(MetadataError, match=r"class_labels.txt:2: class id 1000 out of range \[0, 999\] \(the 1000"):
        ilsvrc(root, "val")


def test_box_outside_its_image_names_the_xml_object_line_or_the_csv_line(raw_root: Path, voc_xml) -> None:
    voc_xml(raw_root / "val" / "ILSVRC2012_val_00000002.xml", [(WNIDS[0], [0, 0, 29, 29])], (30, 30))  # inside
    xml = raw_root / "val" / "ILSVRC2012_val_00000001.xml"
    image = raw_root / "val" / "ILSVRC2012_val_00000001.JPEG"  # 40x30
    voc_xml(xml, [(WNIDS[1], [1, 2, 10, 12]), (WNIDS[1], [2, 30, 20, 35])], (40, 30))
    xml.write_text(xml.read_text().replace("<object>", "\n<object>"))  # object k on line k + 1
    message = f"{xml}:3: box [2, 30, 20, 35] lies entirely outside its image {image} (40x30)"
    with pytest.raises(MetadataError) as err:
        ilsvrc(raw_root, "test")
    assert str(err.value).startswith(message)
    with pytest.warns(UserWarning, match=re.escape(message) + ".*dropped"):
        test = ilsvrc(raw_root, "test", drop_invalid_boxes=True)
    assert test.index.boxes_of(0).tolist() == [[1, 2, 10, 12]]
    xml.unlink()
    (raw_root / "LOC_val_solution.csv").write_text(
        "ImageId,PredictionString\n"
        f"ILSVRC2012_val_00000001,{WNIDS[1]} 1 1 5 5 {WNIDS[1]} 41 1 45 5 \n"
    )
    with pytest.raises(MetadataError, match=r"LOC_val_solution.csv:2: box \[41, 1, 45, 5\] lies entirely outside"):
        ilsvrc(raw_root, "test")


def test_an_empty_box_is_an_error_too(raw_root: Path, voc_xml) -> None:
    voc_xml(raw_root / "val" / "ILSVRC2012_val_00000002.xml", [(WNIDS[0], [9, 0, 3, 29])], (30, 30))
    with pytest.raises(MetadataError, match=r"ILSVRC2012_val_00000002.xml:1: box \[9, 0, 3, 29\] of image .* is empty"):
        ilsvrc(raw_root, "test")
