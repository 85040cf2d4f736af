"""albumentations pipelines that carry boxes and masks (wsolevaluation recipe).

* Training: resize to ``resize_size`` x ``resize_size`` (square, aspect ratio not kept), random
  crop ``crop_size``, horizontal flip. Boxes are carried by albumentations (they feed
  only visualisation: the training loss is image-level).
* Evaluation: resize to ``crop_size`` x ``crop_size``, no crop.
* Training resize (``data.train_resize``): ``"square"`` (default) as above; ``"shorter_side"``, the
  shorter side to ``resize_size`` with the aspect ratio kept (torchvision's ``Resize(resize_size)``,
  I2C's training code), then the random crop.
* Ten-crop (``data.ten_crop``, evaluation only): torchvision's ``TenCrop(crop_size)`` of the image
  resized to ``resize_size`` x ``resize_size``, the classification input of SPA's and DANet's
  evaluation scripts (:func:`ten_crop_views`).
* Image resize (both): ``"opencv"`` (default), OpenCV's bilinear (``cv2.INTER_LINEAR``, no
  antialiasing); ``"pil"``, PIL's bilinear filter, which widens its support when it shrinks an
  image (antialiasing): torchvision's ``Resize`` on a PIL image, as wsolevaluation and the papers'
  PyTorch code resize. Masks are resized nearest-neighbour either way (wsolevaluation
  ``load_mask_image``: ``cv2.INTER_NEAREST``). GT boxes are rescaled exactly as the
  reference evaluation does, ``x' = floor(x * crop_size / W)``, independent of albumentations'
  continuous box convention, so MaxBoxAcc is comparable to published numbers.

Images leave the pipeline as float RGB in ``[0, 1]``: the network normalizes its own input with
its backbone's constants, so data and weights cannot disagree. Boxes are inclusive pixel
coordinates throughout the package; albumentations' ``pascal_voc``
boxes are continuous, so training boxes travel as ``[x0, y0, x1 + 1, y1 + 1)``.

Reproducibility: albumentations seeds itself from OS entropy unless told otherwise, which made two
runs of one config differ. Each training sample's augmentation is instead drawn from its own seed:
the training samplers (:mod:`wsol_lightning.data.samplers`) pass one per sample, a function of the
seed, the epoch and the sample's position, so a config gives the same crops and flips whatever the
number of workers, and a resumed fit the same as an uninterrupted one. Without one (a dataset
indexed directly) the seed is drawn from torch's RNG.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

#: Tolerance (pixels) of the float32 round-off in albumentations' box coordinates.
BOX_SNAP = 1e-3


#: Values of ``data.image_resize`` and ``data.train_resize`` (see the module docstring).
IMAGE_RESIZES = ("opencv", "pil")
TRAIN_RESIZES = ("square", "shorter_side")


def pil_bilinear(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """``img`` (uint8 RGB) resized by PIL's bilinear filter: torchvision's ``Resize`` on a PIL image."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image_resize 'pil' needs uint8 RGB images [H, W, 3], got {img.dtype} {img.shape}")
    return np.asarray(Image.fromarray(img).resize((width, height), Image.Resampling.BILINEAR))


class PILBilinearResize(A.Resize):
    """``A.Resize`` whose image goes through PIL's bilinear filter (antialiased when shrinking).

    Equal to ``torchvision.transforms.Resize((height, width))`` on the PIL image; masks and boxes
    are resized as by ``A.Resize`` (nearest-neighbour masks).
    """

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        return pil_bilinear(img, self.height, self.width)


class ShorterSideResize(A.SmallestMaxSize):
    """The shorter side to ``max_size``, the aspect ratio kept, as torchvision's ``Resize(max_size)``.

    The longer side is ``int(max_size * long / short)`` (torchvision's rounding, not albumentations');
    the image goes through PIL's bilinear filter (``image_resize="pil"``) or OpenCV's, masks are
    resized nearest-neighbour, boxes scale with the image.
    """

    def __init__(self, max_size: int, image_resize: str = "opencv") -> None:
        super().__init__(max_size=max_size, interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST)
        self.image_resize = image_resize

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        size = int(self.max_size)
        return (int(size * height / width), size) if width <= height else (size, int(size * width / height))

    def apply(self, img: np.ndarray, scale: float, **params: Any) -> np.ndarray:
        height, width = self.output_shape(*img.shape[:2])
        if self.image_resize == "pil":
            return pil_bilinear(img, height, width)
        return cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)

    def apply_to_mask(self, mask: np.ndarray, scale: float, **params: Any) -> np.ndarray:
        height, width = self.output_shape(*mask.shape[:2])
        return cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)


def square_resize(side: int, image_resize: str) -> A.Resize:
    """Resize to ``side`` x ``side`` with ``image_resize``'s filter (PIL's bilinear or OpenCV's linear)."""
    return PILBilinearResize(side, side) if image_resize == "pil" else A.Resize(side, side)


def build_transform(
    train: bool, resize_size: int, crop_size: int, image_resize: str = "opencv", train_resize: str = "square"
) -> A.Compose:
    """The training or evaluation pipeline (see the module docstring)."""
    if image_resize not in IMAGE_RESIZES:
        raise ValueError(f"image_resize must be one of {', '.join(IMAGE_RESIZES)}, got {image_resize!r}")
    if train_resize not in TRAIN_RESIZES:
        raise ValueError(f"train_resize must be one of {', '.join(TRAIN_RESIZES)}, got {train_resize!r}")
    if train:
        geometric = [
            ShorterSideResize(resize_size, image_resize)
            if train_resize == "shorter_side"
            else square_resize(resize_size, image_resize),
            A.RandomCrop(crop_size, crop_size),
            A.HorizontalFlip(p=0.5),
        ]
    else:
        geometric = [square_resize(crop_size, image_resize)]
    return A.Compose(
        [*geometric, A.ToFloat(max_value=255.0)],
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["box_ids"], clip=True, min_visibility=0.0),
    )


def ten_crop_views(image: np.ndarray, resize_size: int, crop_size: int, image_resize: str = "opencv") -> torch.Tensor:
    """``[10, 3, crop, crop]`` in ``[0, 1]``: torchvision's ``TenCrop(crop_size)`` of the image resized square.

    The four corners and the centre (``round((resize - crop) / 2)`` from the top left), then the same
    five of the mirrored image, in torchvision's order (SPA_CVPR2021 ``utils/loader.py`` L30-36: the
    image resized to ``resize_size`` x ``resize_size`` first).
    """
    resized = A.Compose([square_resize(resize_size, image_resize), A.ToFloat(max_value=255.0)])(image=image)["image"]
    full = torch.from_numpy(np.ascontiguousarray(resized.transpose(2, 0, 1)))
    far, centre = resize_size - crop_size, int(round((resize_size - crop_size) / 2.0))
    corners = ((0, 0), (0, far), (far, 0), (far, far), (centre, centre))
    return torch.stack([view[:, y : y + crop_size, x : x + crop_size] for view in (full, full.flip(-1)) for y, x in corners])


def rescale_boxes_like_reference(boxes: np.ndarray, orig_hw: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """Rescale inclusive boxes from the original frame: ``floor(x * W_out / W)`` (wsolevaluation)."""
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    h, w = orig_hw
    oh, ow = out_hw
    out = np.empty_like(boxes)
    out[:, [0, 2]] = boxes[:, [0, 2]] * ow // w
    out[:, [1, 3]] = boxes[:, [1, 3]] * oh // h
    return out


def apply_transform(
    transform: A.Compose,
    train: bool,
    image: np.ndarray,
    boxes: np.ndarray,
    masks: dict[str, np.ndarray],
    seed: int | None = None,
) -> tuple[torch.Tensor, np.ndarray, dict[str, torch.Tensor]]:
    """Apply a pipeline to an image, its inclusive boxes and its masks.

    Returns the CHW float image tensor, inclusive int64 boxes in the output frame, and the
    transformed masks as uint8 tensors (nearest-neighbour resampling). A training pipeline is
    reseeded first with ``seed`` (default: drawn from torch's RNG; see the module docstring).
    """
    if train:
        transform.set_random_seed(int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else seed)
    h, w = image.shape[:2]
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    mask_names = list(masks)
    continuous = boxes.astype(np.float32).copy()
    continuous[:, 2:] += 1
    continuous[:, [0, 2]] = continuous[:, [0, 2]].clip(0, w)
    continuous[:, [1, 3]] = continuous[:, [1, 3]].clip(0, h)
    out: dict[str, Any] = transform(
        image=image,
        bboxes=continuous if train else np.zeros((0, 4), np.float32),
        box_ids=np.arange(len(boxes)) if train else np.zeros(0, np.int64),
        masks=[masks[k] for k in mask_names],
    )
    out_image = torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1)))
    oh, ow = out_image.shape[1:]
    if train:
        # albumentations round-trips boxes through float32 normalized coordinates (6.0 comes back as
        # 6.0000002), so snap within BOX_SNAP of an integer before floor / ceil.
        tb = np.asarray(out["bboxes"], dtype=np.float64).reshape(-1, 4)
        new_boxes = np.stack(
            [np.floor(tb[:, 0] + BOX_SNAP), np.floor(tb[:, 1] + BOX_SNAP),
             np.ceil(tb[:, 2] - BOX_SNAP) - 1, np.ceil(tb[:, 3] - BOX_SNAP) - 1], axis=1
        ).astype(np.int64)
        new_boxes = new_boxes[(new_boxes[:, 2] >= new_boxes[:, 0]) & (new_boxes[:, 3] >= new_boxes[:, 1])]
    else:
        new_boxes = rescale_boxes_like_reference(boxes, (h, w), (oh, ow))
    out_masks = {k: torch.from_numpy(np.ascontiguousarray(m)).to(torch.uint8) for k, m in zip(mask_names, out["masks"])}
    return out_image, new_boxes, out_masks
