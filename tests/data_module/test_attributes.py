"""Per-image attributes of the synthetic set and ``Synthetic(attributes=True)`` in the batches."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
from jsonargparse import ArgumentError, ArgumentParser

from wsol_lightning.data import ILSVRC, Synthetic, WSOLDataModule
from wsol_lightning.data.datasets.synthetic import (
    ATTRIBUTE_NAMES,
    HUE_FAMILY_NAMES,
    PART_COLOUR_NAMES,
    SyntheticGenerator,
)


def names_of(attributes: np.ndarray) -> set[str]:
    return {name for name, value in zip(ATTRIBUTE_NAMES, attributes) if value}


def test_attributes_by_hand() -> None:
    generator = SyntheticGenerator("train", 4, num_classes=16)
    # class 0: white/black part, horizontal stripes; hues 0.02 (red) and 0.49 (cyan); two objects
    assert names_of(generator.attributes_of(0, [0.02, 0.49])) == {
        "part_has_white", "part_has_black", "body_hue_red", "body_hue_cyan", "two_objects"
    }
    # class 9 = pattern 1 (red/yellow) with vertical stripes; hue 0.95 wraps to red
    assert names_of(generator.attributes_of(9, [0.95])) == {
        "part_has_red", "part_has_yellow", "part_stripes_vertical", "body_hue_red"
    }
    assert generator.attributes_of(3, [0.3]).dtype == np.uint8


def test_generated_attributes_match_the_drawn_image() -> None:
    generator = SyntheticGenerator("val", 30, num_classes=16, two_object_prob=0.3)
    checked = 0
    for i in range(len(generator)):
        sample = generator[i]
        names = names_of(sample.attributes)
        assert ("two_objects" in names) == (len(sample.boxes) == 2)
        assert ("part_stripes_vertical" in names) == (sample.label >= 8)
        # the part_has_* colours are the colours drawn on the part
        drawn = {PART_COLOUR_NAMES.get(tuple(c)) for c in sample.image[sample.part_mask > 0].tolist()}
        part_names = {name for name in names if name.startswith("part_has_")}
        assert part_names == {f"part_has_{c}" for c in drawn if c}
        if len(sample.boxes) == 1:  # the body hue family of the mean body colour (texture noise averages out)
            body = (sample.mask > 0) & (sample.part_mask == 0)
            red, green, blue = sample.image[body].mean(axis=0) / 255
            hue = colorsys.rgb_to_hsv(red, green, blue)[0]
            if abs(hue * 6 - round(hue * 6)) < 0.4:  # not near a family boundary
                families = [name for name in names if name.startswith("body_hue_")]
                assert families == [f"body_hue_{HUE_FAMILY_NAMES[round(hue * 6) % 6]}"]
                checked += 1
    assert checked >= 10


def datamodule(attributes: bool = False, **kwargs: object) -> WSOLDataModule:
    spec = Synthetic(train_size=8, val_size=4, test_size=4, attributes=attributes)
    return WSOLDataModule(dataset=spec, batch_size=4, num_workers=0, **kwargs)


def test_attributes_reach_training_batches_only() -> None:
    dm = datamodule(attributes=True, pair_sampling=True)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch.attributes.shape == (4, len(ATTRIBUTE_NAMES)) == (4, dm.num_attributes)
    assert batch.attributes.dtype.is_floating_point
    train = dm.get_dataset("train")
    for row, image_id in enumerate(batch.image_id):
        index = int(image_id.rsplit("/", 1)[1])
        assert batch.attributes[row].tolist() == train.generator[index].attributes.tolist()
    assert next(iter(dm.val_dataloader())).attributes is None
    plain = datamodule()
    plain.setup("fit")
    assert next(iter(plain.train_dataloader())).attributes is None and plain.num_attributes == 0


def test_attributes_on_a_dataset_without_attributes_names_the_key(tmp_path) -> None:
    """Only Synthetic and CUB take ``attributes``: elsewhere the key is refused, naming it."""
    with pytest.raises(TypeError, match="unexpected keyword argument 'attributes'"):
        ILSVRC(root=str(tmp_path), attributes=True)
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(WSOLDataModule, "data")
    args = ["--data.dataset", "ILSVRC", "--data.dataset.root", str(tmp_path)]
    args += ["--data.dataset.attributes", "true"]
    with pytest.raises(ArgumentError, match="attributes"):
        parser.parse_args(args)
    assert parser.parse_args(args[:4]).data.dataset.init_args.root == str(tmp_path)
