"""Reader of the wsolevaluation metadata format (``metadata/<DATASET>/<split>/*.txt``).

Per split directory, comma-separated, no header, no trailing newline required:

* ``image_ids.txt``: ``image_id`` (the split's order; path relative to the image root);
* ``class_labels.txt``: ``image_id,label`` (0-based);
* ``image_sizes.txt``: ``image_id,width,height`` (may be empty: OpenImages, ILSVRC train);
* ``localization.txt``: boxes ``image_id,x0,y0,x1,y1`` (inclusive, original frame, one line
  per box; an image's boxes are all kept) or masks ``image_id,mask_path,ignore_path``
  (one line per instance mask; the ignore path only on an image's first line).

Every problem raises :class:`~wsol_lightning.data.errors.MetadataError` with ``file:line``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np

from wsol_lightning.data.datasets.image_dataset import fit_boxes_to_images, require_files
from wsol_lightning.data.datasets.split_index import NO_SIZE, SplitIndex, file_signature
from wsol_lightning.data.errors import DatasetNotFoundError, MetadataError

METADATA_FILES = ("image_ids.txt", "class_labels.txt", "image_sizes.txt", "localization.txt")
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


def parse_split(
    split_dir: Path, num_classes: int, kind: LocalizationKind
) -> tuple[list[str], np.ndarray, np.ndarray, list[list[list[int]]], list[list[str]], list[str]]:
    """Parse one split directory.

    Returns image ids, labels ``int64 [N]``, listed sizes ``int32 [N, 2]`` (``-1`` unlisted),
    per-image boxes, per-image mask paths and per-image ignore paths.
    """
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
        if not 0 <= label < num_classes:
            raise MetadataError(path, line_number, f"class id {label} out of range [0, {num_classes - 1}]")
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
                boxes[_known_id(path, line_number, image_id, positions)].append(box)
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
    return image_ids, labels, sizes, boxes, mask_paths, ignore_paths


def build_metadata_index(
    dataset: str,
    split: str,
    image_root: Path,
    split_dir: Path,
    num_classes: int,
    kind: LocalizationKind,
    how_to: str,
) -> SplitIndex:
    """Parse a split, check every listed file is on disk, fit the boxes to the real image sizes.

    Args:
        dataset: name used in messages.
        split: split name used in messages.
        image_root: folder the image ids (and mask paths) are relative to.
        split_dir: the metadata split directory.
        num_classes: labels must lie in ``[0, num_classes)``.
        kind: ``boxes`` or ``masks`` localization.
        how_to: how to get missing files (appended to the not-found error).
    """
    image_ids, labels, sizes, boxes, mask_paths, ignore_paths = parse_split(split_dir, num_classes, kind)
    require_files(dataset, image_root, image_ids, how_to)
    if kind == "masks":
        listed = [p for per_image in mask_paths for p in per_image] + [p for p in ignore_paths if p]
        require_files(dataset, image_root, listed, how_to, what="masks")
        real_sizes = sizes
    else:
        real_sizes = fit_boxes_to_images(dataset, split, image_root, image_ids, boxes, sizes)
    return SplitIndex.build(image_ids, labels, real_sizes, boxes, mask_paths, ignore_paths)


def metadata_signature(split_dir: Path) -> list[tuple[str, int, int]]:
    """Cache-key part of a metadata split directory."""
    return file_signature(split_files(split_dir).values())
