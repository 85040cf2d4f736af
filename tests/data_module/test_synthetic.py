from __future__ import annotations

import numpy as np
import pytest

from wsol_lightning.data import Synthetic
from wsol_lightning.data.datasets.synthetic import SyntheticGenerator


def test_same_seed_same_bytes_and_other_seed_differs() -> None:
    a, b = SyntheticGenerator("train", 12, seed=3), SyntheticGenerator("train", 12, seed=3)
    c = SyntheticGenerator("train", 12, seed=4)
    for i in range(12):
        assert a[i].image.tobytes() == b[i].image.tobytes()
        assert a[i].label == b[i].label
        np.testing.assert_array_equal(a[i].boxes, b[i].boxes)
    assert any(a[i].image.tobytes() != c[i].image.tobytes() for i in range(12))


def test_splits_differ() -> None:
    train, test = SyntheticGenerator("train", 4), SyntheticGenerator("test", 4)
    assert train[0].image.tobytes() != test[0].image.tobytes()


def test_boxes_cover_the_whole_object_and_the_part_is_inside() -> None:
    ds = SyntheticGenerator("val", 40, image_size=64, two_object_prob=0.5)
    saw_two = False
    for i in range(len(ds)):
        s = ds[i]
        assert s.image.dtype == np.uint8 and s.image.shape == (64, 64, 3)
        assert s.mask.shape == s.part_mask.shape == (64, 64)
        saw_two |= len(s.boxes) == 2
        union = np.zeros_like(s.mask)
        for x0, y0, x1, y1 in s.boxes:
            assert 0 <= x0 <= x1 < 64 and 0 <= y0 <= y1 < 64
            union[y0 : y1 + 1, x0 : x1 + 1] = 1
        # every object pixel (body and part) lies in a GT box, and the part is much smaller than the box
        assert (s.mask <= union).all()
        assert (s.part_mask <= s.mask).all()
        assert 0 < s.part_mask.sum() < 0.5 * s.mask.sum()
    assert saw_two


def test_labels_are_balanced_and_hierarchy_groups_fine_classes() -> None:
    ds = SyntheticGenerator("train", 80, num_classes=8, num_coarse=4)
    counts = np.bincount([ds.label_of(i) for i in range(80)], minlength=8)
    assert (counts == 10).all()
    assert ds.coarse_labels == [0, 0, 1, 1, 2, 2, 3, 3]
    assert ds[5].label == ds.label_of(5)


def test_body_hue_is_class_dependent_but_overlapping_within_a_group() -> None:
    ds = SyntheticGenerator("train", 8, num_classes=8, num_coarse=4)
    hues = [ds.body_hue_mean(c) for c in range(8)]
    within = abs(hues[0] - hues[1])
    between = abs(hues[1] - hues[2])
    assert 0 < within < between


@pytest.mark.parametrize("kwargs", [{"num_classes": 1}, {"num_classes": 40}, {"image_size": 8}, {"split": "dev"}])
def test_bad_arguments_name_the_key(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        SyntheticGenerator(**kwargs)


def test_spec_builds_each_split_from_its_own_size_and_the_seed() -> None:
    spec = Synthetic(num_classes=4, num_coarse=2, image_size=48, train_size=6, val_size=3, test_size=5)
    assert spec.name == "synthetic" and not spec.multilabel and not spec.attributes
    splits = {s: spec.build(s, 56, 48, seed=3) for s in ("train", "val", "test")}
    assert {s: len(d) for s, d in splits.items()} == {"train": 6, "val": 3, "test": 5}
    assert splits["val"].provided_fields == frozenset({"boxes", "mask", "part_mask"})
    generator = splits["val"].generator
    assert (generator.split, generator.seed, generator.num_classes, generator.image_size) == ("val", 3, 4, 48)
    assert splits["val"].class_names() == SyntheticGenerator(num_classes=4, num_coarse=2).class_names()
    expected = SyntheticGenerator("test", 5, image_size=48, num_classes=4, num_coarse=2, seed=3)[2]
    assert splits["test"].load(2).image.tobytes() == expected.image.tobytes()
