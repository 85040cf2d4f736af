"""Synthetic MRI-like slices and the datamodule paths of every dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from wsol_lightning.data import WSOLDataModule
from wsol_lightning.data.datasets.indexed import component_boxes
from wsol_lightning.data.synthetic_mri import SyntheticMRI

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments" / "data"


def test_slices_are_deterministic_and_consistent() -> None:
    gen = SyntheticMRI("train", length=20, image_size=48, seed=1, tumour_prob=0.5)
    labels = [gen[i].label for i in range(20)]
    assert sum(labels) == 10
    for i in range(20):
        s = gen[i]
        assert s.image.shape == (48, 48, 3) and (s.image[..., 0] == s.image[..., 1]).all()
        assert bool(s.mask.any()) == bool(s.label) and s.boxes.tolist() == component_boxes(s.mask).tolist()
        assert s.skull_mask.any() and not (s.skull_mask & s.mask).any()  # tumour never on the skull
        assert s.image[..., 0][s.skull_mask.astype(bool)].mean() > s.image[..., 0][s.mask == 0].mean() + 60
    np.testing.assert_array_equal(gen[3].image, SyntheticMRI("train", 20, 48, seed=1)[3].image)
    assert not np.array_equal(gen[3].image, SyntheticMRI("test", 20, 48, seed=1)[3].image)


def test_synthetic_mri_datamodule_batches_carry_masks() -> None:
    dm = WSOLDataModule(
        dataset="synthetic_mri", synthetic_train_size=8, synthetic_val_size=4, batch_size=4, num_workers=0
    )
    dm.setup("fit")
    assert dm.num_classes == 2
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (4, 3, 64, 64) and batch["mask"].shape == (4, 64, 64)
    assert dm.get_dataset("val")[0]["skull_mask"].shape == (64, 64)  # transformed with the image
    assert dm.get_dataset("val").skull_mask(0).shape == (64, 64)


def test_cub_through_the_datamodule(cub_metadata_root: Path) -> None:
    dm = WSOLDataModule(
        dataset="cub",
        root=str(cub_metadata_root),
        resize_size=20,
        crop_size=16,
        batch_size=2,
        num_workers=0,
        cache_dir=str(cub_metadata_root) + "_cache",
    )
    dm.setup("fit")
    assert dm.num_classes == 200
    train = next(iter(dm.train_dataloader()))
    val = next(iter(dm.val_dataloader()))
    assert train["image"].shape == (2, 3, 16, 16)
    assert val["num_boxes"].tolist() == [1, 2] and val["boxes"][1, 1].tolist() == [
        20 * 16 // 36,
        5 * 16 // 24,
        30 * 16 // 36,
        20 * 16 // 24,
    ]


@pytest.mark.parametrize("name", ["synthetic", "synthetic_mri", "cub", "ilsvrc", "openimages", "mri"])
def test_data_configs_hold_valid_datamodule_keys(name: str) -> None:
    config = yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text())
    assert set(config) == {"data"} and config["data"]["dataset"] == name
    WSOLDataModule(**{k: tuple(v) if isinstance(v, list) else v for k, v in config["data"].items()})
