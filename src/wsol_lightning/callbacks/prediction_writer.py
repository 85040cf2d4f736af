"""``WSOLPredictionWriter``: ``predict`` outputs as files (JSON per image, COCO detections, PNGs).

Layout under ``output_dir`` (``<id>`` is the image's path relative to the predicted folder, with
its extension kept so ``a.jpg`` and ``a.png`` do not collide):

=============================== ==============================================================
``predictions/<id>.json``       top-k classes (index, name, probability), the threshold used,
                                boxes of the top-1 class in the original and evaluated frames
``maps/<id>.npy``               the normalized map of the top-1 class, float32, evaluated frame
``overlays/<id>.png``           heatmap, boxes and class name (white on a black box, sized to
                                the image) over the original image
``masks/<id>.png``              binary mask (255 where the map is above the threshold),
                                original frame (``write_masks``)
``detections.json``             COCO-style: ``images``, ``categories``, ``annotations`` (boxes
                                in the original frame, ``[x, y, w, h]``, ``score``)
``failed.txt``                  ``<id><TAB><reason>`` per file that could not be decoded
=============================== ==============================================================

Boxes follow the standard evaluation's rule at one threshold
(:func:`~wsol_lightning.cam.cam_to_boxes`) on the min-max normalized map of the
top-1 class in the evaluated frame (``crop_size`` square). Original-frame boxes are those boxes
mapped back: the evaluated pixels ``[x0, x1]`` cover ``[x0, x1 + 1) * W / crop_size`` of the original
width, and the box is the smallest set of original pixels covering that interval. Overlays and
masks use the map resized (bilinear) to the original frame and thresholded by the same rule.

Under DDP every rank writes the files of its own images (predict shards without repetition);
the COCO file and ``failed.txt`` are merged on rank 0 from per-rank partial files.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.callbacks import BasePredictionWriter

from wsol_lightning.callbacks.cam_visualizer import (
    PRED_COLOUR,
    draw_boxes,
    draw_label,
    line_thickness,
    overlay_cam,
    to_rgb_uint8,
)
from wsol_lightning.cam import cam_to_boxes, foreground_mask, normalize_cam
from wsol_lightning.data.batch import WSOLBatch
from wsol_lightning.data.datasets.folder import decode_upright_image

PARTIAL_NAME = "detections.rank{rank}.partial.json"


def boxes_to_original(boxes: np.ndarray, evaluated_hw: tuple[int, int], original_hw: tuple[int, int]) -> np.ndarray:
    """Map inclusive boxes from the evaluated frame to the original one (smallest covering box)."""
    boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
    (eval_h, eval_w), (orig_h, orig_w) = evaluated_hw, original_hw
    out = np.empty_like(boxes)
    for axis, (size_eval, size_orig) in enumerate(((eval_w, orig_w), (eval_h, orig_h))):
        low, high = boxes[:, axis], boxes[:, axis + 2]
        out[:, axis] = np.floor(low * size_orig / size_eval).astype(np.int64)
        out[:, axis + 2] = np.ceil((high + 1) * size_orig / size_eval).astype(np.int64) - 1
        out[:, [axis, axis + 2]] = out[:, [axis, axis + 2]].clip(0, size_orig - 1)
    return out


def output_stem(image_id: str) -> PurePosixPath:
    """A relative output path for an image id (no root, no ``..``)."""
    parts = [p for p in PurePosixPath(str(image_id).replace("\\", "/")).parts if p not in ("/", "..", ".")]
    return PurePosixPath(*parts) if parts else PurePosixPath("image")


def merge_partials(output_dir: Path, world_size: int, categories: list[dict[str, Any]]) -> None:
    """Merge the ranks' partial files into ``detections.json`` and ``failed.txt``; remove the partials.

    Images are numbered ``1..N`` in the order of their ids, so the file does not depend on how
    the images were sharded.
    """
    images: list[dict[str, Any]] = []
    failed: list[list[str]] = []
    for rank in range(world_size):
        partial = output_dir / PARTIAL_NAME.format(rank=rank)
        content = json.loads(partial.read_text())
        images += content["images"]
        failed += content["failed"]
        partial.unlink()
    images.sort(key=lambda entry: entry["file_name"])
    coco_images, annotations = [], []
    for image_number, entry in enumerate(images, start=1):
        coco_images.append({"id": image_number, **{k: entry[k] for k in ("file_name", "width", "height")}})
        for x0, y0, x1, y1 in entry["boxes"]:
            width, height = x1 - x0 + 1, y1 - y0 + 1
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_number,
                    "category_id": entry["category_id"],
                    "bbox": [x0, y0, width, height],
                    "area": width * height,
                    "score": entry["score"],
                    "iscrowd": 0,
                }
            )
    coco = {"images": coco_images, "annotations": annotations, "categories": categories}
    (output_dir / "detections.json").write_text(json.dumps(coco, indent=1))
    lines = [f"{image_id}\t{reason}\n" for image_id, reason in sorted(failed)]
    (output_dir / "failed.txt").write_text("".join(lines))


class WSOLPredictionWriter(BasePredictionWriter):
    """Writes boxes, maps, overlays and masks of ``predict`` (layout in the module docstring).

    Use it with ``wsol predict ... --output_dir OUT`` (the CLI adds it with the defaults below) or
    as any callback (``--trainer.callbacks+=wsol_lightning.callbacks.WSOLPredictionWriter
    --trainer.callbacks.output_dir OUT``). It needs the predictions of
    :meth:`~wsol_lightning.models.base.WSOLModule.predict_step`.

    Args:
        output_dir: folder the files are written under (created).
        top_k: number of classes listed per image (at most the number of classes).
        threshold: CAM threshold of the boxes and masks in ``[0, 1)``; ``None``: the threshold chosen
            on validation and stored in the checkpoint (0.5, with a warning, when it holds none).
        write_overlays: write ``overlays/<id>.png``.
        write_masks: write ``masks/<id>.png`` (the binary foreground map, original frame).
        write_maps: write ``maps/<id>.npy`` (the normalized map, evaluated frame).
        multi_contour: a box per contour of the thresholded map (as MaxBoxAccV2's boxes) instead of
            the largest contour only (as GT-known and Top-1 Loc's box).
    """

    def __init__(
        self,
        output_dir: str,
        top_k: int = 5,
        threshold: float | None = None,
        write_overlays: bool = True,
        write_masks: bool = False,
        write_maps: bool = True,
        multi_contour: bool = False,
    ) -> None:
        super().__init__(write_interval="batch")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if threshold is not None and not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold must be in [0, 1) or None (the checkpoint's), got {threshold}")
        self.output_dir = Path(output_dir)
        self.top_k = top_k
        self.threshold = threshold
        self.write_overlays = write_overlays
        self.write_masks = write_masks
        self.write_maps = write_maps
        self.multi_contour = multi_contour
        self._images: list[dict[str, Any]] = []
        self._failed: list[list[str]] = []
        self._class_names: list[str] | None = None
        self._threshold_used = 0.5
        self._threshold_source = ""

    # -- run state ------------------------------------------------------------------------
    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._images, self._failed = [], []
        datamodule = trainer.datamodule
        self._class_names = datamodule.class_names() if hasattr(datamodule, "class_names") else None
        if self.threshold is not None:
            self._threshold_used, self._threshold_source = self.threshold, "argument"
        else:
            self._threshold_used = pl_module.current_cam_threshold()
            self._threshold_source = pl_module.cam_threshold_source()
            if self._threshold_source == "default":
                warnings.warn(
                    "the checkpoint holds no validation CAM threshold (no validation ran); boxes use 0.5. "
                    "Pass the writer's threshold to choose one.",
                    stacklevel=2,
                )
        self.output_dir.mkdir(parents=True, exist_ok=True)

    def class_name(self, index: int) -> str | None:
        names = self._class_names
        return names[index] if names is not None and 0 <= index < len(names) else None

    # -- per batch ------------------------------------------------------------------------
    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: dict[str, Any],
        batch_indices: Any,
        batch: WSOLBatch,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        failed = batch.failed or [None] * len(batch)
        paths = batch.path
        cams = normalize_cam(prediction["cam"].numpy())
        probabilities = prediction["probabilities"]
        top = probabilities.topk(min(self.top_k, probabilities.shape[1]), dim=1)
        for i, image_id in enumerate(batch.image_id):
            if failed[i] is not None:
                self._failed.append([image_id, failed[i]])
                continue
            ranked = [(int(c), float(p)) for c, p in zip(top.indices[i], top.values[i])]
            original_hw = tuple(int(v) for v in batch.orig_size[i])
            picture = None
            if self.write_overlays:
                # Images read from files are drawn in their original frame, others (synthetic) in the evaluated one.
                picture = decode_upright_image(paths[i]) if paths is not None else to_rgb_uint8(batch.image[i])
            self._write_image(image_id, cams[i], ranked, original_hw, picture)

    def _write_image(
        self,
        image_id: str,
        cam: np.ndarray,
        ranked: list[tuple[int, float]],
        original_hw: tuple[int, int],
        picture: np.ndarray | None,
    ) -> None:
        """Write the files of one image; ``picture`` (RGB, original or evaluated frame) is overlaid."""
        stem = output_stem(image_id)
        threshold = self._threshold_used
        evaluated_hw = cam.shape
        has_foreground = bool(foreground_mask(cam, threshold).any())
        boxes_eval = cam_to_boxes(cam, threshold, "all" if self.multi_contour else "largest") if has_foreground else np.zeros((0, 4), np.int64)
        boxes_orig = boxes_to_original(boxes_eval, evaluated_hw, original_hw)
        top_class, top_score = ranked[0]
        files: dict[str, str] = {}
        original_map = cv2.resize(cam.astype(np.float32), original_hw[::-1], interpolation=cv2.INTER_LINEAR).clip(0, 1)
        if self.write_maps:
            files["map"] = self._save(f"maps/{stem}.npy", lambda path: np.save(path, cam.astype(np.float32)))
        if self.write_masks:
            mask = foreground_mask(original_map, threshold).astype(np.uint8) * 255
            files["mask"] = self._save(f"masks/{stem}.png", lambda path: cv2.imwrite(str(path), mask))
        if picture is not None:
            in_original = picture.shape[:2] == tuple(original_hw)
            overlay = self._overlay(
                picture, original_map if in_original else cam, boxes_orig if in_original else boxes_eval,
                top_class, top_score,
            )
            files["overlay"] = self._save(
                f"overlays/{stem}.png", lambda path: cv2.imwrite(str(path), cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR))
            )
        record = {
            "image_id": image_id,
            "original_size": {"height": original_hw[0], "width": original_hw[1]},
            "evaluated_size": {"height": evaluated_hw[0], "width": evaluated_hw[1]},
            "top_k": [{"class": c, "name": self.class_name(c), "score": p} for c, p in ranked],
            "localized_class": top_class,
            "threshold": threshold,
            "threshold_source": self._threshold_source,
            "multi_contour": self.multi_contour,
            "box_format": "inclusive pixel [x0, y0, x1, y1]",
            "boxes": boxes_orig.tolist(),
            "boxes_evaluated": boxes_eval.tolist(),
            "files": files,
        }
        self._save(f"predictions/{stem}.json", lambda path: path.write_text(json.dumps(record, indent=1)))
        self._images.append(
            {
                "file_name": image_id,
                "width": original_hw[1],
                "height": original_hw[0],
                "boxes": boxes_orig.tolist(),
                "category_id": top_class,
                "score": top_score,
            }
        )

    def _save(self, relative: str, write: Any) -> str:
        path = self.output_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path)
        return relative

    def _overlay(
        self, picture: np.ndarray, cam: np.ndarray, boxes: np.ndarray, top_class: int, top_score: float
    ) -> np.ndarray:
        """Heatmap, boxes (line width growing with the image) and the label ``<class name> <score>``.

        The label is white on a black box in the top-left corner, sized to the image
        (:func:`~wsol_lightning.callbacks.cam_visualizer.draw_label`): legible from 32 to 4000 px.
        """
        height, width = picture.shape[:2]
        overlay = draw_boxes(overlay_cam(picture, cam), boxes, PRED_COLOUR, line_thickness(height, width))
        name = self.class_name(top_class) or f"class {top_class}"
        return draw_label(overlay, f"{name} {top_score:.2f}")

    # -- end of the run -------------------------------------------------------------------
    def on_predict_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        partial = {"images": self._images, "failed": self._failed}
        (self.output_dir / PARTIAL_NAME.format(rank=trainer.global_rank)).write_text(json.dumps(partial))
        trainer.strategy.barrier("wsol_prediction_writer")
        if trainer.is_global_zero:
            num_classes = int(getattr(pl_module, "num_classes", 0))
            categories = [{"id": c, "name": self.class_name(c) or str(c)} for c in range(num_classes)]
            merge_partials(self.output_dir, trainer.world_size, categories)
        trainer.strategy.barrier("wsol_prediction_writer_merged")
