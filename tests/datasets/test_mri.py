"""Brain-tumour MRI readers: LGG, generic and BraTS layouts, patient split, masks and boxes."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from wsol_lightning.data import MRI
from wsol_lightning.data.datasets.mri import patient_split
from wsol_lightning.data.errors import DatasetNotFoundError, EmptyTumourMaskError


def mri(root, split, **kw):
    return MRI(root=str(root), cache_dir=str(root) + "_cache", **kw).build(split, 16, 16, seed=0)


def _slice(path: Path, mask_rects, size=24, suffix=".tif", dtype=np.uint8, rgb=True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    high = 255 if dtype == np.uint8 else 4000
    image = (
        np.random.default_rng(0)
        .integers(0, high, (size, size) + ((3,) if rgb else ()), dtype=np.int64)
        .astype(dtype)
    )
    mask = np.zeros((size, size), np.uint8)
    for x0, y0, x1, y1 in mask_rects:
        mask[y0 : y1 + 1, x0 : x1 + 1] = 255
    assert cv2.imwrite(str(path) + suffix, image)
    assert cv2.imwrite(str(path) + "_mask" + suffix, mask)


@pytest.fixture
def lgg_root(tmp_path: Path) -> Path:
    root = tmp_path / "kaggle_3m"
    for p in range(5):
        patient = f"TCGA_XX_{p:04d}_19990101"
        for k in range(1, 4):
            rects = [(2, 3, 6, 8), (15, 14, 20, 22)] if k == 2 else []
            _slice(root / patient / f"{patient}_{k}", rects)
    return root


def test_lgg_layout_labels_boxes_and_masks(lgg_root: Path, caplog) -> None:
    with caplog.at_level(logging.INFO):
        splits = {s: mri(lgg_root, s, split_ratios=(0.6, 0.2, 0.2)) for s in ("train", "val", "test")}
    assert "LGG patient-folder layout" in caplog.text
    assert [len(splits[s]) for s in ("train", "val", "test")] == [9, 3, 3]
    patients = [set(splits[s].index.groups.tolist()) for s in ("train", "val", "test")]
    assert not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    test = splits["test"]
    assert test.num_classes == 2 and test.class_names() == ["no_tumour", "tumour"]
    row = next(i for i, p in enumerate(test.index.image_paths) if p.endswith("_2.tif"))
    raw = test.load(row)
    assert raw.label == 1 and raw.image.shape == (24, 24, 3)
    assert raw.boxes.tolist() == [[2, 3, 6, 8], [15, 14, 20, 22]]  # one box per connected component
    assert raw.masks["mask"].sum() == 5 * 6 + 6 * 9 and set(np.unique(raw.masks["mask"])) == {0, 1}
    negative = test.load(next(i for i, p in enumerate(test.index.image_paths) if p.endswith("_1.tif")))
    assert negative.label == 0 and negative.boxes.shape == (0, 4) and negative.masks["mask"].sum() == 0


def test_patient_split_is_seeded_and_covers_every_patient() -> None:
    groups = np.repeat(np.arange(10), 3)
    rows = [patient_split(groups, s, (0.7, 0.1, 0.2), seed=3) for s in ("train", "val", "test")]
    assert sorted(np.concatenate(rows).tolist()) == list(range(30))
    assert [len(r) // 3 for r in rows] == [7, 1, 2]
    assert patient_split(groups, "test", (0.7, 0.1, 0.2), seed=3).tolist() == rows[2].tolist()
    assert patient_split(groups, "test", (0.7, 0.1, 0.2), seed=4).tolist() != rows[2].tolist()
    with pytest.raises(ValueError, match="split_ratios"):
        patient_split(groups, "test", (0.7, 0.3), seed=0)


def test_generic_flat_png_layout_16bit_grayscale(tmp_path: Path, caplog) -> None:
    root = tmp_path / "slices"
    for p in range(3):
        for k in range(2):
            _slice(
                root / f"case{p}_{k}", [(4, 4, 9, 9)] if k else [], suffix=".png", dtype=np.uint16, rgb=False
            )
    with caplog.at_level(logging.INFO):
        train = mri(root, "train", split_ratios=(1.0, 0.0, 0.0))
    assert "generic slice-folder layout" in caplog.text
    assert len(train) == 6 and len(set(train.index.groups.tolist())) == 3  # patient = stem without _<k>
    raw = train.load(1)
    assert raw.image.dtype == np.uint8 and raw.image.shape == (24, 24, 3)
    assert (raw.image[..., 0] == raw.image[..., 2]).all() and raw.image.max() == 255  # replicated, rescaled


def test_positive_label_with_empty_mask_names_the_slice(tmp_path: Path) -> None:
    root = tmp_path / "slices"
    _slice(root / "a_1", [], suffix=".png")
    _slice(root / "a_2", [(1, 1, 3, 3)], suffix=".png")
    (root / "labels.csv").write_text("slice,label\na_1.png,1\na_2.png,1\n")
    with pytest.raises(EmptyTumourMaskError, match=r"a_1.png: labelled tumour-positive .*a_1_mask.png"):
        mri(root, "train")


def test_empty_mask_found_at_load_time_names_the_slice(lgg_root: Path) -> None:
    test = mri(lgg_root, "test")
    row = next(i for i, p in enumerate(test.index.image_paths) if p.endswith("_2.tif"))
    cv2.imwrite(str(lgg_root / test.index.masks_of(row)[0]), np.zeros((24, 24), np.uint8))
    with pytest.raises(EmptyTumourMaskError, match=test.index.image_paths[row]):
        test.load(row)


def test_no_slices_lists_the_expected_layouts(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="_mask.tif"):
        mri(tmp_path, "train")


def test_brats_without_nibabel_says_how_to_install(tmp_path: Path, monkeypatch) -> None:
    patient = tmp_path / "brats" / "BraTS20_Training_001"
    patient.mkdir(parents=True)
    for name in ("flair", "seg"):
        (patient / f"BraTS20_Training_001_{name}.nii.gz").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "nibabel", None)
    with pytest.raises(ImportError, match=r"wsol-lightning\[mri\]"):
        mri(tmp_path / "brats", "train")


def test_brats_volumes_are_sliced_axially(tmp_path: Path) -> None:
    nibabel = pytest.importorskip("nibabel")
    root = tmp_path / "brats"
    for p in range(3):
        name = f"BraTS20_Training_{p:03d}"
        volume = np.zeros((12, 10, 4), np.float32)
        volume[:, :, 1:] = 100.0 + p  # slice 0 holds no brain: dropped
        seg = np.zeros((12, 10, 4), np.uint8)
        seg[2:5, 3:7, 2] = 4  # x 2..4, y 3..6 of slice 2 (rows = y after the transpose)
        (root / name).mkdir(parents=True)
        nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), str(root / name / f"{name}_flair.nii.gz"))
        nibabel.save(nibabel.Nifti1Image(seg, np.eye(4)), str(root / name / f"{name}_seg.nii.gz"))
    train = mri(root, "train", split_ratios=(1.0, 0.0, 0.0))
    assert len(train) == 9 and train.index.labels.tolist() == [0, 1, 0] * 3
    raw = train.load(1)
    assert raw.image.shape == (10, 12, 3) and raw.boxes.tolist() == [[2, 3, 4, 6]]


def test_multilabel_head_tumour_targets_through_the_datamodule(lgg_root: Path) -> None:
    from wsol_lightning.data import WSOLDataModule

    cache = str(lgg_root) + "_cache"
    spec = MRI(root=str(lgg_root), cache_dir=cache, split_ratios=(0.6, 0.2, 0.2), multilabel=True)
    dm = WSOLDataModule(dataset=spec, resize_size=16, crop_size=16, batch_size=3, num_workers=0)
    assert dm.num_classes == 2 and dm.class_names() == ["head", "tumour"] and dm.multilabel
    batch = next(iter(dm.val_dataloader()))
    # one patient of 3 slices: only slice _2 has a tumour; every slice has a head
    tumour = [image_id.endswith("_2.tif") for image_id in batch.image_id]
    assert batch.label.tolist() == [int(t) for t in tumour]
    assert batch.multi_hot.tolist() == [[1.0, float(t)] for t in tumour]
    assert batch.num_boxes.tolist() == [2 * int(t) for t in tumour]  # no box on a tumour-free slice
    single = WSOLDataModule(dataset=MRI(root=str(lgg_root), cache_dir=cache), num_workers=0)
    assert not single.multilabel and single.class_names() == ["no_tumour", "tumour"]


@pytest.mark.parametrize("multilabel", [False, True])
def test_mri_provides_masks_and_images_without_object(lgg_root: Path, multilabel: bool) -> None:
    """Tumour-free slices are part of the MRI benchmark: the datamodule must say so to the evaluator."""
    from wsol_lightning.data import WSOLDataModule

    spec = MRI(root=str(lgg_root), cache_dir=str(lgg_root) + "_cache", multilabel=multilabel)
    assert mri(lgg_root, "test").provided_fields == frozenset({"boxes", "mask", "images_without_object"})
    dm = WSOLDataModule(dataset=spec, resize_size=16, crop_size=16, num_workers=0)
    assert dm.provided_fields == frozenset({"boxes", "mask", "images_without_object"})
