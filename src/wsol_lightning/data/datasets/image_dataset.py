"""Shared machinery of the on-disk readers: image decoding, index-time checks, the indexed dataset.

Images are decoded with OpenCV as RGB uint8. EXIF orientation is ignored, as PIL's
``Image.open(...).convert("RGB")`` in wsolevaluation ignores it (boxes refer to the stored
pixel grid). Grayscale images are replicated to three channels, so every backbone's RGB stem
and its normalization constants apply unchanged (MRI slices included).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from wsol_lightning.data.datasets.base import DatasetSpec, RawSample, WSOLDataset
from wsol_lightning.data.datasets.split_index import NO_SIZE, SplitIndex
from wsol_lightning.data.errors import CorruptImageError, DatasetNotFoundError, MetadataError

log = logging.getLogger(__name__)

IGNORE_VALUE = 255
_RGB_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
_ANY_FLAGS = cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Min-max scale a high-bit-depth or float scan to uint8 (uint8 input is returned as is)."""
    if array.dtype == np.uint8:
        return array
    array = array.astype(np.float32)
    low, high = float(array.min()), float(array.max())
    if high <= low:
        return np.zeros(array.shape, np.uint8)
    return np.round((array - low) * (255.0 / (high - low))).astype(np.uint8)


def read_image(path: str | Path, scan: bool = False) -> np.ndarray:
    """Decode an image as ``[H, W, 3]`` uint8 RGB.

    Args:
        path: image file.
        scan: medical slice: read at its own bit depth and min-max scale 16-bit/float data to
            uint8 (natural images are decoded straight to 8-bit RGB).
    """
    path = str(path)
    image = cv2.imread(path, _ANY_FLAGS if scan else _RGB_FLAGS)
    if image is None:
        if not os.path.exists(path):
            raise FileNotFoundError(f"image listed in the index is missing on disk: {path}")
        raise CorruptImageError(path)
    if image.ndim == 2:
        image = _to_uint8(image)
        return np.repeat(image[:, :, None], 3, axis=2)
    image = _to_uint8(image[:, :, :3])
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_binary_mask(
    path: str | Path, shape: tuple[int, int] | None = None, threshold: int = 0
) -> np.ndarray:
    """A mask file as ``[H, W]`` bool (pixels ``> threshold`` are foreground), resized (nearest) to ``shape``.

    The default (any non-zero pixel) is the reference's rule for lossless masks; lossy JPEG masks
    need ``threshold=127``.
    """
    path = str(path)
    mask = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if mask is None:
        if not os.path.exists(path):
            raise FileNotFoundError(f"mask listed in the index is missing on disk: {path}")
        raise CorruptImageError(path)
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    if shape is not None and mask.shape != tuple(shape):
        mask = cv2.resize(mask, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return mask > threshold


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file header only (no decoding)."""
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise CorruptImageError(path, f"cannot read the image header ({err})") from err


def find_missing_files(root: Path, relative_paths: Sequence[str]) -> list[Path]:
    """Listed files absent under ``root``; one ``scandir`` per folder instead of one ``stat`` per file."""
    by_folder: dict[str, list[str]] = defaultdict(list)
    for rel in relative_paths:
        folder, _, name = rel.rpartition("/")
        by_folder[folder].append(name)
    missing = []
    for folder, names in by_folder.items():
        directory = root / folder if folder else root
        try:
            present = {entry.name for entry in os.scandir(directory)}
        except (FileNotFoundError, NotADirectoryError):
            present = set()
        missing += [directory / n for n in names if n not in present]
    return missing


def require_files(
    dataset: str, root: Path, relative_paths: Sequence[str], how_to: str, what: str = "images"
) -> None:
    """Raise :class:`DatasetNotFoundError` naming every listed file that is not on disk."""
    missing = find_missing_files(root, relative_paths)
    if missing:
        shown = [str(p) for p in missing[:20]]
        if len(missing) > 20:
            shown.append(f"... and {len(missing) - 20} more {what}")
        raise DatasetNotFoundError(
            dataset, root, shown, f"{len(missing)} {what} listed in the split are not on disk. {how_to}"
        )


#: Where a box was read: ``(annotation file, line)``; line ``0`` when the file has no line numbers.
BoxSource = tuple[str, int]

#: Dropped boxes warned about one by one (``drop_invalid_boxes``); the rest are counted in one warning.
MAX_DROP_WARNINGS = 20


def _box_text(box: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(v)) for v in box) + "]"


def invalid_box_problem(box: Sequence[int], image: Path, width: int, height: int) -> str | None:
    """Why a box cannot be used on its ``width x height`` image, or ``None`` for a usable box.

    A box is unusable when it lies entirely outside the image (no pixel in common with
    ``[0, W - 1] x [0, H - 1]``) or is empty (``x1 < x0`` or ``y1 < y0``).
    """
    x0, y0, x1, y1 = (int(v) for v in box)
    if x1 < x0 or y1 < y0:
        return f"box {_box_text(box)} of image {image} is empty (x1 < x0 or y1 < y0)"
    if x0 > width - 1 or y0 > height - 1 or x1 < 0 or y1 < 0:
        return f"box {_box_text(box)} lies entirely outside its image {image} ({width}x{height})"
    return None


def fit_boxes_to_images(
    dataset: str,
    split: str,
    image_root: Path,
    image_paths: Sequence[str],
    boxes: list[list[list[int]]],
    listed_sizes: np.ndarray | None,
    far_edge_rule: bool = False,
    sources: Sequence[Sequence[BoxSource]] | None = None,
    drop_invalid: bool = False,
) -> np.ndarray:
    """Read the real size of every annotated image; rescale, clip or drop its boxes in place.

    * A size in ``image_sizes.txt`` that differs from the image: one warning counting them
      (naming the first few); the boxes are scaled by ``real / listed`` (they were drawn on
      the listed size).
    * A box partly outside the image: clipped to ``[0, W - 1] x [0, H - 1]``; one warning counts
      them and names the first few by annotation file, line and image.
    * A box entirely outside the image, or empty (``x1 < x0``): a
      :class:`~wsol_lightning.data.errors.MetadataError` naming the annotation file, the line and the
      image; with ``drop_invalid`` (the dataset option ``drop_invalid_boxes``) the box is dropped
      instead, with the same message as a warning.
    * ``far_edge_rule``: boxes made from CUB's ``(x, y, w, h)`` as ``(x, y, x + w, y + h)`` get
      wsolevaluation's ``x1 = min(x + w, W - 1)``, ``y1 = min(y + h, H - 1)`` without a warning.

    Args:
        sources: ``sources[i][k]``: the :data:`BoxSource` of ``boxes[i][k]`` (``None``: unknown,
            messages then name the dataset and split instead of a file).
        drop_invalid: drop unusable boxes with a warning instead of raising.

    Returns the real sizes ``int32 [N, 2]`` (width, height); images without boxes and without
    a listed size are not opened (``-1``).
    """
    sizes = np.full((len(image_paths), 2), NO_SIZE, np.int32)
    mismatched: list[str] = []
    clipped: list[str] = []
    dropped = 0
    unknown_source: BoxSource = (f"{dataset}/{split} annotations", 0)
    for i, rel in enumerate(image_paths):
        listed = (
            None
            if listed_sizes is None or listed_sizes[i, 0] == NO_SIZE
            else tuple(int(v) for v in listed_sizes[i])
        )
        if not boxes[i] and listed is None:
            continue
        image = image_root / rel
        width, height = image_size(image)
        sizes[i] = (width, height)
        written = [list(b) for b in boxes[i]]
        if listed is not None and listed != (width, height):
            mismatched.append(f"{rel} (listed {listed[0]}x{listed[1]}, actual {width}x{height})")
            sx, sy = width / listed[0], height / listed[1]
            boxes[i] = [[int(b[0] * sx), int(b[1] * sy), int(b[2] * sx), int(b[3] * sy)] for b in boxes[i]]
        kept = []
        for k, b in enumerate(boxes[i]):
            path, line = sources[i][k] if sources is not None else unknown_source
            problem = invalid_box_problem(b, image, width, height)
            if problem is not None:
                if b != written[k]:
                    problem += f" (written {_box_text(written[k])} for the listed size {listed[0]}x{listed[1]})"
                if not drop_invalid:
                    raise MetadataError(
                        path, line, f"{problem}; fix the line or set data.dataset.drop_invalid_boxes: true"
                    )
                dropped += 1
                if dropped <= MAX_DROP_WARNINGS:
                    warnings.warn(f"{path}:{line}: {problem}; dropped (drop_invalid_boxes)", stacklevel=2)
                continue
            if far_edge_rule:
                b[2], b[3] = min(b[2], width - 1), min(b[3], height - 1)
            fitted = [min(max(b[0], 0), width - 1), min(max(b[1], 0), height - 1)]
            fitted += [min(max(b[2], 0), width - 1), min(max(b[3], 0), height - 1)]
            if fitted != list(b):
                clipped.append(f"{path}:{line}: {_box_text(b)} -> {_box_text(fitted)} on {image} ({width}x{height})")
                b[:] = fitted
            kept.append(b)
        boxes[i] = kept
    if mismatched:
        warnings.warn(
            f"{dataset}/{split}: {len(mismatched)} image(s) differ in size from image_sizes.txt; their boxes were "
            f"scaled by the real size: {'; '.join(mismatched[:5])}{' ...' if len(mismatched) > 5 else ''}",
            stacklevel=2,
        )
    if clipped:
        warnings.warn(
            f"{dataset}/{split}: {len(clipped)} box(es) extended outside their image and were clipped to it: "
            f"{'; '.join(clipped[:5])}{f'; ... and {len(clipped) - 5} more' if len(clipped) > 5 else ''}",
            stacklevel=2,
        )
    if dropped > MAX_DROP_WARNINGS:
        warnings.warn(
            f"{dataset}/{split}: {dropped} box(es) lay entirely outside their image or were empty and were dropped "
            f"(drop_invalid_boxes); the first {MAX_DROP_WARNINGS} were named above",
            stacklevel=2,
        )
    return sizes


def component_boxes(mask: np.ndarray) -> np.ndarray:
    """Inclusive ``int64 [K, 4]`` boxes of the 8-connected foreground components of a mask."""
    count, _, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    x, y, w, h = (stats[1:count, k].astype(np.int64) for k in range(4))
    return np.stack([x, y, x + w - 1, y + h - 1], axis=1).reshape(-1, 4)


def holdout_per_class(labels: np.ndarray, eligible: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Boolean mask of ``per_class`` seeded random eligible images of every class."""
    rng = np.random.default_rng(seed)
    chosen = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        candidates = np.flatnonzero((labels == c) & eligible)
        take = min(per_class, len(candidates))
        chosen[rng.choice(candidates, take, replace=False)] = True
    return chosen


def subsample_per_class(index: SplitIndex, per_class: int, seed: int) -> SplitIndex:
    """At most ``per_class`` images of every class, seeded, in the original order (0: all)."""
    if per_class <= 0:
        return index
    keep = holdout_per_class(index.labels, np.ones(len(index), bool), per_class, seed)
    return index.subset(np.flatnonzero(keep))


class IndexedImageDataset(WSOLDataset):
    """A split read from a :class:`SplitIndex`: image files, boxes and optional masks.

    Args:
        index: the split's index.
        image_root: folder the index paths are relative to.
        split: ``train``, ``val`` or ``test``.
        resize_size: training resize side.
        crop_size: training crop and evaluation side.
        num_classes: number of classes.
        class_names: name of every class (index order).
        with_masks: every sample carries ``mask`` (union of its mask files = 1, ignore region =
            255, background 0), an all-zero mask when an image lists none.
        scan: images are medical slices (see :func:`read_image`).
        attributes: ``uint8 [N, A]`` per-image binary attributes aligned with the index rows; every
            sample then carries its row as ``attributes``.
    """

    def __init__(
        self,
        index: SplitIndex,
        image_root: str | Path,
        split: str,
        resize_size: int,
        crop_size: int,
        num_classes: int,
        class_names: Sequence[str],
        with_masks: bool = False,
        scan: bool = False,
        attributes: np.ndarray | None = None,
    ) -> None:
        super().__init__(split, resize_size, crop_size)
        if attributes is not None and len(attributes) != len(index):
            raise ValueError(f"attributes has {len(attributes)} rows for an index of {len(index)} images")
        self.attributes = attributes
        self.num_attributes = 0 if attributes is None else attributes.shape[1]
        self.index = index
        self.image_root = Path(image_root)
        self.num_classes = num_classes
        self._class_names = list(class_names)
        self.with_masks = with_masks
        self.scan = scan
        self.provided_fields = type(self).provided_fields | ({"mask"} if with_masks else set())

    def __len__(self) -> int:
        return len(self.index)

    def class_names(self) -> list[str]:
        return list(self._class_names)

    def load_mask(self, i: int, shape: tuple[int, int]) -> np.ndarray:
        """``[H, W]`` uint8 mask of image ``i``: 1 foreground, 0 background, 255 ignore."""
        foreground = np.zeros(shape, bool)
        for rel in self.index.masks_of(i):
            foreground |= read_binary_mask(self.image_root / rel, shape)
        mask = foreground.astype(np.uint8)
        ignore_rel = self.index.ignore_paths[i]
        if ignore_rel:
            mask[read_binary_mask(self.image_root / ignore_rel, shape) & ~foreground] = IGNORE_VALUE
        return mask

    def load(self, index: int) -> RawSample:
        rel = self.index.image_paths[index]
        image = read_image(self.image_root / rel, scan=self.scan)
        height, width = image.shape[:2]
        boxes = self.index.boxes_of(index)
        known_w, known_h = (int(v) for v in self.index.sizes[index])
        if known_w != NO_SIZE and (known_w, known_h) != (width, height) and len(boxes):
            warnings.warn(
                f"{rel}: decoded size {width}x{height} differs from the indexed {known_w}x{known_h}; "
                "boxes rescaled (the cached index may be stale)",
                stacklevel=2,
            )
            boxes[:, [0, 2]] = boxes[:, [0, 2]] * width // known_w
            boxes[:, [1, 3]] = boxes[:, [1, 3]] * height // known_h
        masks = {"mask": self.load_mask(index, (height, width))} if self.with_masks else {}
        attributes = None if self.attributes is None else self.attributes[index]
        return RawSample(
            image=image, label=int(self.index.labels[index]), boxes=boxes, image_id=rel, masks=masks,
            attributes=attributes,
        )


class MetadataDatasetSpec(DatasetSpec):
    """Options shared by the on-disk datasets of the wsolevaluation protocol (CUB, ILSVRC, OpenImages).

    Args:
        root: the dataset folder (see the dataset's module for the layouts it reads).
        metadata_dir: wsolevaluation metadata folder of the dataset (``metadata/CUB`` ...);
            default: searched next to ``root``.
        cache_dir: where split indexes are cached; default ``<root>/.wsol_index`` when writable,
            else ``~/.cache/wsol_lightning``.
        num_val_sample_per_class: keep at most this many val images per class, seeded (0: all;
            wsolevaluation tunes with 10 / 5 / 5 for ILSVRC / CUB / OpenImages).
        drop_invalid_boxes: a GT box that lies entirely outside its image (or is empty) is dropped
            with a warning naming the annotation file, its line and the image, instead of being an
            error with that message. Boxes partly outside are always clipped (with a warning).
            OpenImages' boxes come from its masks and are always inside.

    Classes come from the data: the labels of the metadata splits (``class_labels.txt`` of
    ``train``, ``val`` and ``test``: ``max label + 1`` classes), CUB's ``classes.txt`` in the
    original archive layout, ILSVRC's synset folders in its raw layout; the full datasets give
    200 / 1000 / 100 classes.
    """

    def __init__(
        self,
        root: str,
        metadata_dir: str | None = None,
        cache_dir: str | None = None,
        num_val_sample_per_class: int = 0,
        drop_invalid_boxes: bool = False,
    ) -> None:
        self.root = root
        self.metadata_dir = metadata_dir
        self.cache_dir = cache_dir
        self.num_val_sample_per_class = num_val_sample_per_class
        self.drop_invalid_boxes = drop_invalid_boxes
