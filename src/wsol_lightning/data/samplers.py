"""Samplers shared by the datamodule.

Training samplers yield ``(index, sample_seed)`` pairs: ``sample_seed`` seeds the augmentation of
that sample (:func:`~wsol_lightning.data.transforms.apply_transform`) and depends only on the
sampler's seed, the epoch and the sample's position in the epoch. An epoch is therefore the same
whatever the number of loader workers, and a fit resumed in the middle of an epoch
(:meth:`ResumableSampler.skip`) sees exactly the batches and crops the uninterrupted fit saw.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler

from wsol_lightning.errors import ConfigError

#: A training sample request: (dataset index, augmentation seed).
SeededIndex = tuple[int, int]


def sample_seeds(seed: int, epoch: int, positions: np.ndarray) -> np.ndarray:
    """Augmentation seeds (31-bit) of the samples at ``positions`` of epoch ``epoch``."""
    rng = np.random.default_rng([seed, epoch, 0x5EED])
    table = rng.integers(0, 2**31 - 1, size=int(positions.max()) + 1 if len(positions) else 0)
    return table[positions]


class ResumableSampler(DistributedSampler):
    """A DDP-aware training sampler that yields :data:`SeededIndex` pairs and can skip ahead.

    Subclasses give :meth:`epoch_order`, the flat order of the current epoch on this rank;
    ``skip(n)`` drops the first ``n`` samples of the epoch whose number is given (a mid-epoch resume).
    """

    def epoch_order(self) -> np.ndarray:
        raise NotImplementedError

    def skip(self, epoch: int, num_samples: int) -> None:
        """Start epoch ``epoch`` after its first ``num_samples`` samples (on this rank)."""
        self._skip = (epoch, num_samples)

    def __iter__(self) -> Iterator[SeededIndex]:
        order = self.epoch_order()
        positions = np.arange(len(order)) * self.num_replicas + self.rank  # global position: distinct per rank
        seeds = sample_seeds(self.seed, self.epoch, positions)
        start = 0
        skip_epoch, skip_samples = getattr(self, "_skip", (-1, 0))
        if skip_epoch == self.epoch:
            start = skip_samples
        return iter((int(i), int(s)) for i, s in zip(order[start:], seeds[start:]))


class EpochSampler(ResumableSampler):
    """Shuffled training order: a permutation of the dataset per ``(seed, epoch)``, dealt to the ranks.

    Every rank draws the same permutation and takes its ``rank::world`` share (the first
    ``len // world * world`` samples, so the ranks have equal counts).

    Args:
        length: dataset size.
        seed: seed of the permutations (and of the augmentation seeds).
        num_replicas: world size (default: from ``torch.distributed`` when initialized, else 1).
        rank: this process's rank (default: from ``torch.distributed`` when initialized, else 0).
    """

    def __init__(self, length: int, seed: int = 0, num_replicas: int | None = None, rank: int | None = None) -> None:
        distributed = dist.is_available() and dist.is_initialized()
        num_replicas = num_replicas if num_replicas is not None else (dist.get_world_size() if distributed else 1)
        rank = rank if rank is not None else (dist.get_rank() if distributed else 0)
        super().__init__(range(length), num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.length = length

    def epoch_order(self) -> np.ndarray:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.length)
        return order[: self.num_samples * self.num_replicas][self.rank :: self.num_replicas]

    def __len__(self) -> int:
        return self.num_samples


class UnpaddedDistributedSampler(DistributedSampler):
    """Shards an evaluation set over ranks without padding or duplicates.

    torch's ``DistributedSampler`` repeats samples so every rank gets the same count; for
    evaluation that counts some images twice and changes the metrics. Here rank ``r`` gets
    indices ``r, r + world, r + 2 * world, ...`` in order, so the union over ranks is the
    dataset exactly once (ranks may differ by one sample). Lightning keeps a sampler that
    already is a ``DistributedSampler``.
    """

    def __init__(self, dataset: Dataset, num_replicas: int | None = None, rank: int | None = None) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.num_samples = len(range(self.rank, len(dataset), self.num_replicas))  # type: ignore[arg-type]
        self.total_size = len(dataset)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.total_size, self.num_replicas))

    def __len__(self) -> int:
        return self.num_samples


def dataset_labels(dataset: Dataset) -> np.ndarray:
    """Class index of every sample of ``dataset`` without rendering images where possible.

    Uses, in order: a ``labels()`` method of the dataset, the synthetic generator's
    ``generator.label_of(i)``, the raw ``load(i).label`` of a :class:`WSOLDataset` (no transform),
    and finally ``dataset[i]["label"]``.
    """
    labels_method = getattr(dataset, "labels", None)
    if callable(labels_method):
        return np.asarray(labels_method(), dtype=np.int64)
    size = len(dataset)  # type: ignore[arg-type]
    label_of = getattr(getattr(dataset, "generator", None), "label_of", None)
    if callable(label_of):
        return np.asarray([label_of(i) for i in range(size)], dtype=np.int64)
    load = getattr(dataset, "load", None)
    if callable(load):
        return np.asarray([load(i).label for i in range(size)], dtype=np.int64)
    return np.asarray([int(dataset[i]["label"]) for i in range(size)], dtype=np.int64)


class ClassPairedSampler(ResumableSampler):
    """Training sampler whose batches are made of image pairs (I2C, MCIS).

    A batch of ``batch_size`` indices holds ``batch_size // 2`` pairs at positions ``(2k, 2k + 1)``:
    first ``batch_size // 2 - different_class_pairs`` pairs of two images of the same class, then
    ``different_class_pairs`` pairs of two images of different classes.

    Epoch plan (identical on every rank, drawn from ``(seed, epoch)``; call :meth:`set_epoch`, as
    Lightning does): every class's images are shuffled and cut into consecutive same-class pairs (a
    class with an odd count pairs its last image with another random image of the class; a class
    with one image pairs it with itself), so every image is in a same-class pair once per epoch; the
    pairs are shuffled and cut into batches, the incomplete last batch is dropped. A different-class
    pair takes the next image of a shuffled pass over the dataset and a random image of a random
    other class. The batches are then dealt to the ranks round-robin after truncation to a multiple
    of the world size, so ranks see distinct pairs and equally many batches:
    ``len(self) == (sum_c ceil(n_c / 2) // same_pairs_per_batch // world) * batch_size`` indices.

    It yields flat :data:`SeededIndex` pairs; the ``DataLoader`` must use the same ``batch_size``
    without shuffling (it is a ``DistributedSampler``, so Lightning keeps it under DDP).

    Args:
        labels: class index of every dataset sample (see :func:`dataset_labels`).
        batch_size: per-rank batch size (even).
        different_class_pairs: different-class pairs per batch (MCIS's contrastive branch); less
            than ``batch_size // 2``.
        seed: seed of the epoch plans.
        num_replicas: world size (default: from ``torch.distributed`` when initialized, else 1).
        rank: this process's rank (default: from ``torch.distributed`` when initialized, else 0).
    """

    def __init__(
        self,
        labels: Sequence[int] | np.ndarray,
        batch_size: int,
        different_class_pairs: int = 0,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        labels = np.asarray(labels, dtype=np.int64)
        if batch_size < 2 or batch_size % 2:
            raise ConfigError(f"pair sampling needs an even batch_size >= 2, got batch_size={batch_size}")
        pairs_per_batch = batch_size // 2
        if not 0 <= different_class_pairs < pairs_per_batch:
            raise ConfigError(
                f"different_class_pairs must be in [0, batch_size // 2 = {pairs_per_batch}), got {different_class_pairs}"
            )
        if labels.ndim != 1 or len(labels) == 0:
            raise ConfigError("pair sampling needs a non-empty 1-d array of labels")
        self.classes = np.unique(labels)
        if different_class_pairs and len(self.classes) < 2:
            raise ConfigError("different_class_pairs > 0 needs a dataset with at least two classes")
        distributed = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if distributed else 1
        if rank is None:
            rank = dist.get_rank() if distributed else 0
        super().__init__(labels, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.labels = labels
        self.batch_size = batch_size
        self.different_class_pairs = different_class_pairs
        self.same_class_pairs = pairs_per_batch - different_class_pairs
        self.indices_by_class = {int(c): np.flatnonzero(labels == c) for c in self.classes}
        num_pairs = sum((len(idx) + 1) // 2 for idx in self.indices_by_class.values())
        self.batches_per_rank = num_pairs // self.same_class_pairs // self.num_replicas
        if self.batches_per_rank == 0:
            raise ConfigError(
                f"pair sampling: {num_pairs} same-class pairs cannot fill one batch of {self.same_class_pairs} "
                f"same-class pairs per rank on {self.num_replicas} ranks; lower batch_size"
            )
        self.num_samples = self.batches_per_rank * batch_size
        self.total_size = self.num_samples * self.num_replicas

    def epoch_batches(self) -> list[np.ndarray]:
        """Every rank's batches of the current epoch, in order (before dealing to ranks)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        pairs = []
        for idx in self.indices_by_class.values():
            order = rng.permutation(idx)
            if len(order) % 2:
                partner = rng.choice(order[:-1]) if len(order) > 1 else order[0]
                order = np.append(order, partner)
            pairs.append(order.reshape(-1, 2))
        same = np.concatenate(pairs)[rng.permutation(sum(len(p) for p in pairs))]
        num_batches = self.batches_per_rank * self.num_replicas
        same = same[: num_batches * self.same_class_pairs].reshape(num_batches, self.same_class_pairs, 2)
        if not self.different_class_pairs:
            return [b.reshape(-1) for b in same]
        anchors = np.resize(rng.permutation(len(self.labels)), num_batches * self.different_class_pairs)
        different = np.empty((len(anchors), 2), dtype=np.int64)
        for i, anchor in enumerate(anchors):
            others = self.classes[self.classes != self.labels[anchor]]
            partner_class = int(rng.choice(others))
            different[i] = anchor, rng.choice(self.indices_by_class[partner_class])
        different = different.reshape(num_batches, self.different_class_pairs, 2)
        return [np.concatenate([s, d]).reshape(-1) for s, d in zip(same, different)]

    def epoch_order(self) -> np.ndarray:
        batches = self.epoch_batches()[self.rank :: self.num_replicas]
        return np.concatenate(batches).astype(np.int64)

    def __len__(self) -> int:
        return self.num_samples
