"""Reader of the wsolevaluation metadata format (``metadata/<DATASET>/<split>/*.txt``).

Per split directory, comma-separated, no header, no trailing newline required:

* ``image_ids.txt``: ``image_id`` (the split's order; path relative to the image root);
* ``class_labels.txt``: ``image_id,label`` (0-based);
* ``image_sizes.txt``: ``image_id,width,height`` (may be empty: OpenImages, ILSVRC train);
* ``localization.txt``: boxes ``image_id,x0,y0,x1,y1`` (inclusive, original frame, one line
  per box; an image's boxes are all kept) or masks ``image_id,mask_path,ignore_path``
  (one line per instance mask; the ignore path only on an image's first line).

Every problem raises :class:`~wsol_lightning.data.errors.MetadataError` with ``file:line``.

Classes come from the data: :func:`metadata_classes` reads the labels of every split present
(``train``, ``val``, ``test``) and gives ``max label + 1`` classes (labels are used as written;
ids without any image are named in a warning), with one image id of each class for its name.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from wsol_lightning.data.datasets.image_dataset import BoxSource, fit_boxes_to_images, require_files
from wsol_lightning.data.datasets.split_index import NO_SIZE, IndexCache, SplitIndex, file_signature
from wsol_lightning.data.errors import DatasetNotFoundError, MetadataError

log = logging.getLogger(__name__)

METADATA_FILES = ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")
SPLITS = ("train", "val", "test")
LocalizationKind = Literal["boxes", "masks"]


def read_records(path: Path, num_fields: int | tuple[int, ...]) -> Iterator[tuple[int, list[str]]]:
    """``(line_number, fields)`` of every non-blank line, checking the field count."""
    allowed = (num_fields,) if isinstance(num_fields, int) else num_fields
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split(",")
            if len(fields) not in allowed:
                raise MetadataError(
                    path,
                    line_number,
                    f"expected {' or '.join(map(str, allowed))} comma-separated "
                    f"fields, got {len(fields)}: {line!r}",
                )
            yield line_number, fields


def _int_field(path: Path, line_number: int, text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise MetadataError(path, line_number, f"{what} must be an integer, got {text!r}") from None


def _known_id(path: Path, line_number: int, image_id: str, positions: dict[str, int]) -> int:
    if image_id not in positions:
        raise MetadataError(path, line_number, f"image_id {image_id!r} is not in image_ids.txt")
    return positions[image_id]


def split_files(split_dir: Path) -> dict[str, Path]:
    return {name: split_dir / name for name in METADATA_FILES}


def check_split_dir(
    dataset: str, root: Path | None, split_dir: Path, localization_required: bool, how_to: str
) -> None:
    """Raise :class:`DatasetNotFoundError` naming every required metadata file that is missing."""
    required = ["image_ids.txt", "class_labels.txt"] + (["localization.txt"] if localization_required else [])
    missing = [split_dir / name for name in required if not (split_dir / name).is_file()]
    if missing:
        raise DatasetNotFoundError(dataset, root, missing, how_to)


@dataclass
class ParsedSplit:
    """One metadata split directory, parsed (see :func:`read_split`)."""

    image_ids: list[str]
    labels: np.ndarray
    sizes: np.ndarray
    boxes: list[list[list[int]]]
    mask_paths: list[list[str]]
    ignore_paths: list[str]
    #: ``box_sources[i][k]``: ``(localization.txt, line)`` of ``boxes[i][k]``.
    box_sources: list[list[BoxSource]]


def parse_split(
    split_dir: Path, num_classes: int | None, kind: LocalizationKind
) -> tuple[list[str], np.ndarray, np.ndarray, list[list[list[int]]], list[list[str]], list[str]]:
    """Parse one split directory.

    Returns image ids, labels ``int64 [N]``, listed sizes ``int32 [N, 2]`` (``-1`` unlisted),
    per-image boxes, per-image mask paths and per-image ignore paths (:func:`read_split` also
    gives where every box was read).
    """
    parsed = read_split(split_dir, num_classes, kind)
    return parsed.image_ids, parsed.labels, parsed.sizes, parsed.boxes, parsed.mask_paths, parsed.ignore_paths


def read_split(split_dir: Path, num_classes: int | None, kind: LocalizationKind) -> ParsedSplit:
    """Parse one split directory; labels must lie in ``[0, num_classes)`` (``None``: any ``>= 0``)."""
    files = split_files(split_dir)
    image_ids: list[str] = []
    positions: dict[str, int] = {}
    for line_number, (image_id,) in read_records(files["image_ids.txt"], 1):
        if image_id in positions:
            raise MetadataError(files["image_ids.txt"], line_number, f"duplicate image_id {image_id!r}")
        positions[image_id] = len(image_ids)
        image_ids.append(image_id)
    n = len(image_ids)

    labels = np.full(n, -1, np.int64)
    path = files["class_labels.txt"]
    for line_number, (image_id, label_text) in read_records(path, 2):
        label = _int_field(path, line_number, label_text, "label")
        if label < 0 or (num_classes is not None and label >= num_classes):
            valid = "[0, ...)" if num_classes is None else f"[0, {num_classes - 1}]"
            raise MetadataError(path, line_number, f"class id {label} out of range {valid}")
        labels[_known_id(path, line_number, image_id, positions)] = label
    if (labels < 0).any():
        first = int(np.flatnonzero(labels < 0)[0])
        raise MetadataError(
            files["image_ids.txt"], first + 1, f"image_id {image_ids[first]!r} has no line in {path.name}"
        )

    sizes = np.full((n, 2), NO_SIZE, np.int32)
    path = files["image_sizes.txt"]
    if path.is_file():
        for line_number, (image_id, w_text, h_text) in read_records(path, 3):
            width = _int_field(path, line_number, w_text, "width")
            height = _int_field(path, line_number, h_text, "height")
            if width <= 0 or height <= 0:
                raise MetadataError(path, line_number, f"image size must be positive, got {width}x{height}")
            sizes[_known_id(path, line_number, image_id, positions)] = (width, height)

    boxes: list[list[list[int]]] = [[] for _ in range(n)]
    box_sources: list[list[BoxSource]] = [[] for _ in range(n)]
    mask_paths: list[list[str]] = [[] for _ in range(n)]
    ignore_paths = [""] * n
    path = files["localization.txt"]
    if path.is_file():
        if kind == "boxes":
            for line_number, (image_id, *coords) in read_records(path, 5):
                box = [
                    _int_field(path, line_number, c, name)
                    for c, name in zip(coords, ("x0", "y0", "x1", "y1"))
                ]
                if box[2] < box[0] or box[3] < box[1]:
                    raise MetadataError(path, line_number, f"box {box} has x1 < x0 or y1 < y0")
                i = _known_id(path, line_number, image_id, positions)
                boxes[i].append(box)
                box_sources[i].append((str(path), line_number))
        else:
            for line_number, (image_id, mask_path, ignore_path) in read_records(path, 3):
                i = _known_id(path, line_number, image_id, positions)
                if not mask_path:
                    raise MetadataError(path, line_number, "empty mask path")
                mask_paths[i].append(mask_path)
                if ignore_path:
                    if ignore_paths[i]:
                        raise MetadataError(path, line_number, f"second ignore mask for {image_id!r}")
                    ignore_paths[i] = ignore_path
    return ParsedSplit(image_ids, labels, sizes, boxes, mask_paths, ignore_paths, box_sources)


def build_metadata_index(
    dataset: str,
    split: str,
    image_root: Path,
    split_dir: Path,
    num_classes: int | None,
    kind: LocalizationKind,
    how_to: str,
    drop_invalid_boxes: bool = False,
) -> SplitIndex:
    """Parse a split, check every listed file is on disk, fit the boxes to the real image sizes.

    Args:
        dataset: name used in messages.
        split: split name used in messages.
        image_root: folder the image ids (and mask paths) are relative to.
        split_dir: the metadata split directory.
        num_classes: labels must lie in ``[0, num_classes)`` (``None``: any ``>= 0``).
        kind: ``boxes`` or ``masks`` localization.
        how_to: how to get missing files (appended to the not-found error).
        drop_invalid_boxes: drop boxes entirely outside their image with a warning instead of
            raising (see :func:`~wsol_lightning.data.datasets.image_dataset.fit_boxes_to_images`).
    """
    parsed = read_split(split_dir, num_classes, kind)
    require_files(dataset, image_root, parsed.image_ids, how_to)
    if kind == "masks":
        listed = [p for per_image in parsed.mask_paths for p in per_image] + [p for p in parsed.ignore_paths if p]
        require_files(dataset, image_root, listed, how_to, what="masks")
        real_sizes = parsed.sizes
    else:
        real_sizes = fit_boxes_to_images(
            dataset, split, image_root, parsed.image_ids, parsed.boxes, parsed.sizes,
            sources=parsed.box_sources, drop_invalid=drop_invalid_boxes,
        )
    return SplitIndex.build(
        parsed.image_ids, parsed.labels, real_sizes, parsed.boxes, parsed.mask_paths, parsed.ignore_paths
    )


@dataclass(frozen=True)
class MetadataClasses:
    """The classes of a metadata folder: ``max label + 1`` over its splits.

    Attributes:
        num_classes: number of classes.
        example_ids: an image id of every class (the first listed, ``train`` first; ``""`` for an
            id without any image), from which the datasets take the class names (folders).
    """

    num_classes: int
    example_ids: tuple[str, ...]


def _class_label_files(metadata: Path) -> list[Path]:
    return [metadata / s / "class_labels.txt" for s in SPLITS if (metadata / s / "class_labels.txt").is_file()]


def _scan_classes(files: list[Path], limit: int | None, limit_source: str) -> SplitIndex:
    examples: dict[int, str] = {}
    for path in files:
        for line_number, (image_id, label_text) in read_records(path, 2):
            label = _int_field(path, line_number, label_text, "label")
            if label < 0:
                raise MetadataError(path, line_number, f"class id {label} out of range [0, ...)")
            if limit is not None and label >= limit:
                problem = f"class id {label} out of range [0, {limit - 1}] (the {limit} classes of {limit_source})"
                raise MetadataError(path, line_number, problem)
            examples.setdefault(label, image_id)
    count = max(examples) + 1 if examples else 0
    return SplitIndex.build([examples.get(c, "") for c in range(count)], list(range(count)))


def metadata_classes(
    dataset: str,
    metadata: Path,
    cache: IndexCache | None = None,
    limit: int | None = None,
    limit_source: str = "",
) -> MetadataClasses:
    """The classes of the metadata splits under ``metadata`` (``<metadata>/{train,val,test}``).

    Every split's ``class_labels.txt`` counts, so all splits of a dataset get the same classes.
    Labels are used as written: ``max label + 1`` classes; ids without an image in any split are
    named in a warning (their outputs are never trained). Negative labels, and labels ``>= limit``
    when the class list is known otherwise (``limit``: how many, ``limit_source``: from where, e.g.
    ILSVRC's synset folders), raise :class:`MetadataError` naming file and line. The scan is cached
    in ``cache`` (keyed by the files' sizes and times).
    """
    files = _class_label_files(metadata)
    key = {
        "dataset": dataset.lower(),
        "layout": "metadata",
        "split": "classes",
        "limit": limit,
        "files": file_signature(files),
    }

    def build() -> SplitIndex:
        return _scan_classes(files, limit, limit_source)

    table = cache.load_or_build(key, build) if cache is not None else build()
    num_classes = len(table)
    if num_classes == 0:
        raise MetadataError(
            files[0] if files else metadata / "train" / "class_labels.txt", 0, "no labelled image in any split"
        )
    examples = tuple(table.image_paths)
    missing = [c for c, example in enumerate(examples) if not example]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        warnings.warn(
            f"{dataset}: class ids {shown} have no image in the splits under {metadata} (labels are used as written, "
            f"so the model gets {num_classes} outputs; renumber the labels 0..K-1 to drop the empty ones)",
            stacklevel=2,
        )
    log.info(
        "%s: %d classes (labels of %s)", dataset, num_classes, ", ".join(f"{p.parent.name}/{p.name}" for p in files)
    )
    return MetadataClasses(num_classes, examples)


def metadata_signature(split_dir: Path) -> list[tuple[str, int, int]]:
    """Cache-key part of a metadata split directory."""
    return file_signature(split_files(split_dir).values())
