"""Brain-tumour MRI slices: label = tumour present, GT = the tumour mask and its components' boxes.

Layouts (auto-detected under ``root``, one ``INFO`` line says which was found):

* **LGG** (Kaggle "lgg-mri-segmentation", ``kaggle_3m/``): patient folders of ``<name>.tif``
  slices with ``<name>_mask.tif`` masks.
* **generic**: any folder tree of slices ``<name>.<png|tif|tiff|jpg|jpeg>`` with a
  ``<name>_mask.<ext>`` beside each. An optional ``labels.csv`` (``<slice path>,<0|1>``, path
  relative to ``root``) overrides the mask-derived labels; a slice labelled 1 with an empty mask
  is an error naming it.
* **BraTS** NIfTI: patient folders with ``*_<modality>.nii[.gz]`` and ``*_seg.nii[.gz]``
  (needs the optional extra ``mri``: ``pip install 'wsol-lightning[mri]'`` for nibabel). Every
  volume is cut once into axial PNG slices (``volume[:, :, k].T``; intensities clipped at the
  volume's 99.5th percentile of brain voxels and scaled to 0-255) plus masks (``seg > 0``,
  all tumour sub-regions) in the index cache folder; slices with no brain voxel are dropped.
  Loading then reads small PNGs instead of decompressing a volume per sample.

Patients: the first folder under ``root`` when slices are in folders, else the file stem without
its trailing ``_<slice number>`` (``TCGA_CS_4941_19960909_12.tif`` -> ``TCGA_CS_4941_19960909``).
Split: patients (sorted) are shuffled with ``seed`` and cut by ``split_ratios`` (train, val,
test), so no patient is in two splits. Labels: 1 if the slice's mask has a foreground pixel
(non-zero; ``> 127`` for lossy JPEG masks), else 0; ``num_classes = 2``. GT boxes: bounding
boxes of the mask's 8-connected components (none on a tumour-free slice). Slices are grayscale
or, for LGG, 3 MR sequences stored as RGB; grayscale is replicated to 3 channels so every
backbone and its ImageNet normalization apply unchanged; 16-bit slices are min-max scaled to 8 bit.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch.utils.data import Dataset

from wsol_lightning.data.datasets.base import DatasetSpec, RawSample, WSOLDataset
from wsol_lightning.data.datasets.image_dataset import (
    IndexedImageDataset,
    component_boxes,
    read_binary_mask,
    read_image,
)
from wsol_lightning.data.datasets.split_index import IndexCache, SplitIndex, file_signature
from wsol_lightning.data.errors import DatasetNotFoundError, EmptyTumourMaskError, MetadataError
from wsol_lightning.data.samplers import dataset_labels

log = logging.getLogger(__name__)

NUM_CLASSES = 2
CLASS_NAMES = ["no_tumour", "tumour"]
#: Multi-label classes of the MRI specs' ``multilabel``: every slice shows a head, some a tumour.
HEAD_TUMOUR_CLASS_NAMES = ["head", "tumour"]
#: Index of the tumour class in both label sets (and ``label`` of a tumour slice).
TUMOUR_CLASS = 1
SLICE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
MASK_TAG = "_mask"
HOW_TO = (
    "Point root at the LGG dataset (kaggle_3m/ with patient folders of <name>.tif + <name>_mask.tif), at a folder "
    "of slices with <name>_mask.<png|tif|jpg> masks, or at BraTS patient folders with *_<modality>.nii.gz and "
    "*_seg.nii.gz (pip install 'wsol-lightning[mri]')."
)
_SLICE_NUMBER = re.compile(r"_\d+$")


def _mask_threshold(path: str) -> int:
    return 127 if path.lower().endswith((".jpg", ".jpeg")) else 0


def _scan_pairs(root: Path) -> tuple[list[str], list[str]]:
    """(slice, mask) paths relative to ``root``, sorted, for every slice with a ``_mask`` file."""
    slices, masks = [], []
    for directory, dirnames, files in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        by_stem = {os.path.splitext(f)[0]: f for f in files if f.lower().endswith(SLICE_SUFFIXES)}
        for stem, name in sorted(by_stem.items()):
            if stem.endswith(MASK_TAG) or stem + MASK_TAG not in by_stem:
                continue
            rel_dir = os.path.relpath(directory, root).replace(os.sep, "/")
            prefix = "" if rel_dir == "." else rel_dir + "/"
            slices.append(prefix + name)
            masks.append(prefix + by_stem[stem + MASK_TAG])
    return slices, masks


def _patient_of(rel: str) -> str:
    if "/" in rel:
        return rel.split("/", 1)[0]
    return _SLICE_NUMBER.sub("", os.path.splitext(rel)[0])


def _read_label_overrides(path: Path) -> dict[str, int]:
    labels = {}
    with open(path, encoding="utf-8", newline="") as f:
        for line_number, row in enumerate(csv.reader(f), start=1):
            if not row or (line_number == 1 and row[-1].strip().lower() == "label"):
                continue
            if len(row) != 2 or row[1].strip() not in ("0", "1"):
                raise MetadataError(path, line_number, f"expected '<slice path>,<0|1>', got {row}")
            labels[row[0].strip()] = int(row[1])
    return labels


def _build_slice_index(root: Path) -> SplitIndex:
    slices, masks = _scan_pairs(root)
    overrides_path = root / "labels.csv"
    overrides = _read_label_overrides(overrides_path) if overrides_path.is_file() else {}
    labels, sizes = [], []
    for rel, mask_rel in zip(slices, masks):
        mask = read_binary_mask(root / mask_rel, threshold=_mask_threshold(mask_rel))
        has_tumour = bool(mask.any())
        label = overrides.get(rel, int(has_tumour))
        if label == 1 and not has_tumour:
            raise EmptyTumourMaskError(root / rel, root / mask_rel)
        labels.append(label)
        sizes.append((mask.shape[1], mask.shape[0]))
    patients = sorted(set(map(_patient_of, slices)))
    patient_id = {p: i for i, p in enumerate(patients)}
    return SplitIndex.build(
        slices,
        labels,
        np.asarray(sizes, np.int32).reshape(-1, 2),
        mask_paths=[[m] for m in masks],
        groups=[patient_id[_patient_of(s)] for s in slices],
    )


def _import_nibabel():
    try:
        import nibabel
    except ImportError as err:
        raise ImportError(
            "reading BraTS NIfTI volumes needs nibabel, the optional extra 'mri': pip install 'wsol-lightning[mri]'"
        ) from err
    return nibabel


def _find_brats_volumes(root: Path, modality: str) -> list[tuple[str, Path, Path]]:
    """(patient, modality volume, segmentation volume) of every patient folder holding a ``*_seg`` volume."""
    found = []
    for seg in sorted(root.rglob("*_seg.nii*")):
        stem = seg.name.split("_seg.nii")[0]
        image = next(
            (
                seg.with_name(f"{stem}_{modality}{ext}")
                for ext in (".nii.gz", ".nii")
                if seg.with_name(f"{stem}_{modality}{ext}").is_file()
            ),
            None,
        )
        if image is None:
            raise DatasetNotFoundError(
                "MRI (BraTS)",
                root,
                [seg.with_name(f"{stem}_{modality}.nii.gz")],
                f"every *_seg volume needs its {modality!r} volume (data.dataset.modality). {HOW_TO}",
            )
        found.append((stem, image, seg))
    return found


def _slice_brats(volumes: list[tuple[str, Path, Path]], out_dir: Path) -> None:
    """Cut every volume into axial uint8 PNG slices and masks under ``out_dir/<patient>/``."""
    nibabel = _import_nibabel()
    for patient, image_path, seg_path in volumes:
        volume = np.asarray(nibabel.load(str(image_path)).dataobj, dtype=np.float32)
        seg = np.asarray(nibabel.load(str(seg_path)).dataobj)
        if volume.shape != seg.shape or volume.ndim != 3:
            raise MetadataError(
                seg_path, 0, f"segmentation shape {seg.shape} differs from {image_path.name} {volume.shape}"
            )
        brain = volume[volume > 0]
        high = float(np.percentile(brain, 99.5)) if brain.size else 1.0
        scaled = np.clip(volume / max(high, 1e-6) * 255.0, 0, 255).round().astype(np.uint8)
        (out_dir / patient).mkdir(parents=True, exist_ok=True)
        for k in range(volume.shape[2]):
            if not (volume[:, :, k] > 0).any():
                continue
            name = out_dir / patient / f"{patient}_{k:03d}"
            cv2.imwrite(f"{name}.png", np.ascontiguousarray(scaled[:, :, k].T))
            cv2.imwrite(
                f"{name}{MASK_TAG}.png", np.ascontiguousarray((seg[:, :, k].T > 0).astype(np.uint8) * 255)
            )


def patient_split(
    groups: np.ndarray, split: str, ratios: tuple[float, float, float], seed: int
) -> np.ndarray:
    """Rows of the slices whose patient falls in ``split`` (seeded patient-level cut by ``ratios``)."""
    if len(ratios) != 3 or min(ratios) < 0 or sum(ratios) <= 0:
        raise ValueError(
            f"data.dataset.split_ratios must be three non-negative (train, val, test) fractions, got {ratios}"
        )
    patients = np.unique(groups)
    order = np.random.default_rng(seed).permutation(patients)
    fractions = np.asarray(ratios, np.float64) / sum(ratios)
    n_train, n_val = (int(round(f * len(patients))) for f in fractions[:2])
    wanted = fractions > 0
    if len(patients) >= wanted.sum():  # every split with a positive fraction gets a patient
        n_train = min(max(n_train, int(wanted[0])), len(patients) - int(wanted[1]) - int(wanted[2]))
        n_val = min(max(n_val, int(wanted[1])), len(patients) - n_train - int(wanted[2]))
    chosen = {
        "train": order[:n_train],
        "val": order[n_train : n_train + n_val],
        "test": order[n_train + n_val :],
    }[split]
    return np.flatnonzero(np.isin(groups, chosen))


class MRIDataset(IndexedImageDataset):
    """Tumour slices: the mask is read with the slice, its components are the GT boxes."""

    provided_fields = frozenset({"boxes", "mask", "images_without_object"})

    def load(self, index: int) -> RawSample:
        rel = self.index.image_paths[index]
        image = read_image(self.image_root / rel, scan=True)
        (mask_rel,) = self.index.masks_of(index)
        mask = read_binary_mask(self.image_root / mask_rel, image.shape[:2], _mask_threshold(mask_rel))
        label = int(self.index.labels[index])
        if label == 1 and not mask.any():
            raise EmptyTumourMaskError(self.image_root / rel, self.image_root / mask_rel)
        return RawSample(
            image=image,
            label=label,
            boxes=component_boxes(mask),
            image_id=rel,
            masks={"mask": mask.astype(np.uint8)},
        )


class HeadTumourLabels(Dataset):
    """An MRI split (``mri`` or ``synthetic_mri``) with multi-hot ``{head, tumour}`` targets.

    The ``multilabel`` setting of :class:`MRI` and :class:`~wsol_lightning.data.SyntheticMRI`: every slice shows a head, so each sample gains
    ``multi_hot = [1, 1]`` with a tumour and ``[1, 0]`` without. ``label`` is unchanged (1 iff
    tumour): it names the class whose map the evaluation reads (the tumour's on tumour slices, the
    only ones with boxes; the head's on the others) and the class the pair sampler pairs by.

    Args:
        dataset: the single-label split (labels 0 no tumour, 1 tumour).
    """

    def __init__(self, dataset: WSOLDataset) -> None:
        self.dataset = dataset
        self.split = dataset.split
        self.num_classes = len(HEAD_TUMOUR_CLASS_NAMES)
        self.provided_fields = dataset.provided_fields

    def __len__(self) -> int:
        return len(self.dataset)

    def class_names(self) -> list[str]:
        return list(HEAD_TUMOUR_CLASS_NAMES)

    def labels(self) -> np.ndarray:
        """``label`` of every slice (1 iff tumour) without rendering, for the pair sampler."""
        return dataset_labels(self.dataset)

    def configure_images(self, *args: Any, **kwargs: Any) -> None:
        """The wrapped split's :meth:`~wsol_lightning.data.datasets.base.WSOLDataset.configure_images`."""
        self.dataset.configure_images(*args, **kwargs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self.dataset[index]
        sample["multi_hot"] = np.array([1.0, float(sample["label"] == TUMOUR_CLASS)], dtype=np.float32)
        return sample


def build_mri(
    spec: MRI, split: str, resize_size: int, crop_size: int, seed: int
) -> MRIDataset:
    """One patient-level split of an MRI slice dataset (see the module docstring).

    ``spec`` gives the options; the other arguments are those of :meth:`DatasetSpec.build`.
    """
    root, cache_dir, split_ratios, modality = spec.root, spec.cache_dir, spec.split_ratios, spec.modality
    if root is None or not Path(root).is_dir():
        raise DatasetNotFoundError("MRI", root, [root if root is not None else "<root not set>"], HOW_TO)
    root = Path(root)
    cache = IndexCache(cache_dir, root)
    volumes = _find_brats_volumes(root, modality)
    if volumes:
        key = {
            "dataset": "mri",
            "layout": "brats",
            "split": "all",
            "modality": modality,
            "files": file_signature(p for _, image, seg in volumes for p in (image, seg)),
        }
        slice_root = cache.path_for(key).with_suffix("")
        log.info(
            "MRI %s: BraTS NIfTI layout (%d volumes, %s) sliced into %s",
            split,
            len(volumes),
            modality,
            slice_root,
        )
        if not (slice_root / ".complete").is_file():
            _slice_brats(volumes, slice_root)
            (slice_root / ".complete").touch()
        image_root = slice_root
    else:
        slices, _ = _scan_pairs(root)
        if not slices:
            raise DatasetNotFoundError(
                "MRI",
                root,
                [
                    root / "<patient>/<name>.tif + <name>_mask.tif",
                    root / "<name>.png + <name>_mask.png",
                    root / "<patient>/<patient>_seg.nii.gz",
                ],
                HOW_TO,
            )
        lgg = all(s.count("/") == 1 and s.lower().endswith((".tif", ".tiff")) for s in slices)
        log.info(
            "MRI %s: %s layout at %s (%d slices)",
            split,
            "LGG patient-folder" if lgg else "generic slice-folder",
            root,
            len(slices),
        )
        key = {
            "dataset": "mri",
            "layout": "slices",
            "split": "all",
            "folder": file_signature([root]),
            "files": file_signature([root / "labels.csv"]),
        }
        image_root = root
    everything = cache.load_or_build(key, lambda: _build_slice_index(image_root))
    index = everything.subset(patient_split(everything.groups, split, tuple(split_ratios), seed))
    return MRIDataset(
        index, image_root, split, resize_size, crop_size, NUM_CLASSES, CLASS_NAMES, with_masks=True
    )


__all__ = [
    "CLASS_NAMES",
    "HEAD_TUMOUR_CLASS_NAMES",
    "TUMOUR_CLASS",
    "HeadTumourLabels",
    "MRIDataset",
    "NUM_CLASSES",
    "build_mri",
    "component_boxes",
    "patient_split",
]


class MRI(DatasetSpec):
    """Brain-tumour MRI slices: LGG ``kaggle_3m``, generic slice folders, or BraTS NIfTI volumes.

    Labelled ``no_tumour`` / ``tumour`` (patient-level split); with ``multilabel`` the classes are
    ``head`` / ``tumour`` (:class:`HeadTumourLabels`).

    Args:
        root: dataset folder (see the module docstring for the layouts).
        cache_dir: where split indexes (and BraTS slices) are cached; default ``<root>/.wsol_index``
            when writable, else ``~/.cache/wsol_lightning``.
        split_ratios: (train, val, test) fractions of the patients (seeded).
        modality: BraTS sequence read from NIfTI volumes (``flair``, ``t1``, ``t1ce``, ``t2``).
        multilabel: multi-label ``{head, tumour}`` targets (``multi_hot``; the CLI makes the model
            multi-label).
    """

    name = "mri"

    def __init__(
        self,
        root: str,
        cache_dir: str | None = None,
        split_ratios: tuple[float, float, float] = (0.7, 0.1, 0.2),
        modality: str = "flair",
        multilabel: bool = False,
    ) -> None:
        self.root = root
        self.cache_dir = cache_dir
        self.split_ratios = tuple(split_ratios)
        self.modality = modality
        self.multilabel = multilabel

    def build(self, split: str, resize_size: int, crop_size: int, seed: int) -> WSOLDataset:
        dataset = build_mri(self, split, resize_size, crop_size, seed)
        return HeadTumourLabels(dataset) if self.multilabel else dataset
