"""ClassPairedSampler: same-class pairs, coverage, determinism, DDP sharding, datamodule wiring."""

from __future__ import annotations

import numpy as np
import pytest

from wsol_lightning.data import Synthetic, WSOLDataModule
from wsol_lightning.data.samplers import ClassPairedSampler, dataset_labels

LABELS = np.repeat(np.arange(4), 8)  # 4 classes x 8 images = 16 same-class pairs


def batches(sampler: ClassPairedSampler) -> np.ndarray:
    return np.fromiter((index for index, _seed in sampler), dtype=np.int64).reshape(-1, sampler.batch_size)


def test_batches_are_same_class_pairs_and_cover_the_dataset() -> None:
    sampler = ClassPairedSampler(LABELS, batch_size=8, seed=3)
    out = batches(sampler)
    assert out.shape == (4, 8) and len(sampler) == 32
    pairs = LABELS[out.reshape(-1, 2)]
    assert (pairs[:, 0] == pairs[:, 1]).all()
    assert sorted(out.ravel().tolist()) == list(range(len(LABELS)))


def test_odd_class_sizes_pair_within_the_class() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2])  # class 0 odd, class 2 single
    sampler = ClassPairedSampler(labels, batch_size=2, seed=0)
    out = batches(sampler)
    assert len(out) == 4  # ceil(3/2) + 1 + 1 pairs
    assert (labels[out[:, 0]] == labels[out[:, 1]]).all()
    assert set(out.ravel().tolist()) == set(range(6))


def test_different_class_pairs_follow_the_same_class_pairs() -> None:
    sampler = ClassPairedSampler(LABELS, batch_size=8, different_class_pairs=1, seed=0)
    out = batches(sampler)
    assert out.shape == (5, 8)  # 16 same-class pairs // 3 per batch
    pairs = LABELS[out.reshape(len(out), 4, 2)]
    assert (pairs[:, :3, 0] == pairs[:, :3, 1]).all()
    assert (pairs[:, 3, 0] != pairs[:, 3, 1]).all()


def test_deterministic_per_seed_and_epoch() -> None:
    first = ClassPairedSampler(LABELS, batch_size=8, seed=1)
    again = ClassPairedSampler(LABELS, batch_size=8, seed=1)
    np.testing.assert_array_equal(batches(first), batches(again))
    epoch0 = batches(first)
    first.set_epoch(1)
    assert not np.array_equal(batches(first), epoch0)


def test_ranks_get_distinct_pairs_and_equal_lengths() -> None:
    labels = np.repeat(np.arange(3), 7)  # 12 pairs -> 6 batches of 2 pairs -> 3 per rank
    ranks = [ClassPairedSampler(labels, batch_size=4, seed=0, num_replicas=2, rank=r) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 12
    pairs = [{tuple(p) for p in batches(s).reshape(-1, 2).tolist()} for s in ranks]
    assert not pairs[0] & pairs[1]
    single = ClassPairedSampler(labels, batch_size=4, seed=0)
    assert pairs[0] | pairs[1] == {tuple(p) for p in batches(single).reshape(-1, 2).tolist()}


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"batch_size": 7}, "batch_size"), ({"batch_size": 8, "different_class_pairs": 4}, "different_class_pairs")],
)
def test_bad_arguments_name_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        ClassPairedSampler(LABELS, **kwargs)


def test_labels_come_from_the_generator_without_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    dm = WSOLDataModule(dataset=Synthetic(train_size=24), batch_size=8, num_workers=0, pair_sampling=True)
    dataset = dm.get_dataset("train")

    def no_rendering(index: int) -> None:
        raise AssertionError("labels must not render images")

    monkeypatch.setattr(dataset, "load", no_rendering)
    labels = dataset_labels(dataset)
    assert labels.tolist() == [dataset.generator.label_of(i) for i in range(24)]


def test_datamodule_train_loader_yields_pairs_and_eval_loader_is_unchanged() -> None:
    dm = WSOLDataModule(
        dataset=Synthetic(train_size=32, val_size=8), batch_size=8, num_workers=0, pair_sampling=True
    )
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, ClassPairedSampler)
    batch = next(iter(loader))
    labels = batch.label.view(-1, 2)
    assert (labels[:, 0] == labels[:, 1]).all()
    assert not isinstance(dm.val_dataloader().sampler, ClassPairedSampler)
