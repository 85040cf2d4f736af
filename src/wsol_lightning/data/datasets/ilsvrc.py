"""ILSVRC 2012 in the wsolevaluation metadata layout or the raw download layout.

Class index order = the sorted WordNet ids (``n01440764`` is class 0), which is also the order
of wsolevaluation's ``class_labels.txt``, torchvision's ``ImageFolder`` and the ImageNet fc.
Classes come from the data (the full ILSVRC has 1,000): the raw layout has as many as ``train/``
has synset folders; the metadata layout ``max label + 1`` over the ``class_labels.txt`` of its
splits, and when the synsets are known (``train/<wnid>/`` folders or ``LOC_synset_mapping.txt``)
every label must index them. A class is named after its synset (``LOC_synset_mapping.txt``'s
words when present): the folder of its ``train/<wnid>/`` images, else the sorted synset list.

Layouts (auto-detected, one ``INFO`` line says which was found):

* **metadata** (wsolevaluation): ``<metadata>/{train,val,test}/*.txt`` (``metadata_dir`` or
  ``<root>/metadata/ILSVRC`` or ``<root>/../../metadata/ILSVRC``), image ids relative to
  ``root`` (``train/<wnid>/*.JPEG``, ``val2/<k>/<j>.jpeg`` = ImageNetV2, ``val/*.JPEG``).
* **raw**: ``<root>/train/<wnid>/*.JPEG`` and ``<root>/val/*.JPEG`` (or ``val/<wnid>/*.JPEG``),
  also under ``<root>/ILSVRC/Data/CLS-LOC/`` (Kaggle). Boxes of ``val`` come from
  ``LOC_val_solution.csv`` (Kaggle) or per-image PASCAL-VOC XML files (``val/<stem>.xml``
  beside the image or ``ILSVRC/Annotations/CLS-LOC/val/<stem>.xml``). Splits: ``train`` = the
  train folder, ``test`` = the 50,000 ILSVRC val images (wsolevaluation's test). There is no
  ImageNetV2 ``val`` here; fallback rule: ``val`` = :data:`FALLBACK_VAL_PER_CLASS` seeded
  images per class among the train images that have boxes in ``LOC_train_solution.csv``,
  removed from ``train`` (a warning says the numbers are not comparable to published ones).

All GT boxes of an image are kept (the metric counts a hit against any of them). A box entirely
outside its image is an error naming the annotation file and line (``drop_invalid_boxes``: dropped
with that message as a warning; XML files are named with the line of the box's ``<object>``).
"""

from __future__ import annotations

import csv
import logging
import os
import re
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from wsol_lightning.data.datasets.image_dataset import (
    IndexedImageDataset,
    MetadataDatasetSpec,
    fit_boxes_to_images,
    holdout_per_class,
    subsample_per_class,
)
from wsol_lightning.data.datasets.metadata import (
    build_metadata_index,
    check_split_dir,
    metadata_classes,
    metadata_signature,
)
from wsol_lightning.data.datasets.split_index import IndexCache, SplitIndex, file_signature
from wsol_lightning.data.errors import DatasetNotFoundError, MetadataError

log = logging.getLogger(__name__)

#: Classes of the full ILSVRC 2012 (a dataset's own count comes from its data, see the module docstring).
NUM_CLASSES = 1000
FALLBACK_VAL_PER_CLASS = 10
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
HOW_TO = (
    "Prepare ILSVRC 2012 either with train/<wnid>/*.JPEG and val/*.JPEG plus LOC_val_solution.csv or the "
    "per-image val XMLs (ILSVRC2012_bbox_val_v3.tgz), or in the wsolevaluation layout (metadata/ILSVRC from "
    "github.com/clovaai/wsolevaluation as metadata_dir, ImageNetV2 threshold-0.7 images as val2/)."
)


def _image_root(root: Path) -> Path:
    for candidate in (root, root / "ILSVRC" / "Data" / "CLS-LOC"):
        if (candidate / "train").is_dir() or (candidate / "val").is_dir():
            return candidate
    return root


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def _synset_mapping(root: Path) -> dict[str, str]:
    path = root / "LOC_synset_mapping.txt"
    if not path.is_file():
        return {}
    mapping = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            wnid, _, name = line.partition(" ")
            mapping[wnid] = name.strip()
    return mapping


def _wnids(root: Path, image_root: Path) -> list[str]:
    train = image_root / "train"
    if train.is_dir():
        return sorted(e.name for e in os.scandir(train) if e.is_dir())
    return sorted(_synset_mapping(root))


#: Objects of one image: ``(wnid, box, (annotation file, line))``.
Objects = list[tuple[str, list[int], tuple[str, int]]]


def _parse_prediction_csv(path: Path) -> dict[str, Objects]:
    """Kaggle ``LOC_*_solution.csv``: ``ImageId,PredictionString`` with ``wnid x0 y0 x1 y1`` groups."""
    result: dict[str, Objects] = {}
    with open(path, encoding="utf-8", newline="") as f:
        for line_number, row in enumerate(csv.reader(f), start=1):
            if line_number == 1 and row and row[0] == "ImageId":
                continue
            if len(row) != 2:
                raise MetadataError(path, line_number, f"expected ImageId,PredictionString, got {row}")
            tokens = row[1].split()
            if not tokens or len(tokens) % 5:
                raise MetadataError(
                    path, line_number, "PredictionString must hold groups of 'wnid x0 y0 x1 y1'"
                )
            objects = []
            for k in range(0, len(tokens), 5):
                try:
                    box = [int(float(v)) for v in tokens[k + 1 : k + 5]]
                except ValueError:
                    raise MetadataError(path, line_number, f"non-numeric box {tokens[k + 1:k + 5]}") from None
                objects.append((tokens[k], box, (str(path), line_number)))
            result[row[0]] = objects
    return result


_OBJECT_TAG = re.compile(rb"<object[\s>]")


def _parse_voc_xml(path: Path) -> Objects:
    """PASCAL-VOC objects; each one's source line is that of its ``<object>`` tag."""
    data = path.read_bytes()
    try:
        root = ET.fromstring(data)
    except ET.ParseError as err:
        raise MetadataError(path, err.position[0], f"malformed XML: {err}") from None
    tag_lines = [data.count(b"\n", 0, m.start()) + 1 for m in _OBJECT_TAG.finditer(data)]
    objects: Objects = []
    for position, obj in enumerate(root.iter("object")):
        line = tag_lines[position] if position < len(tag_lines) else 0
        box = obj.find("bndbox")
        try:
            coords = [int(float(box.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax")]  # type: ignore[union-attr]
        except (AttributeError, TypeError, ValueError):
            raise MetadataError(path, line, "object without a numeric bndbox xmin/ymin/xmax/ymax") from None
        objects.append((obj.findtext("name", ""), coords, (str(path), line)))
    return objects


def _scan_train(image_root: Path, wnids: list[str]) -> tuple[list[str], list[int]]:
    paths, labels = [], []
    for label, wnid in enumerate(wnids):
        names = sorted(e.name for e in os.scandir(image_root / "train" / wnid) if _is_image(e.name))
        paths += [f"train/{wnid}/{n}" for n in names]
        labels += [label] * len(names)
    return paths, labels


def _build_raw_index(
    root: Path, image_root: Path, split: str, wnids: list[str], drop_invalid_boxes: bool = False
) -> SplitIndex:
    label_of = {w: i for i, w in enumerate(wnids)}
    if split == "train":
        paths, labels = _scan_train(image_root, wnids)
        solution = root / "LOC_train_solution.csv"
        objects = _parse_prediction_csv(solution) if solution.is_file() else {}
        per_image = [objects.get(Path(p).stem, []) for p in paths]
        boxes = [[b for _, b, _ in found] for found in per_image]
        sources = [[source for _, _, source in found] for found in per_image]
        sizes = fit_boxes_to_images(
            "ILSVRC", split, image_root, paths, boxes, None, sources=sources, drop_invalid=drop_invalid_boxes
        )
        return SplitIndex.build(paths, labels, sizes, boxes)

    val_dir = image_root / "val"
    paths = sorted(
        os.path.relpath(os.path.join(d, n), image_root).replace(os.sep, "/")
        for d, _, files in os.walk(val_dir)
        for n in files
        if _is_image(n)
    )
    solution = root / "LOC_val_solution.csv"
    csv_objects = _parse_prediction_csv(solution) if solution.is_file() else {}
    labels, boxes, sources, missing = [], [], [], []
    for rel in paths:
        stem = Path(rel).stem
        if stem in csv_objects:
            objects = csv_objects[stem]
        else:
            xml = next(
                (
                    x
                    for x in (
                        image_root / Path(rel).with_suffix(".xml"),
                        root / "ILSVRC" / "Annotations" / "CLS-LOC" / "val" / f"{stem}.xml",
                    )
                    if x.is_file()
                ),
                None,
            )
            if xml is None:
                missing.append(image_root / Path(rel).with_suffix(".xml"))
                continue
            objects = _parse_voc_xml(xml)
        folder = rel.split("/")[1] if rel.count("/") == 2 else None
        wnid = folder if folder in label_of else (objects[0][0] if objects else "")
        if wnid not in label_of:
            raise MetadataError(
                solution if stem in csv_objects else image_root / rel,
                0,
                f"{rel}: WordNet id {wnid!r} is not one of the {len(wnids)} train classes",
            )
        labels.append(label_of[wnid])
        boxes.append([b for _, b, _ in objects])
        sources.append([source for _, _, source in objects])
    if missing:
        shown = [str(p) for p in missing[:20]] + (
            [f"... and {len(missing) - 20} more"] if len(missing) > 20 else []
        )
        raise DatasetNotFoundError(
            "ILSVRC", root, [solution, *shown], f"{len(missing)} val images have no box annotation. {HOW_TO}"
        )
    sizes = fit_boxes_to_images(
        "ILSVRC", split, image_root, paths, boxes, None, sources=sources, drop_invalid=drop_invalid_boxes
    )
    return SplitIndex.build(paths, labels, sizes, boxes)


def _metadata_class_names(example_ids: tuple[str, ...], wnids: list[str], mapping: dict[str, str]) -> list[str]:
    """Synset of each class: the folder of its ``train/<wnid>/`` image, else the sorted synsets, else the id."""
    names = []
    for label, example in enumerate(example_ids):
        parts = example.split("/")
        if len(parts) == 3 and parts[0] == "train":
            wnid = parts[1]
        elif label < len(wnids):
            wnid = wnids[label]
        else:
            names.append(str(label))
            continue
        names.append(mapping.get(wnid, wnid))
    return names


def build_ilsvrc(
    spec: ILSVRC, split: str, resize_size: int, crop_size: int, seed: int
) -> IndexedImageDataset:
    """One ILSVRC split (see the module docstring for the layouts and the val rule).

    ``spec`` gives the options; the other arguments are those of :meth:`DatasetSpec.build`.
    """
    root, metadata_dir, cache_dir = spec.root, spec.metadata_dir, spec.cache_dir
    num_val_sample_per_class = spec.num_val_sample_per_class
    if root is None or not Path(root).is_dir():
        raise DatasetNotFoundError("ILSVRC", root, [root if root is not None else "<root not set>"], HOW_TO)
    root = Path(root)
    cache = IndexCache(cache_dir, root)
    candidates = (
        [Path(metadata_dir), Path(metadata_dir) / "ILSVRC"]
        if metadata_dir is not None
        else [root / "metadata" / "ILSVRC", root / "metadata", root.parent.parent / "metadata" / "ILSVRC"]
    )
    metadata = next((c for c in candidates if (c / split).is_dir()), None)
    image_root = _image_root(root)
    wnids = _wnids(root, image_root)
    mapping = _synset_mapping(root)

    if metadata is not None or metadata_dir is not None:
        split_dir = (metadata or candidates[0]) / split
        check_split_dir("ILSVRC", root, split_dir, localization_required=split != "train", how_to=HOW_TO)
        log.info("ILSVRC %s: wsolevaluation metadata layout (metadata %s, images %s)", split, split_dir, root)
        synsets_from = (
            f"the synset folders of {image_root / 'train'}"
            if (image_root / "train").is_dir()
            else f"{root / 'LOC_synset_mapping.txt'}"
        )
        classes = metadata_classes(
            "ILSVRC", split_dir.parent, cache, limit=len(wnids) or None, limit_source=synsets_from
        )
        num_classes = classes.num_classes
        key = {
            "dataset": "ilsvrc",
            "layout": "metadata",
            "split": split,
            "files": metadata_signature(split_dir),
            "drop_invalid_boxes": spec.drop_invalid_boxes,
        }
        index = cache.load_or_build(
            key,
            lambda: build_metadata_index(
                "ILSVRC", split, root, split_dir, num_classes, "boxes", HOW_TO, spec.drop_invalid_boxes
            ),
        )
        image_root = root
        names = _metadata_class_names(classes.example_ids, wnids, mapping)
    elif (image_root / "train").is_dir() and (image_root / "val").is_dir():
        log.info("ILSVRC %s: raw train/<wnid>/ + val/ layout at %s", split, image_root)
        source = "test" if split == "test" else "train"
        annotations = ["LOC_train_solution.csv"] if source == "train" else ["LOC_val_solution.csv"]
        key = {
            "dataset": "ilsvrc",
            "layout": "raw",
            "split": source,
            "wnids": len(wnids),
            "files": file_signature(
                [image_root / source.replace("test", "val"), *(root / a for a in annotations)]
            ),
            "drop_invalid_boxes": spec.drop_invalid_boxes,
        }
        index = cache.load_or_build(
            key, lambda: _build_raw_index(root, image_root, source, wnids, spec.drop_invalid_boxes)
        )
        num_classes, names = len(wnids), [mapping.get(w, w) for w in wnids]
        if source == "train":
            has_boxes = np.diff(index.box_offsets) > 0
            if split == "val" and not has_boxes.any():
                raise DatasetNotFoundError(
                    "ILSVRC",
                    root,
                    [root / "LOC_train_solution.csv", root / "metadata" / "ILSVRC" / "val"],
                    "The raw layout has no val split: give the wsolevaluation metadata (ImageNetV2 val) or "
                    "LOC_train_solution.csv so val can be held out of the annotated train images. " + HOW_TO,
                )
            held_out = holdout_per_class(index.labels, has_boxes, FALLBACK_VAL_PER_CLASS, seed)
            if split == "val":
                warnings.warn(
                    f"ILSVRC raw layout has no val split (ImageNetV2); val = {FALLBACK_VAL_PER_CLASS} annotated train "
                    f"images per class held out with seed {seed} (not wsolevaluation's val)",
                    stacklevel=2,
                )
            index = index.subset(np.flatnonzero(held_out if split == "val" else ~held_out))
    else:
        looked_for = [c / split / "image_ids.txt" for c in candidates]
        looked_for += [image_root / "train", image_root / "val"]
        raise DatasetNotFoundError("ILSVRC", root, [p for p in looked_for if not p.exists()], HOW_TO)

    if split == "val":
        index = subsample_per_class(index, num_val_sample_per_class, seed)
    return IndexedImageDataset(index, image_root, split, resize_size, crop_size, num_classes, names)


__all__ = ["FALLBACK_VAL_PER_CLASS", "NUM_CLASSES", "build_ilsvrc"]


class ILSVRC(MetadataDatasetSpec):
    """ILSVRC 2012 (class folders with XML/CSV boxes, or the wsolevaluation metadata layout).

    Options: see :class:`~wsol_lightning.data.datasets.image_dataset.MetadataDatasetSpec`. The
    number of classes comes from the data (module docstring): 1,000 for the full ILSVRC.
    """

    name = "ilsvrc"

    def build(self, split: str, resize_size: int, crop_size: int, seed: int) -> IndexedImageDataset:
        return build_ilsvrc(self, split, resize_size, crop_size, seed)
