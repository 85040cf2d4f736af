"""Compact split indexes and their on-disk cache.

A split is indexed once (metadata parsed, directories scanned, files checked) and the result is
kept as a handful of flat numpy arrays in a :class:`SplitIndex`, cached as an ``.npz`` file.
Nothing is a Python list of per-image objects: forked loader workers share the arrays'
pages (numpy buffers are not touched by reference counting, unlike lists of ``str``/``dict``),
and a spawned worker unpickles a few contiguous buffers. The memory of a worker therefore
grows with the dataset only by the index itself (ILSVRC train: ~100 MB of path bytes plus
a few int arrays), never by per-epoch scans.

Cache location: ``cache_dir`` if given, else ``<root>/.wsol_index`` when the root is writable,
else ``~/.cache/wsol_lightning``. The file name hashes the dataset, layout, absolute root,
split and the size + modification time of every annotation file the index was built from, so
editing a metadata file rebuilds the index; adding images to a scanned folder does not
(delete the ``.npz`` to rescan).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

#: Bump when the index content or its meaning changes, so stale caches are rebuilt.
INDEX_FORMAT_VERSION = 1
NO_SIZE = -1


class StringTable:
    """Immutable list of strings stored as one UTF-8 byte buffer plus offsets.

    Args:
        data: concatenated UTF-8 bytes, ``uint8 [total_bytes]``.
        offsets: ``int64 [n + 1]``; string ``i`` is ``data[offsets[i]:offsets[i + 1]]``.
    """

    def __init__(self, data: np.ndarray, offsets: np.ndarray) -> None:
        self.data = np.ascontiguousarray(data, dtype=np.uint8)
        self.offsets = np.ascontiguousarray(offsets, dtype=np.int64)

    @classmethod
    def from_strings(cls, strings: Iterable[str]) -> StringTable:
        encoded = [s.encode("utf-8") for s in strings]
        offsets = np.zeros(len(encoded) + 1, np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        return cls(data, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> str:
        return self.data[self.offsets[i] : self.offsets[i + 1]].tobytes().decode("utf-8")

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def take(self, rows: np.ndarray) -> StringTable:
        return StringTable.from_strings(self[int(i)] for i in rows)


def ragged_offsets(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """``int64 [n + 1]`` start offsets of ``n`` consecutive groups of the given sizes."""
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(np.asarray(counts, np.int64), out=offsets[1:])
    return offsets


def take_ragged(values: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The groups ``rows`` of a ragged array, as a new ``(values, offsets)`` pair."""
    counts = offsets[rows + 1] - offsets[rows]
    parts = [values[offsets[r] : offsets[r + 1]] for r in rows]
    new_values = np.concatenate(parts) if parts else values[:0]
    return new_values, ragged_offsets(counts)


@dataclass
class SplitIndex:
    """Everything needed to load the images of one split, as flat arrays.

    Attributes:
        image_paths: image path of each image, relative to ``image_root`` (also its ``image_id``).
        labels: ``int64 [N]`` class index.
        sizes: ``int32 [N, 2]`` actual (width, height) of each image, ``-1`` when not read.
        box_offsets: ``int64 [N + 1]``; the boxes of image ``i`` are ``boxes[box_offsets[i]:box_offsets[i+1]]``.
        boxes: ``int32 [M, 4]`` inclusive x0, y0, x1, y1 in the original frame.
        mask_offsets: ``int64 [N + 1]`` ranges of ``mask_paths`` per image.
        mask_paths: instance / tumour mask paths relative to ``image_root`` (may be empty).
        ignore_paths: ignore-mask path of each image relative to ``image_root`` (``""`` if none).
        groups: ``int64 [N]`` group of each image (MRI: patient), ``-1`` if unused.
    """

    image_paths: StringTable
    labels: np.ndarray
    sizes: np.ndarray
    box_offsets: np.ndarray
    boxes: np.ndarray
    mask_offsets: np.ndarray
    mask_paths: StringTable
    ignore_paths: StringTable
    groups: np.ndarray

    @classmethod
    def build(
        cls,
        image_paths: Sequence[str],
        labels: Sequence[int] | np.ndarray,
        sizes: np.ndarray | None = None,
        boxes: Sequence[Sequence[Sequence[int]]] | None = None,
        mask_paths: Sequence[Sequence[str]] | None = None,
        ignore_paths: Sequence[str] | None = None,
        groups: Sequence[int] | np.ndarray | None = None,
    ) -> SplitIndex:
        """Build an index from per-image Python sequences (used once, at indexing time)."""
        n = len(image_paths)
        boxes = boxes if boxes is not None else [[] for _ in range(n)]
        mask_paths = mask_paths if mask_paths is not None else [[] for _ in range(n)]
        flat_boxes = np.asarray([b for per_image in boxes for b in per_image], np.int32).reshape(-1, 4)
        return cls(
            image_paths=StringTable.from_strings(image_paths),
            labels=np.asarray(labels, np.int64).reshape(n),
            sizes=(
                np.full((n, 2), NO_SIZE, np.int32)
                if sizes is None
                else np.asarray(sizes, np.int32).reshape(n, 2)
            ),
            box_offsets=ragged_offsets([len(b) for b in boxes]),
            boxes=flat_boxes,
            mask_offsets=ragged_offsets([len(m) for m in mask_paths]),
            mask_paths=StringTable.from_strings(p for per_image in mask_paths for p in per_image),
            ignore_paths=StringTable.from_strings(ignore_paths if ignore_paths is not None else [""] * n),
            groups=np.full(n, -1, np.int64) if groups is None else np.asarray(groups, np.int64).reshape(n),
        )

    def __len__(self) -> int:
        return len(self.labels)

    def boxes_of(self, i: int) -> np.ndarray:
        return self.boxes[self.box_offsets[i] : self.box_offsets[i + 1]].astype(np.int64)

    def masks_of(self, i: int) -> list[str]:
        return [self.mask_paths[j] for j in range(int(self.mask_offsets[i]), int(self.mask_offsets[i + 1]))]

    def subset(self, rows: np.ndarray) -> SplitIndex:
        """The images ``rows`` (in that order) as a new index."""
        rows = np.asarray(rows, np.int64)
        boxes, box_offsets = take_ragged(self.boxes, self.box_offsets, rows)
        mask_rows = [list(range(int(self.mask_offsets[r]), int(self.mask_offsets[r + 1]))) for r in rows]
        return SplitIndex(
            image_paths=self.image_paths.take(rows),
            labels=self.labels[rows],
            sizes=self.sizes[rows],
            box_offsets=box_offsets,
            boxes=boxes,
            mask_offsets=ragged_offsets([len(m) for m in mask_rows]),
            mask_paths=self.mask_paths.take(np.asarray([j for m in mask_rows for j in m], np.int64)),
            ignore_paths=self.ignore_paths.take(rows),
            groups=self.groups[rows],
        )

    # -- (de)serialisation ------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, StringTable):
                arrays[f"{f.name}.data"] = value.data
                arrays[f"{f.name}.offsets"] = value.offsets
            else:
                arrays[f.name] = value
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> SplitIndex:
        values = {}
        for f in fields(cls):
            if f"{f.name}.data" in arrays:
                values[f.name] = StringTable(arrays[f"{f.name}.data"], arrays[f"{f.name}.offsets"])
            else:
                values[f.name] = np.asarray(arrays[f.name])
        return cls(**values)


def file_signature(paths: Iterable[str | Path]) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of every existing path: the part of the cache key that tracks edits."""
    signature = []
    for p in paths:
        p = Path(p)
        if p.exists():
            st = p.stat()
            signature.append((str(p.resolve()), int(st.st_size), int(st.st_mtime_ns)))
    return signature


def default_cache_dir(root: str | Path) -> Path:
    """``<root>/.wsol_index`` when writable, else ``~/.cache/wsol_lightning``."""
    root = Path(root)
    if os.access(root, os.W_OK):
        return root / ".wsol_index"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wsol_lightning"


class IndexCache:
    """Loads a cached :class:`SplitIndex` or builds and stores it.

    Args:
        cache_dir: where index files go (``None``: :func:`default_cache_dir` of ``root``).
        root: dataset root (part of the key and of the default location).
    """

    def __init__(self, cache_dir: str | Path | None, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir(self.root)

    def path_for(self, key: dict) -> Path:
        key = {"version": INDEX_FORMAT_VERSION, "root": str(self.root), **key}
        digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return self.cache_dir / f"{key.get('dataset', 'index')}_{key.get('split', '')}_{digest}.npz"

    def load_or_build(self, key: dict, build) -> SplitIndex:
        """Return the cached index for ``key`` or call ``build()`` and cache its result."""
        path = self.path_for(key)
        if path.exists():
            try:
                with np.load(path, allow_pickle=False) as arrays:
                    index = SplitIndex.from_arrays(dict(arrays))
                log.debug("loaded index %s", path)
                return index
            except (OSError, ValueError, KeyError) as err:
                log.warning("index cache %s unreadable (%s); rebuilding it", path, err)
        index = build()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp.npz", delete=False) as tmp:
                np.savez(tmp, **index.to_arrays())
            os.replace(tmp.name, path)  # atomic: concurrent ranks never read a half-written file
            log.info("cached the %d-image index at %s", len(index), path)
        except OSError as err:
            log.warning("could not write the index cache %s (%s); it will be rebuilt next time", path, err)
        return index
