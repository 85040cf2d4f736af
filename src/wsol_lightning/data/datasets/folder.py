"""``ImageFolderDataset``: a folder of images as people have them, for ``predict``.

Every image file under the folder (recursively, by extension, sorted) is one sample, resized to
the evaluated frame (``crop_size`` x ``crop_size``, as the evaluation pipeline does). Decoding
differs from the dataset readers on purpose (there, boxes refer to the stored pixel grid):

* EXIF orientation is applied, so the image and its boxes are upright as a viewer shows them;
* 16-bit and float images (PNG/TIFF scans) are min-max scaled to 8 bits, grayscale is replicated
  to three channels, an alpha channel is ignored (the colour channels are used as stored);
* a file that cannot be decoded does not stop the run: its sample carries ``failed`` (the reason)
  and a placeholder image, the batch carries ``failed`` per sample, and
  :class:`~wsol_lightning.callbacks.WSOLPredictionWriter` lists it in ``failed.txt``.

``orig_size`` is the decoded (upright) size, so boxes map back to the original frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image, ImageOps

from wsol_lightning.data.datasets.base import RawSample, WSOLDataset
from wsol_lightning.data.datasets.image_dataset import _to_uint8
from wsol_lightning.data.errors import CorruptImageError, DatasetNotFoundError

#: File extensions read as images (case-insensitive).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm", ".pbm")
#: Flags that keep the bit depth and apply EXIF orientation (``IMREAD_UNCHANGED`` would ignore it).
_UPRIGHT_ANY_DEPTH = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR


def _to_rgb_uint8(array: np.ndarray) -> np.ndarray:
    """Any decoded array (gray, RGB, RGBA; 8/16-bit or float) as ``[H, W, 3]`` uint8 RGB."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        return np.repeat(_to_uint8(array)[:, :, None], 3, axis=2)
    return _to_uint8(np.ascontiguousarray(array[:, :, :3]))


def decode_upright_image(path: str | Path) -> np.ndarray:
    """Decode an image as upright ``[H, W, 3]`` uint8 RGB (see the module docstring).

    OpenCV decodes first (it keeps 16-bit colour); formats it does not read are tried with PIL.

    Raises:
        CorruptImageError: neither decoder can read the file (the message gives PIL's reason).
    """
    path = str(path)
    bgr = cv2.imread(path, _UPRIGHT_ANY_DEPTH)
    if bgr is not None:
        if bgr.ndim == 3 and bgr.shape[2] >= 3:
            bgr = cv2.cvtColor(np.ascontiguousarray(bgr[:, :, :3]), cv2.COLOR_BGR2RGB)
        return _to_rgb_uint8(bgr)
    try:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image)
            if upright.mode in ("I", "I;16", "I;16B", "I;16L", "F", "L"):
                return _to_rgb_uint8(np.asarray(upright))
            return np.asarray(upright.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise CorruptImageError(path, f"cannot be decoded ({type(err).__name__}: {err})") from err


def list_images(root: Path) -> list[str]:
    """Image files under ``root`` (recursive, hidden entries skipped), as sorted POSIX relative paths."""
    found = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
            found.append(relative.as_posix())
    return sorted(found)


class ImageFolderDataset(WSOLDataset):
    """Every image under a folder, at the evaluated frame, without labels (``predict`` only).

    Samples follow the batch format with ``label = -1`` and no boxes, plus ``path`` (the file) and
    ``failed`` (``None``, or why the file could not be decoded); :func:`~wsol_lightning.data.batch.collate`
    keeps both as the batch's ``path`` and ``failed``.

    Args:
        root: the folder (searched recursively for :data:`IMAGE_EXTENSIONS`).
        crop_size: side of the evaluated frame (the checkpoint's ``data.crop_size``).

    Raises:
        DatasetNotFoundError: the folder does not exist or holds no image file.
    """

    def __init__(self, root: str | Path, crop_size: int) -> None:
        super().__init__("predict", crop_size, crop_size, train_transform=False)
        self.root = Path(root).expanduser()
        how_to = f"data.predict_dir must be a folder holding image files ({', '.join(IMAGE_EXTENSIONS)})."
        if not self.root.is_dir():
            raise DatasetNotFoundError("predict_dir", self.root, [self.root], how_to)
        self.image_paths = list_images(self.root)
        if not self.image_paths:
            raise DatasetNotFoundError("predict_dir", self.root, [self.root / "*.<image extension>"], how_to)

    def __len__(self) -> int:
        return len(self.image_paths)

    def load(self, index: int) -> RawSample:
        rel = self.image_paths[index]
        image = decode_upright_image(self.root / rel)
        return RawSample(image=image, label=-1, boxes=np.zeros((0, 4), np.int64), image_id=rel)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path = str(self.root / self.image_paths[index])
        try:
            sample = super().__getitem__(index)
        except CorruptImageError as err:
            reason = str(err).removeprefix(f"{path}: ")
            sample = {
                "image": torch.zeros(3, self.crop_size, self.crop_size),
                "label": -1,
                "boxes": np.zeros((0, 4), np.int64),
                "image_id": self.image_paths[index],
                "orig_size": (0, 0),
                "failed": reason,
            }
        sample.setdefault("failed", None)
        sample["path"] = path
        return sample
