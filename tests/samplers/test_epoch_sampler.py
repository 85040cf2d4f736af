"""Training order: seeded per (seed, epoch), one augmentation seed per position, shardable, resumable."""

from __future__ import annotations

import numpy as np

from wsol_lightning.data.samplers import ClassPairedSampler, EpochSampler


def drawn(sampler) -> tuple[list[int], list[int]]:
    pairs = list(sampler)
    return [i for i, _ in pairs], [s for _, s in pairs]


def test_each_epoch_is_a_seeded_permutation_with_per_position_seeds() -> None:
    sampler = EpochSampler(10, seed=4)
    first, seeds = drawn(sampler)
    assert sorted(first) == list(range(10)) and len(set(seeds)) == 10
    assert drawn(EpochSampler(10, seed=4)) == (first, seeds)  # same seed, same order and crops
    sampler.set_epoch(1)
    second, second_seeds = drawn(sampler)
    assert second != first and sorted(second) == list(range(10)) and second_seeds != seeds
    assert drawn(EpochSampler(10, seed=5))[0] != first


def test_ranks_get_disjoint_equal_shares_with_distinct_seeds() -> None:
    shares = [drawn(EpochSampler(11, seed=0, num_replicas=2, rank=r)) for r in (0, 1)]
    assert [len(order) for order, _ in shares] == [5, 5]
    assert not set(shares[0][0]) & set(shares[1][0])
    assert not set(shares[0][1]) & set(shares[1][1])


def test_skip_resumes_the_epoch_exactly_and_only_that_epoch() -> None:
    full = drawn(EpochSampler(12, seed=1))
    resumed = EpochSampler(12, seed=1)
    resumed.skip(0, 5)
    order, seeds = drawn(resumed)
    assert (order, seeds) == (full[0][5:], full[1][5:])
    resumed.set_epoch(1)
    assert len(drawn(resumed)[0]) == 12  # the next epoch is whole
    paired = ClassPairedSampler(np.repeat(np.arange(3), 4), batch_size=4, seed=2)
    whole = drawn(paired)
    paired.skip(0, 4)
    assert drawn(paired) == (whole[0][4:], whole[1][4:])
