from __future__ import annotations

import numpy as np
import pytest
import torch

from wsol_lightning.data import Synthetic, WSOLBatch, WSOLDataModule, collate
from wsol_lightning.data.samplers import UnpaddedDistributedSampler
from wsol_lightning.data.transforms import rescale_boxes_like_reference


def _sample(**extra: object) -> dict:
    image = torch.zeros(3, 4, 4)
    return {"image": image, "label": 0, "boxes": np.zeros((0, 4)), "image_id": "x", "orig_size": (4, 4),
            **extra}


def test_collate_pads_boxes_and_keeps_counts() -> None:
    samples = [
        {"image": torch.zeros(3, 4, 4), "label": 1, "boxes": np.array([[0, 0, 1, 1]]), "image_id": "a", "orig_size": (4, 4)},
        {"image": torch.ones(3, 4, 4), "label": 2, "boxes": np.array([[0, 0, 2, 2], [1, 1, 3, 3]]), "image_id": "b",
         "orig_size": (8, 6)},
    ]
    batch = collate(samples)
    assert isinstance(batch, WSOLBatch) and len(batch) == 2
    assert batch.boxes.shape == (2, 2, 4) and batch.boxes.dtype == torch.long
    assert batch.num_boxes.tolist() == [1, 2]
    assert batch.boxes[0, 1].tolist() == [-1, -1, -1, -1]
    assert [b.tolist() for b in batch.gt_boxes()] == [[[0, 0, 1, 1]], [[0, 0, 2, 2], [1, 1, 3, 3]]]
    assert batch.orig_size.tolist() == [[4, 4], [8, 6]]
    assert batch.mask is None and not batch.has("mask")


def test_collate_keeps_path_and_failed_and_refuses_mixed_fields() -> None:
    batch = collate([_sample(path="a.png", failed=None), _sample(path="b.png", failed="truncated")])
    assert batch.path == ["a.png", "b.png"] and batch.failed == [None, "truncated"]
    assert batch.num_boxes.tolist() == [0, 0] and not batch.has("boxes") and batch.label.tolist() == [0, 0]
    with pytest.raises(ValueError, match="'mask'"):
        collate([_sample(mask=np.zeros((4, 4), np.uint8)), _sample()])


def test_datamodule_batches_follow_the_format() -> None:
    spec = Synthetic(train_size=16, val_size=8, test_size=8)
    dm = WSOLDataModule(dataset=spec, batch_size=4, num_workers=0)
    dm.setup("fit")
    assert dm.num_classes == 8
    for loader, size in ((dm.train_dataloader(), 64), (dm.val_dataloader(), 64)):
        batch = next(iter(loader))
        assert isinstance(batch, WSOLBatch)
        assert batch.image.shape == (4, 3, size, size) and batch.image.dtype == torch.float32
        # RGB in [0, 1]: the data pipeline does not normalize (each network normalizes its own input)
        assert 0.0 <= float(batch.image.min()) and float(batch.image.max()) <= 1.0
        assert batch.label.dtype == torch.long
        assert batch.mask.shape == (4, size, size) and batch.mask.dtype == torch.uint8
        assert batch.part_mask.shape == (4, size, size)
        assert batch.skull_mask is None and batch.multi_hot is None and batch.attributes is None
        assert len(batch.image_id) == 4
        for boxes in batch.gt_boxes():
            assert (boxes[:, 0] <= boxes[:, 2]).all() and (boxes[:, 2] < size).all()


def test_white_pixels_reach_the_batch_as_one() -> None:
    """The synthetic part patterns hold pure white (255): after the evaluation transform it is exactly 1.0."""
    dm = WSOLDataModule(dataset=Synthetic(val_size=8), resize_size=64, crop_size=64, num_workers=0)
    dataset = dm.get_dataset("val")
    # class 0 has the white/black part pattern
    index = next(i for i in range(len(dataset)) if dataset.generator.label_of(i) == 0)
    raw, sample = dataset.load(index), dataset[index]
    white = torch.from_numpy((raw.image == 255).all(axis=2))
    assert white.any()
    np.testing.assert_array_equal(sample["image"][:, white].numpy(), 1.0)
    np.testing.assert_allclose(sample["image"].permute(1, 2, 0).numpy(), raw.image / 255.0, atol=1e-6)


def test_evaluation_boxes_match_the_object_mask() -> None:
    dm = WSOLDataModule(resize_size=64, crop_size=64, num_workers=0)
    sample = dm.get_dataset("val")[0]
    ys, xs = np.nonzero(sample["mask"].numpy())
    union = sample["boxes"]
    assert xs.min() >= union[:, 0].min() and xs.max() <= union[:, 2].max()
    assert ys.min() >= union[:, 1].min() and ys.max() <= union[:, 3].max()


def test_default_dataset_is_synthetic_and_saved_as_its_description() -> None:
    dm = WSOLDataModule(num_workers=0)
    assert type(dm.dataset) is Synthetic and dm.dataset.options() == Synthetic().options()
    assert repr(dm.dataset) == repr(Synthetic())
    assert dm.hparams["dataset"] == Synthetic().describe() == {
        "class_path": "wsol_lightning.data.datasets.synthetic.Synthetic",
        "init_args": {
            "num_classes": 8, "num_coarse": 4, "image_size": 64, "train_size": 2000, "val_size": 200,
            "test_size": 400, "two_object_prob": 0.2, "attributes": False,
        },
    }
    spec = Synthetic(train_size=32, num_classes=4, num_coarse=2)
    custom = WSOLDataModule(dataset=spec, num_workers=0)
    assert custom.dataset is spec and custom.hparams["dataset"] == spec.describe()
    assert custom.hparams["dataset"]["init_args"]["train_size"] == 32 and custom.num_classes == 4
    assert custom.provided_fields == frozenset({"boxes", "mask", "part_mask"}) == dm.provided_fields
    assert not custom.multilabel and custom.num_attributes == 0


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"batch_size": 0}, "data.batch_size must be a positive integer, got 0"),
        ({"batch_size": -2}, "data.batch_size must be a positive integer, got -2"),
        ({"eval_batch_size": 0}, "data.eval_batch_size must be a positive integer"),
        ({"crop_size": 0}, "data.crop_size must be a positive integer"),
        ({"resize_size": 0}, "data.resize_size must be a positive integer"),
        ({"num_workers": -1}, "data.num_workers must be >= 0"),
        ({"resize_size": 32, "crop_size": 64}, r"data.resize_size \(32\) must be >= data.crop_size \(64\)"),
    ],
)
def test_bad_sizes_are_rejected_naming_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        WSOLDataModule(**kwargs)


def test_reference_box_rescale_floors_each_coordinate() -> None:
    # CUB test image 46: (60, 27, 385, 331) in a 500x375 image, evaluated at 224x224
    out = rescale_boxes_like_reference(np.array([[60, 27, 385, 331]]), (375, 500), (224, 224))
    assert out.tolist() == [[60 * 224 // 500, 27 * 224 // 375, 385 * 224 // 500, 331 * 224 // 375]]


def test_unpadded_sampler_covers_every_index_once() -> None:
    data = list(range(11))
    shards = [list(UnpaddedDistributedSampler(data, num_replicas=3, rank=r)) for r in range(3)]
    assert sorted(sum(shards, [])) == data
    assert [len(UnpaddedDistributedSampler(data, num_replicas=3, rank=r)) for r in range(3)] == [4, 4, 3]
