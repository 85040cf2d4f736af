"""Single-threshold boxes, the union rule, IoU and the torch normalizations of ``wsol_lightning.cam``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsol_lightning.cam import box_iou, cam_to_boxes, max_normalize, minmax_normalize, union_boxes


def _two_blobs() -> np.ndarray:
    cam = np.zeros((8, 10))
    cam[1:3, 1:3] = 1.0
    cam[5:7, 6:9] = 0.6
    return cam


def test_box_rules_largest_all_union() -> None:
    cam = _two_blobs()
    # contours give the reference's one-pixel-wide box [x, y, x + w, y + h]
    assert cam_to_boxes(cam, 0.5, "largest").tolist() == [[6, 5, 9, 7]]
    assert sorted(cam_to_boxes(cam, 0.5, "all").tolist()) == [[1, 1, 3, 3], [6, 5, 9, 7]]
    assert cam_to_boxes(cam, 0.5, "union").tolist() == [[1, 1, 8, 6]]
    assert cam_to_boxes(cam, 0.7, "union").tolist() == [[1, 1, 2, 2]]
    assert cam_to_boxes(np.zeros((4, 4)), 0.5, "union").tolist() == [[0, 0, 0, 0]]
    with pytest.raises(ValueError, match="box rule"):
        cam_to_boxes(cam, 0.5, "biggest")


def test_box_iou_numpy_and_torch_agree() -> None:
    a, b = np.array([0, 0, 1, 1]), np.array([1, 1, 2, 2])
    assert box_iou(a, b) == pytest.approx(1 / 7)
    assert box_iou(torch.tensor(a), torch.tensor(b)).item() == pytest.approx(1 / 7)
    assert box_iou(a, a) == 1.0


def test_normalizations_share_the_nan_and_constant_rule() -> None:
    maps = torch.tensor([[[0.0, 2.0], [1.0, 4.0]], [[3.0, 3.0], [3.0, 3.0]], [[0.0, float("nan")], [1.0, 2.0]]])
    assert minmax_normalize(maps)[0].tolist() == [[0.0, 0.5], [0.25, 1.0]]
    assert max_normalize(maps)[0].tolist() == [[0.0, 0.5], [0.25, 1.0]]
    for normalize in (minmax_normalize, max_normalize):
        out = normalize(maps)
        assert out[2].eq(0).all() and torch.isfinite(out).all()
    assert minmax_normalize(maps)[1].eq(0).all()
    assert max_normalize(torch.zeros(1, 2, 2)).eq(0).all()


def test_union_box_covers_every_pixel_above_the_threshold() -> None:
    maps = torch.zeros(2, 8, 10)
    maps[0, 1:3, 1:3] = 1.0
    maps[0, 5:7, 6:9] = 0.6
    boxes = union_boxes(maps, 0.5)
    assert boxes[0].tolist() == [1, 1, 8, 6]  # both blobs, inclusive (contour rule keeps one)
    assert boxes[1].tolist() == [0, 0, 0, 0]  # no foreground
    assert union_boxes(maps, 0.7)[0].tolist() == [1, 1, 2, 2]
    # inclusive IoU: [0,0,1,1] (4 px) vs [1,1,2,2] (4 px) overlap 1 px -> 1 / 7
    iou = box_iou(torch.tensor([0, 0, 1, 1]), torch.tensor([1, 1, 2, 2]))
    assert iou.item() == pytest.approx(1 / 7)
