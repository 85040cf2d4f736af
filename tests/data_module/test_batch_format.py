from __future__ import annotations

import numpy as np
import torch

from wsol_lightning.data import WSOLDataModule, collate, unpad_boxes
from wsol_lightning.data.samplers import UnpaddedDistributedSampler
from wsol_lightning.data.transforms import rescale_boxes_like_reference


def test_collate_pads_boxes_and_keeps_counts() -> None:
    samples = [
        {"image": torch.zeros(3, 4, 4), "label": 1, "boxes": np.array([[0, 0, 1, 1]]), "image_id": "a", "orig_size": (4, 4)},
        {"image": torch.ones(3, 4, 4), "label": 2, "boxes": np.array([[0, 0, 2, 2], [1, 1, 3, 3]]), "image_id": "b",
         "orig_size": (8, 6)},
    ]
    batch = collate(samples)
    assert batch["boxes"].shape == (2, 2, 4) and batch["boxes"].dtype == torch.long
    assert batch["num_boxes"].tolist() == [1, 2]
    assert batch["boxes"][0, 1].tolist() == [-1, -1, -1, -1]
    assert [b.tolist() for b in unpad_boxes(batch["boxes"], batch["num_boxes"])] == [[[0, 0, 1, 1]], [[0, 0, 2, 2], [1, 1, 3, 3]]]
    assert batch["orig_size"].tolist() == [[4, 4], [8, 6]]
    assert "mask" not in batch


def test_datamodule_batches_follow_the_format() -> None:
    dm = WSOLDataModule(synthetic_train_size=16, synthetic_val_size=8, synthetic_test_size=8, batch_size=4, num_workers=0)
    dm.setup("fit")
    assert dm.num_classes == 8
    for loader, size in ((dm.train_dataloader(), 64), (dm.val_dataloader(), 64)):
        batch = next(iter(loader))
        assert batch["image"].shape == (4, 3, size, size) and batch["image"].dtype == torch.float32
        assert batch["label"].dtype == torch.long
        assert batch["mask"].shape == (4, size, size) and batch["mask"].dtype == torch.uint8
        assert batch["part_mask"].shape == (4, size, size)
        assert len(batch["image_id"]) == 4
        for boxes in unpad_boxes(batch["boxes"], batch["num_boxes"]):
            assert (boxes[:, 0] <= boxes[:, 2]).all() and (boxes[:, 2] < size).all()


def test_evaluation_boxes_match_the_object_mask() -> None:
    dm = WSOLDataModule(resize_size=64, crop_size=64, num_workers=0)
    sample = dm.get_dataset("val")[0]
    ys, xs = np.nonzero(sample["mask"].numpy())
    union = sample["boxes"]
    assert xs.min() >= union[:, 0].min() and xs.max() <= union[:, 2].max()
    assert ys.min() >= union[:, 1].min() and ys.max() <= union[:, 3].max()


def test_reference_box_rescale_floors_each_coordinate() -> None:
    # CUB test image 46: (60, 27, 385, 331) in a 500x375 image, evaluated at 224x224
    out = rescale_boxes_like_reference(np.array([[60, 27, 385, 331]]), (375, 500), (224, 224))
    assert out.tolist() == [[60 * 224 // 500, 27 * 224 // 375, 385 * 224 // 500, 331 * 224 // 375]]


def test_unpadded_sampler_covers_every_index_once() -> None:
    data = list(range(11))
    shards = [list(UnpaddedDistributedSampler(data, num_replicas=3, rank=r)) for r in range(3)]
    assert sorted(sum(shards, [])) == data
    assert [len(UnpaddedDistributedSampler(data, num_replicas=3, rank=r)) for r in range(3)] == [4, 4, 3]
