"""``CAMVisualizer``: CAM overlays with GT and predicted boxes, every validation epoch."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
import pytorch_lightning as pl
import torch
from lightning_fabric.utilities.apply_func import move_data_to_device
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from wsol_lightning.cam import cam_to_boxes, normalize_cam
from wsol_lightning.data.batch import collate

GT_COLOUR = (0, 255, 0)
PRED_COLOUR = (255, 0, 0)


def to_rgb_uint8(image: torch.Tensor) -> np.ndarray:
    """A batch image (``[3, H, W]`` RGB in ``[0, 1]``) as ``[H, W, 3]`` uint8 RGB."""
    rgb = image.detach().cpu().float().clamp(0, 1)
    return (rgb.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def overlay_cam(image: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a normalized ``[H, W]`` map (JET colours) over an RGB image."""
    heat = cv2.applyColorMap((np.nan_to_num(cam).clip(0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
    if image.dtype == np.uint8 and image.shape == heat.shape:  # in uint8, without float copies of large images
        return cv2.addWeighted(heat, alpha, np.ascontiguousarray(image), 1 - alpha, 0.0)
    return (alpha * heat + (1 - alpha) * image).astype(np.uint8)


def draw_boxes(
    image: np.ndarray, boxes: np.ndarray, colour: tuple[int, int, int], thickness: int = 1
) -> np.ndarray:
    out = image.copy()
    for x0, y0, x1, y1 in np.asarray(boxes).reshape(-1, 4):
        cv2.rectangle(out, (int(x0), int(y0)), (int(x1), int(y1)), colour, thickness)
    return out


def line_thickness(height: int, width: int) -> int:
    """Box line width that stays visible on large images: 1 px up to 500 px, then 1 px per 500 px."""
    return max(1, round(min(height, width) / 500))


LABEL_FONT = cv2.FONT_HERSHEY_DUPLEX  # double strokes: solid white even 7 px tall
LABEL_TEXT_COLOUR = (255, 255, 255)
LABEL_BACKGROUND = (0, 0, 0)
#: Smallest height (px) of a label's capital letters: legible on a 32-px image.
MIN_LABEL_HEIGHT = 6
#: Height of a label's capital letters as a fraction of the image's shorter side (when above the minimum).
LABEL_RELATIVE_HEIGHT = 0.03


@functools.lru_cache(maxsize=1)
def _cap_height_at_unit_scale() -> int:
    """Rows covered by a capital ``H`` of :data:`LABEL_FONT` at scale 1 (``getTextSize`` also counts accents)."""
    canvas = np.zeros((64, 64), np.uint8)
    cv2.putText(canvas, "H", (8, 48), LABEL_FONT, 1.0, 255, 1, cv2.LINE_8)
    rows = np.flatnonzero(canvas.any(axis=1))
    return int(rows[-1] - rows[0] + 1)


class LabelLayout(NamedTuple):
    """Where :func:`draw_label` puts a label (pixels of the image it is drawn on).

    Attributes:
        text: the drawn text (shortened with ``..`` when the full text does not fit the width).
        scale: OpenCV font scale.
        thickness: stroke width (px).
        origin: bottom-left of the text (``cv2.putText``'s origin).
        box: inclusive ``(x0, y0, x1, y1)`` of the filled background box, inside the image.
    """

    text: str
    scale: float
    thickness: int
    origin: tuple[int, int]
    box: tuple[int, int, int, int]


def _label_extent(text: str, scale: float) -> tuple[int, int, int, int, int]:
    """``(box width, box height, padding, text height, thickness)`` of ``text`` at ``scale``."""
    thickness = max(1, round(scale * 1.4))
    (text_w, text_h), baseline = cv2.getTextSize(text, LABEL_FONT, scale, thickness)
    pad = max(2, round(text_h * 0.25)) + thickness // 2
    return text_w + 2 * pad, text_h + baseline + 2 * pad, pad, text_h, thickness


def label_layout(text: str, height: int, width: int) -> LabelLayout:
    """Size and place a label in the top-left corner of a ``height x width`` image.

    Capital letters are :data:`LABEL_RELATIVE_HEIGHT` of the shorter side tall (at least
    :data:`MIN_LABEL_HEIGHT` px), the stroke grows with them; text wider than the image is made
    smaller (not below the minimum height), then shortened with ``..``. The background box is sized
    from ``cv2.getTextSize`` and clipped to the image.
    """
    unit_height = _cap_height_at_unit_scale()
    min_scale = MIN_LABEL_HEIGHT / unit_height
    scale = max(min_scale, LABEL_RELATIVE_HEIGHT * min(height, width) / unit_height)
    box_w = _label_extent(text, scale)[0]
    while box_w > width and scale > min_scale:
        scale = max(min_scale, scale * min(0.95, width / box_w))
        box_w = _label_extent(text, scale)[0]
    shown = text
    for keep in range(len(text) - 1, 0, -1):
        if box_w <= width:
            break
        shown = text[:keep].rstrip() + ".."
        box_w = _label_extent(shown, scale)[0]
    box_w, box_h, pad, text_h, thickness = _label_extent(shown, scale)
    box = (0, 0, min(box_w, width) - 1, min(box_h, height) - 1)
    return LabelLayout(shown, scale, thickness, (pad, pad + text_h), box)


def draw_label(image: np.ndarray, text: str) -> np.ndarray:
    """``image`` (``[H, W, 3]`` uint8) with ``text`` in white on a filled black box in its top-left corner.

    Legible from 32-px to 4000-px images (see :func:`label_layout`); nothing is drawn outside the box.
    """
    out = np.ascontiguousarray(image).copy()
    layout = label_layout(text, out.shape[0], out.shape[1])
    x0, y0, x1, y1 = layout.box
    out[y0 : y1 + 1, x0 : x1 + 1] = LABEL_BACKGROUND
    inside = out[y0 : y1 + 1, x0 : x1 + 1]  # a view: the text cannot reach past the box
    cv2.putText(
        inside, layout.text, layout.origin, LABEL_FONT, layout.scale, LABEL_TEXT_COLOUR, layout.thickness, cv2.LINE_AA
    )
    return out


class CAMVisualizer(pl.Callback):
    """Logs a fixed set of validation images with their GT-class CAM, GT boxes and predicted box.

    With a :class:`~pytorch_lightning.loggers.WandbLogger` the images go to W&B as
    ``wandb.Image`` with box overlays (``val/cam``); the same PNGs (CAM overlay, GT boxes in green,
    predicted box in red) are always written under ``<trainer.default_root_dir>/cam_images/epoch_<n>/``.
    The predicted box uses the threshold chosen on validation (``cam_threshold``; 0.5 before
    the first validation epoch) and the largest contour.

    Args:
        num_images: number of validation images shown (the first ones of the split).
        every_n_epochs: log every this many validation epochs.
        upscale: integer upscaling of the saved PNGs (small images are hard to see).
    """

    def __init__(self, num_images: int = 8, every_n_epochs: int = 1, upscale: int = 4) -> None:
        self.num_images = num_images
        self.every_n_epochs = every_n_epochs
        self.upscale = upscale

    def render(self, pl_module: Any, dataset: Any) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
        """Render the overlays; returns the images and their box annotations."""
        count = min(self.num_images, len(dataset))
        batch = move_data_to_device(collate([dataset[i] for i in range(count)]), pl_module.device)
        _, cams = pl_module.evaluation_maps(batch)
        threshold = pl_module.current_cam_threshold()
        images, annotations = [], []
        for i, gt in enumerate(batch.gt_boxes()):
            cam = normalize_cam(cams[i])
            pred = cam_to_boxes(cam, threshold)
            picture = overlay_cam(to_rgb_uint8(batch.image[i]), cam)
            picture = draw_boxes(draw_boxes(picture, gt.cpu().numpy(), GT_COLOUR), pred, PRED_COLOUR)
            images.append(picture)
            annotations.append({"gt": gt.cpu().numpy(), "pred": pred, "label": int(batch.label[i])})
        return images, annotations

    @rank_zero_only
    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.current_epoch % self.every_n_epochs:
            return
        datamodule = trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "get_dataset"):
            return
        was_training = pl_module.training
        pl_module.eval()
        images, annotations = self.render(pl_module, datamodule.get_dataset("val"))
        pl_module.train(was_training)
        out_dir = Path(trainer.default_root_dir) / "cam_images" / f"epoch_{trainer.current_epoch:03d}"
        out_dir.mkdir(parents=True, exist_ok=True)
        for i, picture in enumerate(images):
            big = cv2.resize(picture, None, fx=self.upscale, fy=self.upscale, interpolation=cv2.INTER_NEAREST)
            cv2.imwrite(str(out_dir / f"{i:03d}.png"), cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    key="val/cam",
                    images=images,
                    boxes=[_wandb_boxes(a) for a in annotations],
                    caption=[f"label {a['label']}" for a in annotations],
                )


def _wandb_boxes(annotation: dict[str, Any]) -> dict[str, Any]:
    def entries(boxes: np.ndarray, caption: str) -> list[dict[str, Any]]:
        return [
            {
                "position": {"minX": int(b[0]), "minY": int(b[1]), "maxX": int(b[2]), "maxY": int(b[3])},
                "domain": "pixel",
                "class_id": annotation["label"],
                "box_caption": caption,
            }
            for b in np.asarray(boxes).reshape(-1, 4)
        ]

    labels = {annotation["label"]: f"class {annotation['label']}"}
    return {
        "ground_truth": {"box_data": entries(annotation["gt"], "GT"), "class_labels": labels},
        "predictions": {"box_data": entries(annotation["pred"], "pred"), "class_labels": labels},
    }
