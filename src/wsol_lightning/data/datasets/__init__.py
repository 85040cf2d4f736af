"""Dataset readers. ``build_real_dataset`` dispatches ``dataset: cub | ilsvrc | openimages | mri``."""

from __future__ import annotations

from pathlib import Path

from wsol_lightning.data.datasets.base import RawSample, WSOLDataset
from wsol_lightning.data.datasets.synthetic import SyntheticDataset
from wsol_lightning.data.datasets.synthetic_mri import SyntheticMRIDataset

REAL_DATASETS = ("cub", "ilsvrc", "openimages", "mri")


def build_real_dataset(
    name: str,
    root: str | None,
    split: str,
    resize_size: int,
    crop_size: int,
    seed: int,
    metadata_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    num_val_sample_per_class: int = 0,
    mri_split_ratios: tuple[float, float, float] = (0.7, 0.1, 0.2),
    mri_modality: str = "flair",
    load_attributes: bool = False,
) -> WSOLDataset:
    """Build one split of an on-disk dataset (layouts are auto-detected; see each reader's module).

    Args:
        name: ``cub``, ``ilsvrc``, ``openimages`` or ``mri``.
        root: dataset root directory.
        split: ``train``, ``val`` or ``test``.
        resize_size: training resize side.
        crop_size: training crop and evaluation side.
        seed: seed of every split choice (val hold-out / subsampling, MRI patient split).
        metadata_dir: wsolevaluation metadata folder of the dataset (cub, ilsvrc, openimages).
        cache_dir: index cache folder (default: next to the data or ``~/.cache/wsol_lightning``).
        num_val_sample_per_class: at most this many val images per class (0: all; cub, ilsvrc, openimages).
        mri_split_ratios: (train, val, test) fractions of MRI patients.
        mri_modality: BraTS sequence to read.
        load_attributes: samples carry per-image ``attributes`` (cub only; see :func:`build_cub`).
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    if load_attributes and name != "cub":
        raise ValueError(f"load_attributes: dataset {name!r} has no per-image attributes (cub has)")
    common = dict(
        root=root, split=split, resize_size=resize_size, crop_size=crop_size, seed=seed, cache_dir=cache_dir
    )
    if name == "cub":
        from wsol_lightning.data.datasets.cub import build_cub

        return build_cub(
            **common, metadata_dir=metadata_dir, num_val_sample_per_class=num_val_sample_per_class,
            load_attributes=load_attributes,
        )
    if name == "ilsvrc":
        from wsol_lightning.data.datasets.ilsvrc import build_ilsvrc

        return build_ilsvrc(
            **common, metadata_dir=metadata_dir, num_val_sample_per_class=num_val_sample_per_class
        )
    if name == "openimages":
        from wsol_lightning.data.datasets.openimages import build_openimages

        return build_openimages(
            **common, metadata_dir=metadata_dir, num_val_sample_per_class=num_val_sample_per_class
        )
    if name == "mri":
        from wsol_lightning.data.datasets.mri import build_mri

        return build_mri(**common, split_ratios=mri_split_ratios, modality=mri_modality)
    raise ValueError(f"dataset must be one of {REAL_DATASETS} (or synthetic, synthetic_mri), got {name!r}")


__all__ = ["RawSample", "SyntheticDataset", "SyntheticMRIDataset", "WSOLDataset", "build_real_dataset"]
