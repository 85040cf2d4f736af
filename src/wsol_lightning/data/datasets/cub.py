"""CUB-200-2011 in the wsolevaluation metadata layout or the original archive layout.

Layouts (auto-detected, one ``INFO`` line says which was found):

* **metadata** (wsolevaluation): ``<metadata>/{train,val,test}/{image_ids,class_labels,
  image_sizes,localization}.txt`` with image ids relative to the image root
  (``001.Black_footed_Albatross/....jpg``). The metadata folder is ``metadata_dir`` or the first
  of ``<root>/metadata/CUB``, ``<root>/metadata``, ``<root>/../../metadata/CUB`` (the
  wsolevaluation checkout: ``dataset/CUB`` next to ``metadata/CUB``). Images are looked up in
  ``<root>``, ``<root>/images`` and ``<root>/CUB_200_2011/images``, so the original archive's
  images work with it. ``val`` is CUBV2 (1,000 separate Flickr images) and must be downloaded.
* **original** archive ``CUB_200_2011/``: ``images.txt``, ``image_class_labels.txt``,
  ``train_test_split.txt``, ``bounding_boxes.txt`` (x, y, w, h), ``classes.txt``, ``images/``.
  Boxes become wsolevaluation's ``(x, y, min(x + w, W - 1), min(y + h, H - 1))``.
  This layout has **no val split** (CUBV2 is not in the archive). Fallback rule: ``val`` =
  :data:`FALLBACK_VAL_PER_CLASS` seeded images per class held out of CUB train, and removed from
  ``train`` so the splits stay disjoint (``test`` is untouched). A warning says that this val
  is not wsolevaluation's, so numbers chosen on it are not comparable to published ones.

Classes come from the data, so a CUB subset or a user's own data in either layout gets its
own number of classes (the full CUB-200-2011 has 200):

* metadata layout: ``max label + 1`` over the ``class_labels.txt`` of the ``train``, ``val`` and
  ``test`` splits present (0-based labels, used as written; an id without any image is named in
  a warning); a class is named after the folder of its images (``001.Albatross/...`` ->
  ``Albatross``);
* original layout: the lines ``<id> <folder>`` of ``classes.txt`` (ids ``1..K`` in order;
  class index = id - 1, name = folder without its number); without ``classes.txt``, the largest
  id of ``image_class_labels.txt``, named after the image folders.

GT boxes entirely outside their image are an error naming the annotation file and line, or are
dropped with that message as a warning (``drop_invalid_boxes``); boxes partly outside are
clipped with one warning naming the first few (file, line, image).

Per-image attributes (the spec's ``attributes``, off by default): the 312 binary ``is_present`` flags of
the original archive's ``attributes/image_attribute_labels.txt`` (lines ``image_id attribute_id
is_present certainty_id time``; only the first three are read, further fields are ignored; an
attribute without a line counts as absent). Names come from ``attributes/attributes.txt``
or the archive's top-level ``attributes.txt`` (which also fixes ``A``; 312 without one). The
wsolevaluation metadata has no attributes, so both layouts read them from the archive files, found
in the first of ``<root>``, ``<root>/CUB_200_2011`` and ``<root>/..`` (root = ``CUB_200_2011/images``)
holding ``images.txt`` and that file; its ``images.txt`` maps the split's image ids (the same
relative paths in both layouts) to attribute lines. An image of the split missing from
``images.txt`` (CUBV2 val images are not CUB_200_2011 images) or without any attribute line is an
error naming it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from wsol_lightning.data.datasets.image_dataset import (
    IndexedImageDataset,
    MetadataDatasetSpec,
    fit_boxes_to_images,
    holdout_per_class,
    require_files,
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

#: Classes of the full CUB-200-2011 (a dataset's own count comes from its data, see the module docstring).
NUM_CLASSES = 200
NUM_ATTRIBUTES = 312
ATTRIBUTE_LABELS = Path("attributes") / "image_attribute_labels.txt"
FALLBACK_VAL_PER_CLASS = 5
ORIGINAL_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "bounding_boxes.txt")
HOW_TO = (
    "Prepare CUB either as the original archive (extract CUB_200_2011.tgz and point root at CUB_200_2011/) "
    "or in the wsolevaluation layout (root = the image folder with 001.Black_footed_Albatross/..., metadata from "
    "github.com/clovaai/wsolevaluation metadata/CUB, passed as metadata_dir or placed at <root>/metadata/CUB); "
    "the val split (CUBV2) is downloaded separately, see the wsolevaluation README."
)
HOW_TO_ATTRIBUTES = (
    "CUB per-image attributes ship with the original CUB_200_2011 archive "
    "(attributes/image_attribute_labels.txt next to images.txt); with the wsolevaluation layout point root "
    "at CUB_200_2011/images or at a folder holding CUB_200_2011/, or set data.dataset.attributes: false."
)


def _metadata_candidates(root: Path, metadata_dir: str | Path | None) -> list[Path]:
    if metadata_dir is not None:
        base = Path(metadata_dir)
        return [base, base / "CUB"]
    return [root / "metadata" / "CUB", root / "metadata", root.parent.parent / "metadata" / "CUB"]


def _original_candidates(root: Path) -> list[Path]:
    return [root, root / "CUB_200_2011"]


def _image_root_for(root: Path, first_id: str | None) -> Path:
    candidates = [root, root / "images", root / "CUB_200_2011" / "images"]
    for candidate in candidates:
        if first_id is not None and (candidate / first_id).is_file():
            return candidate
    return root


def _class_name(image_id: str, label: int) -> str:
    """``001.Albatross/x.jpg`` -> ``Albatross``; an id without a folder (or none) -> the label."""
    if "/" not in image_id:
        return str(label)
    return image_id.split("/")[0].split(".", 1)[-1]


def _read_table(path: Path, num_fields: int) -> list[tuple[int, list[str]]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != num_fields:
                raise MetadataError(
                    path, line_number, f"expected {num_fields} space-separated fields, got {len(fields)}"
                )
            rows.append((line_number, fields))
    return rows


def _read_classes_txt(base: Path) -> list[str] | None:
    """Class names of ``classes.txt`` (lines ``<id> <folder>``, ids ``1..K`` in order); ``None`` without the file."""
    path = base / "classes.txt"
    if not path.is_file():
        return None
    names = []
    for expected, (line_number, (number, folder)) in enumerate(_read_table(path, 2), start=1):
        if number != str(expected):
            raise MetadataError(path, line_number, f"expected class id {expected} (ids 1..K in order), got {number!r}")
        names.append(folder.split(".", 1)[-1])
    if not names:
        raise MetadataError(path, 0, "no class listed")
    return names


def _original_classes(base: Path, index: SplitIndex) -> list[str]:
    """Class names of the original layout: ``classes.txt``, else the image folders of every label."""
    names = _read_classes_txt(base)
    if names is not None:
        return names
    names = [str(c) for c in range(int(index.labels.max()) + 1 if len(index) else 0)]
    for image_id, label in zip(reversed(list(index.image_paths)), index.labels[::-1]):
        names[int(label)] = _class_name(image_id, int(label))
    return names


def _build_original_index(base: Path, drop_invalid_boxes: bool = False) -> SplitIndex:
    """Every image of the archive; ``groups`` holds ``is_train`` (1 train, 0 test).

    Class ids must lie in ``1..K`` for the ``K`` classes of ``classes.txt`` (any id ``>= 1``
    without that file).
    """
    class_names = _read_classes_txt(base)
    num_classes = None if class_names is None else len(class_names)
    rows = {
        name: _read_table(base / name, n)
        for name, n in (
            ("images.txt", 2),
            ("image_class_labels.txt", 2),
            ("train_test_split.txt", 2),
            ("bounding_boxes.txt", 5),
        )
    }
    paths: dict[str, str] = {}
    for _, (key, rel) in rows["images.txt"]:
        paths[key] = rel
    order = list(paths)
    position = {key: i for i, key in enumerate(order)}

    def row_of(name: str, line_number: int, key: str) -> int:
        if key not in position:
            raise MetadataError(base / name, line_number, f"image id {key} is not in images.txt")
        return position[key]

    labels = np.full(len(order), -1, np.int64)
    for line_number, (key, cls) in rows["image_class_labels.txt"]:
        label = int(cls) - 1 if cls.isdigit() else -1
        if label < 0 or (num_classes is not None and label >= num_classes):
            valid = "[1, ...)" if num_classes is None else f"[1, {num_classes}] (the classes of classes.txt)"
            raise MetadataError(base / "image_class_labels.txt", line_number, f"class id {cls} out of range {valid}")
        labels[row_of("image_class_labels.txt", line_number, key)] = label
    is_train = np.full(len(order), -1, np.int64)
    for line_number, (key, flag) in rows["train_test_split.txt"]:
        if flag not in ("0", "1"):
            raise MetadataError(
                base / "train_test_split.txt", line_number, f"is_training_image must be 0 or 1, got {flag!r}"
            )
        is_train[row_of("train_test_split.txt", line_number, key)] = int(flag)
    boxes: list[list[list[int]]] = [[] for _ in order]
    sources: list[list[tuple[str, int]]] = [[] for _ in order]
    for line_number, (key, *xywh) in rows["bounding_boxes.txt"]:
        try:
            x, y, w, h = (int(float(v)) for v in xywh)
        except ValueError:
            raise MetadataError(base / "bounding_boxes.txt", line_number, f"non-numeric box {xywh}") from None
        row = row_of("bounding_boxes.txt", line_number, key)
        boxes[row].append([x, y, x + w, y + h])
        sources[row].append((str(base / "bounding_boxes.txt"), line_number))
    for name, values in (("image_class_labels.txt", labels), ("train_test_split.txt", is_train)):
        if (values < 0).any():
            missing = order[int(np.flatnonzero(values < 0)[0])]
            raise MetadataError(base / name, 0, f"image id {missing} of images.txt has no line")
    image_paths = [paths[k] for k in order]
    image_root = base / "images"
    require_files("CUB", image_root, image_paths, HOW_TO)
    sizes = fit_boxes_to_images(
        "CUB", "all", image_root, image_paths, boxes, None, far_edge_rule=True, sources=sources,
        drop_invalid=drop_invalid_boxes,
    )
    return SplitIndex.build(image_paths, labels, sizes, boxes, groups=is_train)


def build_cub(
    spec: CUB, split: str, resize_size: int, crop_size: int, seed: int, load_attributes: bool = False
) -> IndexedImageDataset:
    """One CUB split (see the module docstring for the layouts and the val rule).

    ``spec`` gives the options; the other arguments are those of :meth:`DatasetSpec.build`. ``load_attributes``: samples carry the split's per-image ``attributes``.
    """
    root, metadata_dir, cache_dir = spec.root, spec.metadata_dir, spec.cache_dir
    num_val_sample_per_class = spec.num_val_sample_per_class
    if root is None or not Path(root).is_dir():
        raise DatasetNotFoundError("CUB", root, [root if root is not None else "<root not set>"], HOW_TO)
    root = Path(root)
    cache = IndexCache(cache_dir, root)
    metadata = next(
        (
            c
            for c in _metadata_candidates(root, metadata_dir)
            if (c / "train").is_dir() or (c / split).is_dir()
        ),
        None,
    )
    original = next((c for c in _original_candidates(root) if (c / "images.txt").is_file()), None)

    if metadata is not None:
        split_dir = metadata / split
        check_split_dir("CUB", root, split_dir, localization_required=split != "train", how_to=HOW_TO)
        first_id = (split_dir / "image_ids.txt").read_text(encoding="utf-8").split("\n", 1)[0].strip() or None
        image_root = _image_root_for(root, first_id)
        log.info(
            "CUB %s: wsolevaluation metadata layout (metadata %s, images %s)", split, split_dir, image_root
        )
        classes = metadata_classes("CUB", metadata, cache)
        num_classes = classes.num_classes
        key = {
            "dataset": "cub",
            "layout": "metadata",
            "split": split,
            "image_root": str(image_root.resolve()),
            "files": metadata_signature(split_dir),
            "drop_invalid_boxes": spec.drop_invalid_boxes,
        }
        index = cache.load_or_build(
            key,
            lambda: build_metadata_index(
                "CUB", split, image_root, split_dir, num_classes, "boxes", HOW_TO, spec.drop_invalid_boxes
            ),
        )
        names = [_class_name(example, c) for c, example in enumerate(classes.example_ids)]
    elif original is not None:
        missing = [original / f for f in ORIGINAL_FILES if not (original / f).is_file()]
        if missing:
            raise DatasetNotFoundError("CUB", root, missing, HOW_TO)
        image_root = original / "images"
        log.info(
            "CUB %s: original CUB_200_2011 archive layout at %s (no CUBV2 val: see the fallback rule)",
            split,
            original,
        )
        key = {
            "dataset": "cub",
            "layout": "original",
            "split": "all",
            "files": file_signature(original / f for f in (*ORIGINAL_FILES, "classes.txt")),
            "drop_invalid_boxes": spec.drop_invalid_boxes,
        }
        everything = cache.load_or_build(key, lambda: _build_original_index(original, spec.drop_invalid_boxes))
        train_rows = everything.groups == 1
        held_out = holdout_per_class(everything.labels, train_rows, FALLBACK_VAL_PER_CLASS, seed)
        rows = {"train": train_rows & ~held_out, "val": held_out, "test": everything.groups == 0}[split]
        if split == "val":
            warnings.warn(
                f"CUB original layout has no val split (CUBV2); val = {FALLBACK_VAL_PER_CLASS} images per class held "
                f"out of train with seed {seed} (not wsolevaluation's val; thresholds/HPs chosen on it are not "
                "comparable to published ones)",
                stacklevel=2,
            )
        names = _original_classes(original, everything)
        num_classes = len(names)
        source = original / ("classes.txt" if (original / "classes.txt").is_file() else "image_class_labels.txt")
        log.info("CUB: %d classes (%s)", num_classes, source)
        index = everything.subset(np.flatnonzero(rows))
    else:
        looked_for = [c / "train" / "image_ids.txt" for c in _metadata_candidates(root, metadata_dir)]
        looked_for += [c / "images.txt" for c in _original_candidates(root)]
        raise DatasetNotFoundError("CUB", root, looked_for, HOW_TO)

    if split == "val":
        index = subsample_per_class(index, num_val_sample_per_class, seed)
    attributes = None
    if load_attributes:
        candidates = [root, root / "CUB_200_2011", root.parent]
        found = [c for c in candidates if (c / "images.txt").is_file() and (c / ATTRIBUTE_LABELS).is_file()]
        if not found:
            looked_for = [c / ATTRIBUTE_LABELS for c in candidates]
            raise DatasetNotFoundError("CUB attributes", root, looked_for, HOW_TO_ATTRIBUTES)
        labels_file = found[0] / ATTRIBUTE_LABELS
        attributes = read_image_attributes(found[0], list(index.image_paths))
        log.info("CUB %s: %d attributes per image from %s", split, attributes.shape[1], labels_file)
    return IndexedImageDataset(
        index, image_root, split, resize_size, crop_size, num_classes, names, attributes=attributes
    )


def attribute_names(base: Path) -> list[str]:
    """Attribute names of ``attributes/attributes.txt`` or ``../attributes.txt`` (ids ``1..A`` in order).

    Without either file: ``attribute_1`` ... ``attribute_312``.
    """
    for path in (base / "attributes" / "attributes.txt", base.parent / "attributes.txt"):
        if path.is_file():
            rows = _read_table(path, 2)
            for expected, (line_number, (number, _)) in enumerate(rows, start=1):
                if number != str(expected):
                    problem = f"expected attribute id {expected}, got {number!r}"
                    raise MetadataError(path, line_number, problem)
            return [name for _, (_, name) in rows]
    return [f"attribute_{k}" for k in range(1, NUM_ATTRIBUTES + 1)]


def read_image_attributes(base: Path, image_paths: Sequence[str]) -> np.ndarray:
    """``uint8 [len(image_paths), A]``: ``is_present`` of every attribute of every listed image.

    ``base`` is the ``CUB_200_2011`` folder (``images.txt``, ``attributes/``); ``image_paths`` are
    paths relative to ``base/images`` as in ``images.txt``. Malformed lines and images that are not
    in ``images.txt`` or have no attribute line raise :class:`MetadataError` naming file and line.
    """
    names = attribute_names(base)
    key_of = {rel: key for _, (key, rel) in _read_table(base / "images.txt", 2)}
    row_of_key: dict[str, int] = {}
    for row, rel in enumerate(image_paths):
        if rel not in key_of:
            raise MetadataError(
                base / "images.txt", 0,
                f"image {rel} is not listed, so it has no attributes (only CUB_200_2011 images have "
                "them; CUBV2 val images do not)",
            )
        row_of_key[key_of[rel]] = row
    known_keys = set(key_of.values())
    attribute_ids = {str(k): k - 1 for k in range(1, len(names) + 1)}
    values = np.zeros((len(image_paths), len(names)), np.uint8)
    listed = np.zeros(len(image_paths), bool)
    path = base / ATTRIBUTE_LABELS
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 4:
                raise MetadataError(
                    path, line_number,
                    f"expected 'image_id attribute_id is_present certainty_id time', got {len(fields)} "
                    "field(s)",
                )
            key, attribute, present = fields[0], fields[1], fields[2]
            column = attribute_ids.get(attribute)
            if column is None:
                problem = f"attribute id {attribute!r} out of range [1, {len(names)}]"
                raise MetadataError(path, line_number, problem)
            if present not in ("0", "1"):
                raise MetadataError(path, line_number, f"is_present must be 0 or 1, got {present!r}")
            row = row_of_key.get(key)
            if row is None:
                if key not in known_keys:
                    raise MetadataError(path, line_number, f"image id {key} is not in images.txt")
                continue
            values[row, column] = present == "1"
            listed[row] = True
    if not listed.all():
        rel = image_paths[int(np.flatnonzero(~listed)[0])]
        problem = f"image id {key_of[rel]} ({rel}) has no line; every image of the split needs its attributes"
        raise MetadataError(path, 0, problem)
    return values


__all__ = [
    "FALLBACK_VAL_PER_CLASS",
    "NUM_ATTRIBUTES",
    "NUM_CLASSES",
    "attribute_names",
    "build_cub",
    "read_image_attributes",
]


class CUB(MetadataDatasetSpec):
    """CUB-200-2011 (original archive or wsolevaluation metadata layout; see the module docstring).

    Args:
        root: the image folder (``001.Black_footed_Albatross/...``) with ``metadata/CUB`` beside or
            in ``metadata_dir``, or the original ``CUB_200_2011`` folder.
        metadata_dir: see :class:`~wsol_lightning.data.datasets.image_dataset.MetadataDatasetSpec`.
        cache_dir: see :class:`~wsol_lightning.data.datasets.image_dataset.MetadataDatasetSpec`.
        num_val_sample_per_class: see :class:`~wsol_lightning.data.datasets.image_dataset.MetadataDatasetSpec`.
        attributes: training samples carry CUB's 312 per-image binary attributes
            (``attributes/image_attribute_labels.txt``; I2C's ``consistency_unit: attribute``).
        drop_invalid_boxes: see :class:`~wsol_lightning.data.datasets.image_dataset.MetadataDatasetSpec`.

    The number of classes (and their names) comes from the data (module docstring): 200 for the
    full CUB, ``K`` for a ``classes.txt`` of ``K`` lines or metadata labels ``0..K-1``.
    """

    name = "cub"

    def __init__(
        self,
        root: str,
        metadata_dir: str | None = None,
        cache_dir: str | None = None,
        num_val_sample_per_class: int = 0,
        attributes: bool = False,
        drop_invalid_boxes: bool = False,
    ) -> None:
        super().__init__(root, metadata_dir, cache_dir, num_val_sample_per_class, drop_invalid_boxes)
        self.attributes = attributes

    def build(self, split: str, resize_size: int, crop_size: int, seed: int) -> IndexedImageDataset:
        return build_cub(self, split, resize_size, crop_size, seed, self.attributes and split == "train")
