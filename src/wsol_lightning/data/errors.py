"""Errors raised by the data package, each naming what is wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from wsol_lightning.errors import UserError


class DatasetNotFoundError(UserError, FileNotFoundError):
    """A dataset root or one of its required files is missing.

    The one-line message names the root, every missing path and how to prepare the data.
    """

    def __init__(self, dataset: str, root: str | Path | None, missing: Iterable[str | Path], how_to: str) -> None:
        missing = [str(p) for p in missing]
        super().__init__(f"{dataset} dataset not found under root={str(root)!r} (missing: {', '.join(missing)}). {how_to}")
        self.dataset = dataset
        self.root = root
        self.missing = missing


class MetadataError(UserError, ValueError):
    """A metadata file has a malformed or inconsistent line (the message names file and line)."""

    def __init__(self, path: str | Path, line_number: int, problem: str) -> None:
        super().__init__(f"{path}:{line_number}: {problem}")
        self.path = str(path)
        self.line_number = line_number


class CorruptImageError(UserError, ValueError):
    """An image or mask file exists but cannot be decoded (the message names the file)."""

    def __init__(self, path: str | Path, problem: str = "cannot be decoded (corrupt or not an image)") -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)


class EmptyTumourMaskError(UserError, ValueError):
    """A slice labelled tumour-positive has an empty tumour mask (the message names the slice)."""

    def __init__(self, slice_path: str | Path, mask_path: str | Path) -> None:
        super().__init__(
            f"{slice_path}: labelled tumour-positive but its mask {mask_path} is empty; fix the label or the mask"
        )
        self.path = str(slice_path)
