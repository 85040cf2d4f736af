"""SPA's and DANet's union-box protocol (``UnionBoxLoc``, ``union_box_threshold``) on hand-made maps."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from wsol_lightning.cam import box_iou, cam_to_boxes
from wsol_lightning.data import Synthetic, WSOLDataModule
from wsol_lightning.errors import ConfigError
from wsol_lightning.metrics import UnionBoxLoc
from wsol_lightning.metrics.evaluator import EvaluationStep
from wsol_lightning.models import CAM


def _two_blobs() -> np.ndarray:
    cam = np.zeros((8, 10))
    cam[1:3, 1:3] = 1.0
    cam[5:7, 6:9] = 0.6
    return cam


def _values(metric: UnionBoxLoc) -> dict[str, float]:
    return {name: float(value) for name, value in metric.compute().items()}


def test_union_box_spans_both_blobs_where_the_largest_contour_keeps_one() -> None:
    cam, gt = _two_blobs(), np.array([[1, 1, 8, 6]])
    assert box_iou(cam_to_boxes(cam, 0.5, "largest")[0], gt[0]) < 0.5  # the contour rule misses
    metric = UnionBoxLoc(0.5)
    metric.update(cam[None], [gt], [True], [True])
    assert _values(metric) == {"top1_loc_union": 100.0, "top5_loc_union": 100.0, "gt_known_loc_union": 100.0}
    above = UnionBoxLoc(0.7)  # only the 1.0 blob is foreground: box [1, 1, 2, 2], IoU 4 / 48
    above.update(cam[None], [gt], [True], [True])
    assert _values(above)["gt_known_loc_union"] == 0.0


def test_threshold_is_inclusive_and_iou_must_exceed_half() -> None:
    cam = np.zeros((6, 6))
    cam[0, 0] = 1.0
    cam[0:3, 0:4] = np.maximum(cam[0:3, 0:4], 0.5)  # rows 0-2 at exactly 0.5 after normalization
    gt = [np.array([[0, 0, 3, 3]])]  # 16 px; the 0.5 box [0, 0, 3, 2] covers 12: IoU 0.75
    at, above = UnionBoxLoc(0.5), UnionBoxLoc(0.5 + 1e-9)
    at.update(cam[None], gt, [True], [True])
    above.update(cam[None], gt, [True], [True])  # box [0, 0, 0, 0]: IoU 1 / 16
    assert _values(at)["gt_known_loc_union"] == 100.0 and _values(above)["gt_known_loc_union"] == 0.0
    half = np.zeros((6, 6))
    half[0:2, 0:4] = 1.0  # box [0, 0, 3, 1]: 8 of the 16 px, IoU exactly 0.5 -> no hit (SPA: ``>``)
    strict = UnionBoxLoc(0.5)
    strict.update(half[None], gt, [True], [True])
    assert _values(strict)["gt_known_loc_union"] == 0.0


def test_best_of_several_gt_boxes_and_top_k_need_the_class() -> None:
    cam = np.zeros((3, 8, 8))
    cam[:, 4:8, 4:8] = 1.0
    boxes = [np.array([[0, 0, 1, 1], [4, 4, 7, 7]])] * 3  # the second GT box is hit
    metric = UnionBoxLoc(0.5)
    # image 0: top-1 right; image 1: wrong top-1, label in the top-5; image 2: label not in the top-5
    metric.update(cam, boxes, np.array([True, False, False]), np.array([True, True, False]))
    values = _values(metric)
    assert values["gt_known_loc_union"] == 100.0
    assert values["top5_loc_union"] == pytest.approx(200 / 3) and values["top1_loc_union"] == pytest.approx(100 / 3)


def test_images_without_boxes_are_not_counted_and_states_are_summed_integers() -> None:
    cam = np.zeros((2, 8, 8))
    cam[:, 0:4, 0:4] = 1.0
    metric = UnionBoxLoc(0.5)
    metric.update(cam, [np.zeros((0, 4), np.int64), np.array([[0, 0, 3, 3]])], [True, True], [True, True])
    assert int(metric.count) == 1 and _values(metric)["top1_loc_union"] == 100.0
    metric.update(cam[:1], [np.zeros((0, 4), np.int64)], [True], [True])
    assert int(metric.count) == 1
    for name in ("gt_known_hits", "top1_hits", "top5_hits", "count"):
        assert getattr(metric, name).dtype == torch.long and metric._reductions[name].__name__ == "dim_zero_sum"
    assert UnionBoxLoc(0.5).logged_values() == {}


def test_update_from_step_reads_the_resized_maps_and_the_top_k_flags() -> None:
    raw = np.zeros((2, 4, 4))
    raw[:, 2:4, 2:4] = 1.0
    logits = torch.tensor([[0.0, 1.0, 0.5], [2.0, 0.0, 0.0]])  # label 0: top-2 / top-1
    step = EvaluationStep(labels=torch.tensor([0, 0]), logits=logits, raw_maps=raw, image_size=(16, 16),
                          boxes=[np.array([[8, 8, 15, 15]])] * 2)
    via_step, direct = UnionBoxLoc(0.5), UnionBoxLoc(0.5)
    via_step.update_from_step(step)
    direct.update(step.maps, step.boxes, step.correct(1), step.correct(5))
    assert _values(via_step) == _values(direct)
    assert _values(via_step)["top1_loc_union"] == 50.0 and _values(via_step)["top5_loc_union"] == 100.0


def test_module_logs_the_union_metrics_only_with_a_threshold() -> None:
    assert "union_box_loc" not in CAM(num_classes=4).evaluation_metrics()
    with pytest.raises(ConfigError, match="union_box_threshold"):
        CAM(num_classes=4, union_box_threshold=1.5)
    data = WSOLDataModule(Synthetic(image_size=32, train_size=8, val_size=8, test_size=8), resize_size=36,
                          crop_size=32, batch_size=8, num_workers=0)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    torch.manual_seed(0)
    (metrics,) = trainer.test(CAM(num_classes=data.num_classes, union_box_threshold=0.3), datamodule=data, verbose=False)
    for name in ("top1_loc_union", "top5_loc_union", "gt_known_loc_union", "top1_loc", "maxboxacc_v2"):
        assert 0.0 <= metrics[f"test/{name}"] <= 100.0, name
