"""Synthetic MRI-like slices and the datamodule paths of every dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from jsonargparse import ArgumentParser

from wsol_lightning.data import CUB, ILSVRC, MRI, OpenImages, Synthetic, SyntheticMRI, WSOLDataModule
from wsol_lightning.data.datasets.image_dataset import component_boxes
from wsol_lightning.data.datasets.synthetic_mri import SyntheticMRIGenerator

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments" / "data"


def test_slices_are_deterministic_and_consistent() -> None:
    gen = SyntheticMRIGenerator("train", length=20, image_size=48, seed=1, tumour_prob=0.5)
    labels = [gen[i].label for i in range(20)]
    assert sum(labels) == 10
    for i in range(20):
        s = gen[i]
        assert s.image.shape == (48, 48, 3) and (s.image[..., 0] == s.image[..., 1]).all()
        assert bool(s.mask.any()) == bool(s.label) and s.boxes.tolist() == component_boxes(s.mask).tolist()
        assert s.skull_mask.any() and not (s.skull_mask & s.mask).any()  # tumour never on the skull
        assert s.image[..., 0][s.skull_mask.astype(bool)].mean() > s.image[..., 0][s.mask == 0].mean() + 60
    np.testing.assert_array_equal(gen[3].image, SyntheticMRIGenerator("train", 20, 48, seed=1)[3].image)
    assert not np.array_equal(gen[3].image, SyntheticMRIGenerator("test", 20, 48, seed=1)[3].image)


def test_synthetic_mri_datamodule_batches_carry_masks() -> None:
    dm = WSOLDataModule(dataset=SyntheticMRI(train_size=8, val_size=4), batch_size=4, num_workers=0)
    dm.setup("fit")
    assert dm.num_classes == 2 and not dm.multilabel
    assert dm.provided_fields == frozenset({"boxes", "mask", "skull_mask", "images_without_object"})
    batch = next(iter(dm.val_dataloader()))
    assert batch.image.shape == (4, 3, 64, 64) and batch.mask.shape == (4, 64, 64)
    assert batch.skull_mask.shape == (4, 64, 64) and batch.multi_hot is None
    assert dm.get_dataset("val")[0]["skull_mask"].shape == (64, 64)  # transformed with the image
    assert dm.get_dataset("val").skull_mask(0).shape == (64, 64)


def test_synthetic_mri_multilabel_batches_carry_head_tumour_targets() -> None:
    spec = SyntheticMRI(train_size=8, val_size=4, multilabel=True)
    assert spec.multilabel and spec.describe()["init_args"]["multilabel"] is True
    dm = WSOLDataModule(dataset=spec, batch_size=4, num_workers=0)
    assert dm.multilabel and dm.num_classes == 2 and dm.class_names() == ["head", "tumour"]
    assert dm.provided_fields == frozenset({"boxes", "mask", "skull_mask", "images_without_object"})
    batch = next(iter(dm.val_dataloader()))
    assert batch.multi_hot.tolist() == [[1.0, float(label)] for label in batch.label.tolist()]
    with pytest.raises(TypeError, match="unexpected keyword argument 'multilabel'"):
        Synthetic(multilabel=True)  # only the MRI sets are multi-label


def test_cub_through_the_datamodule(cub_metadata_root: Path) -> None:
    dm = WSOLDataModule(
        dataset=CUB(root=str(cub_metadata_root), cache_dir=str(cub_metadata_root) + "_cache"),
        resize_size=20,
        crop_size=16,
        batch_size=2,
        num_workers=0,
    )
    dm.setup("fit")
    assert dm.num_classes == 2 and dm.provided_fields == frozenset({"boxes"})  # the fixture's 2 classes
    train = next(iter(dm.train_dataloader()))
    val = next(iter(dm.val_dataloader()))
    assert train.image.shape == (2, 3, 16, 16)
    assert val.mask is None and val.part_mask is None and val.attributes is None
    assert val.num_boxes.tolist() == [1, 2] and val.boxes[1, 1].tolist() == [
        20 * 16 // 36,
        5 * 16 // 24,
        30 * 16 // 36,
        20 * 16 // 24,
    ]


SPECS = {
    "synthetic": Synthetic,
    "synthetic_mri": SyntheticMRI,
    "cub": CUB,
    "ilsvrc": ILSVRC,
    "openimages": OpenImages,
    "mri": MRI,
}


@pytest.mark.parametrize("name", list(SPECS))
def test_data_configs_hold_valid_datamodule_keys(name: str) -> None:
    """Each data config parses as ``data:`` of the CLI (strict keys) and instantiates its own dataset."""
    config = yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text())
    assert set(config) == {"data"}
    assert config["data"]["dataset"]["class_path"] == f"wsol_lightning.data.{SPECS[name].__name__}"
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(WSOLDataModule, "data")
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes  # renamed in 4.49
    init = instantiate(parser.parse_path(str(EXPERIMENTS / f"{name}.yaml")))
    dm = init.data
    assert isinstance(dm, WSOLDataModule) and type(dm.dataset) is SPECS[name] and dm.dataset.name == name
    for key, value in config["data"]["dataset"].get("init_args", {}).items():
        assert getattr(dm.dataset, key) == (tuple(value) if isinstance(value, list) else value)
    assert dm.hparams["dataset"] == dm.dataset.describe()
