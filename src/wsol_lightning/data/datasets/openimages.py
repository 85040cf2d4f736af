"""OpenImages30k, wsolevaluation's mask benchmark (evaluated with PxAP).

Layout: ``root`` = wsolevaluation's ``dataset/OpenImages`` folder holding the images
(``<split>/<class_id>/<img>.jpg``) and the masks (``<split>/<class_id>/<img>_m<class>_<hash>.png``
and ``<img>_ignore.png``); metadata in ``metadata_dir`` or ``<root>/metadata/OpenImages`` or
``<root>/../../metadata/OpenImages`` (``localization.txt``: ``image_id,mask_path,ignore_path``,
mask paths relative to ``root``). Classes come from the data: ``max label + 1`` over the
``class_labels.txt`` of the splits (100 for OpenImages30k), each named after its images' class
folder (``<split>/<class_id>/``).

The sample's ``mask`` is the reference's label map in the original frame: 1 on the union of the
instance masks (any non-zero pixel), 255 on the ignore region outside it, 0 elsewhere. Masks
stored at another resolution than their image are resized to it with nearest neighbour. The
GT ``boxes`` are the bounding boxes of the instance masks (wsolevaluation has no boxes for this
set; they only feed visualisation and the box metrics, which are not the benchmark's).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from wsol_lightning.data.datasets.base import RawSample
from wsol_lightning.data.datasets.image_dataset import (
    IGNORE_VALUE,
    IndexedImageDataset,
    MetadataDatasetSpec,
    read_binary_mask,
    subsample_per_class,
)
from wsol_lightning.data.datasets.metadata import (
    build_metadata_index,
    check_split_dir,
    metadata_classes,
    metadata_signature,
)
from wsol_lightning.data.datasets.split_index import IndexCache
from wsol_lightning.data.errors import DatasetNotFoundError

log = logging.getLogger(__name__)

#: Classes of OpenImages30k (a dataset's own count comes from its data, see the module docstring).
NUM_CLASSES = 100
HOW_TO = (
    "Prepare OpenImages30k with wsolevaluation's download script (dataset/OpenImages with images and masks) "
    "and its metadata/OpenImages folder (pass it as metadata_dir or place it at <root>/metadata/OpenImages)."
)


def mask_bounding_box(mask: np.ndarray) -> list[int] | None:
    """Inclusive ``[x0, y0, x1, y1]`` of the non-zero pixels, ``None`` for an empty mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]


class OpenImagesDataset(IndexedImageDataset):
    """OpenImages30k split: masks with an ignore region, boxes of the instance masks."""

    def load(self, index: int) -> RawSample:
        sample = super().load(index)
        shape = sample.image.shape[:2]
        boxes = [
            mask_bounding_box(read_binary_mask(self.image_root / rel, shape))
            for rel in self.index.masks_of(index)
        ]
        sample.boxes = np.asarray([b for b in boxes if b is not None], np.int64).reshape(-1, 4)
        return sample


def build_openimages(
    spec: OpenImages, split: str, resize_size: int, crop_size: int, seed: int
) -> OpenImagesDataset:
    """One OpenImages30k split.

    ``spec`` gives the options; the other arguments are those of :meth:`DatasetSpec.build`.
    """
    root, metadata_dir, cache_dir = spec.root, spec.metadata_dir, spec.cache_dir
    num_val_sample_per_class = spec.num_val_sample_per_class
    if root is None or not Path(root).is_dir():
        raise DatasetNotFoundError(
            "OpenImages", root, [root if root is not None else "<root not set>"], HOW_TO
        )
    root = Path(root)
    candidates = (
        [Path(metadata_dir), Path(metadata_dir) / "OpenImages"]
        if metadata_dir is not None
        else [
            root / "metadata" / "OpenImages",
            root / "metadata",
            root.parent.parent / "metadata" / "OpenImages",
        ]
    )
    metadata = next((c for c in candidates if (c / split).is_dir()), None)
    if metadata is None:
        raise DatasetNotFoundError(
            "OpenImages", root, [c / split / "image_ids.txt" for c in candidates], HOW_TO
        )
    split_dir = metadata / split
    check_split_dir("OpenImages", root, split_dir, localization_required=split != "train", how_to=HOW_TO)
    log.info(
        "OpenImages %s: wsolevaluation metadata layout (metadata %s, images and masks %s)",
        split,
        split_dir,
        root,
    )
    key = {
        "dataset": "openimages",
        "layout": "metadata",
        "split": split,
        "files": metadata_signature(split_dir),
    }
    cache = IndexCache(cache_dir, root)
    classes = metadata_classes("OpenImages", metadata, cache)
    num_classes = classes.num_classes
    index = cache.load_or_build(
        key, lambda: build_metadata_index("OpenImages", split, root, split_dir, num_classes, "masks", HOW_TO)
    )
    if split == "val":
        index = subsample_per_class(index, num_val_sample_per_class, seed)
    names = []
    for label, example in enumerate(classes.example_ids):
        parts = example.split("/")
        names.append(parts[-2] if len(parts) >= 3 else str(label))
    return OpenImagesDataset(index, root, split, resize_size, crop_size, num_classes, names, with_masks=True)


__all__ = ["IGNORE_VALUE", "NUM_CLASSES", "OpenImagesDataset", "build_openimages", "mask_bounding_box"]


class OpenImages(MetadataDatasetSpec):
    """OpenImages30k of wsolevaluation: masks (PxAP) with an ignore region.

    Options: see :class:`~wsol_lightning.data.datasets.image_dataset.MetadataDatasetSpec`.
    """

    name = "openimages"

    def build(self, split: str, resize_size: int, crop_size: int, seed: int) -> OpenImagesDataset:
        return build_openimages(self, split, resize_size, crop_size, seed)
