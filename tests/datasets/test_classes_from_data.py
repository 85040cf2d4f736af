"""The number of classes and their names come from the data (CUB subsets, users' CUB-layout data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wsol_lightning.data import CUB, ILSVRC, WSOLDataModule
from wsol_lightning.data.errors import MetadataError


def datamodule(spec) -> WSOLDataModule:
    return WSOLDataModule(spec, resize_size=8, crop_size=8, batch_size=2, num_workers=0)


def cub_spec(root: Path) -> CUB:
    return CUB(root=str(root), cache_dir=str(root) + "_cache")


@pytest.mark.parametrize("layout", ["metadata", "original"])
def test_a_ten_class_cub_layout_gives_ten_classes(tmp_path: Path, write, layout: str) -> None:
    folders = write.cub_folders(10)
    root = tmp_path / "CUB10"
    if layout == "metadata":
        write.cub_metadata_layout(root, folders)
        dm = datamodule(cub_spec(root))
    else:
        write.cub_original_layout(root, folders)
        dm = datamodule(cub_spec(root))
        with pytest.warns(UserWarning, match="no val split"):
            dm.get_dataset("val")
    assert dm.num_classes == 10
    assert dm.class_names() == [f"Species_{c}" for c in range(1, 11)]
    assert all(dm.get_dataset(split).num_classes == 10 for split in ("train", "test"))
    assert sorted(set(dm.get_dataset("test").index.labels.tolist())) == list(range(10))


def test_the_full_cub_keeps_its_200_classes(tmp_path: Path, write) -> None:
    folders = write.cub_folders(200)
    dm = datamodule(cub_spec(write.cub_metadata_layout(tmp_path / "CUB", folders)))
    assert dm.num_classes == 200
    names = dm.class_names()
    assert names[0] == "Black_footed_Albatross" and names[199] == "Common_Yellowthroat"
    base = write.cub_original_layout(tmp_path / "CUB_200_2011", folders, train_per_class=1)
    original = datamodule(cub_spec(base))
    with pytest.warns(UserWarning, match="no val split"):
        assert original.num_classes == 200
    assert original.class_names() == names


def test_every_split_gets_the_classes_of_all_splits(tmp_path: Path, write) -> None:
    root = write.cub_metadata_layout(tmp_path / "CUB", write.cub_folders(4))
    val_dir = root / "metadata" / "CUB" / "val"
    keep = ["001.Species_1/val_0.jpg", "002.Species_2/val_1.jpg"]  # val holds 2 of the 4 classes
    for name in ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt"):
        lines = (val_dir / name).read_text().split("\n")
        write.lines(val_dir / name, [line for line in lines if line.split(",")[0] in keep])
    dm = datamodule(cub_spec(root))
    assert len(dm.get_dataset("val")) == 2
    assert dm.num_classes == 4 and dm.get_dataset("train").num_classes == 4
    assert dm.class_names() == ["Species_1", "Species_2", "Species_3", "Species_4"]


def test_labels_are_used_as_written_and_empty_ids_are_named(tmp_path: Path, write) -> None:
    root = write.cub_metadata_layout(tmp_path / "CUB", write.cub_folders(3))
    for split in ("train", "val", "test"):
        path = root / "metadata" / "CUB" / split / "class_labels.txt"
        lines = path.read_text().split("\n")
        write.lines(path, lines[:2] + [lines[2].rsplit(",", 1)[0] + ",4"])  # the third class is labelled 4
    with pytest.warns(UserWarning, match=r"CUB: class ids 2, 3 have no image .* 5 outputs"):
        test = cub_spec(root).build("test", 8, 8, seed=0)
    assert test.num_classes == 5 and test.index.labels.tolist() == [0, 1, 4]
    assert test.class_names() == ["Species_1", "Species_2", "2", "3", "Species_3"]


def test_original_layout_without_classes_txt_counts_the_labels(tmp_path: Path, write) -> None:
    base = write.cub_original_layout(tmp_path / "CUB_200_2011", write.cub_folders(3), classes_txt=False)
    test = cub_spec(base).build("test", 8, 8, seed=0)
    assert test.num_classes == 3 and test.class_names() == ["Species_1", "Species_2", "Species_3"]


def test_original_layout_checks_labels_against_classes_txt(tmp_path: Path, write) -> None:
    base = write.cub_original_layout(tmp_path / "CUB_200_2011", write.cub_folders(3))
    (base / "classes.txt").write_text("1 001.Species_1\n2 002.Species_2\n")  # the data uses class 3
    with pytest.raises(MetadataError, match=r"image_class_labels.txt:15: class id 3 out of range \[1, 2\]"):
        cub_spec(base).build("test", 8, 8, seed=0)
    (base / "classes.txt").write_text("1 001.Species_1\n3 003.Species_3\n2 002.Species_2\n")
    with pytest.raises(MetadataError, match=r"classes.txt:2: expected class id 2"):
        cub_spec(base).build("test", 8, 8, seed=0)


def test_negative_metadata_label_names_file_and_line(tmp_path: Path, write) -> None:
    root = write.cub_metadata_layout(tmp_path / "CUB", write.cub_folders(2))
    path = root / "metadata" / "CUB" / "train" / "class_labels.txt"
    write.lines(path, ["001.Species_1/train_0.jpg,0", "002.Species_2/train_1.jpg,-1"])
    with pytest.raises(MetadataError, match=r"train/class_labels.txt:2: class id -1 out of range"):
        cub_spec(root).build("test", 8, 8, seed=0)


def test_a_ten_synset_ilsvrc_gives_ten_classes(tmp_path: Path, write) -> None:
    root = tmp_path / "imagenet"
    wnids = [f"n{k:08d}" for k in range(10, 0, -1)]  # created out of order
    for wnid in wnids:
        for j in range(2):
            write.image(root / "train" / wnid / f"{wnid}_{j}.JPEG", 8, 8)
    write.image(root / "val" / "ILSVRC2012_val_00000001.JPEG", 8, 8)
    (root / "LOC_val_solution.csv").write_text(
        f"ImageId,PredictionString\nILSVRC2012_val_00000001,{wnids[0]} 1 1 5 5\n"
    )
    (root / "LOC_train_solution.csv").write_text(
        "ImageId,PredictionString\n" + "".join(f"{w}_0,{w} 1 1 6 6\n" for w in wnids)
    )
    dm = datamodule(ILSVRC(root=str(root), cache_dir=str(root) + "_cache"))
    with pytest.warns(UserWarning, match="no val split"):
        assert dm.num_classes == 10
    assert dm.class_names() == sorted(wnids)
    assert dm.get_dataset("test").index.labels.tolist() == [9]


def test_ilsvrc_metadata_names_classes_after_their_train_folders(tmp_path: Path, write) -> None:
    root = tmp_path / "ILSVRC"
    wnids = ["n00000003", "n00000007", "n00000009"]
    records = []
    for label, wnid in enumerate(wnids):
        image_id = f"train/{wnid}/{wnid}_0.JPEG"
        write.image(root / image_id, 8, 8)
        records.append((image_id, label, (8, 8), [[1, 1, 5, 5]]))
    write.metadata_split(root / "metadata" / "ILSVRC" / "train", records)
    write.metadata_split(root / "metadata" / "ILSVRC" / "test", records[:1])
    write.lines(root / "LOC_synset_mapping.txt", [f"{w} name {w[-1]}" for w in wnids])
    test = ILSVRC(root=str(root), cache_dir=str(root) + "_cache").build("test", 8, 8, seed=0)
    assert test.num_classes == 3 and test.class_names() == ["name 3", "name 7", "name 9"]
    # labels must index the synset folders of train/
    write.lines(root / "metadata" / "ILSVRC" / "test" / "class_labels.txt", [f"{records[0][0]},3"])
    expected = r"test/class_labels.txt:1: class id 3 out of range \[0, 2\] \(the 3 classes of the synset folders"
    with pytest.raises(MetadataError, match=expected):
        ILSVRC(root=str(root), cache_dir=str(root) + "_cache").build("test", 8, 8, seed=0)
