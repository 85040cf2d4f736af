"""PxAP against the naive reference (definition 6), including scores exactly on bin edges."""

from __future__ import annotations

import warnings

import metrics_reference as ref
import numpy as np
import pytest
import torch
from metrics_cases import smooth_map

from wsol_lightning.metrics import PxAP


def _dataset(seed: int, count: int, height: int, width: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    cams, masks = [], []
    for i in range(count):
        cam = smooth_map(rng, height, width, 3)
        mask = (cam + rng.normal(scale=0.2, size=cam.shape) > np.median(cam)).astype(np.uint8)
        mask[rng.random(mask.shape) < 0.1] = 255
        if i % 3 == 0:
            cam = np.round(cam * 5)
        cams.append(cam)
        masks.append(mask)
    return cams, masks


def _bin_edge_maps() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Maps already in [0, 1] (0 and 1 present, so normalization keeps them): every score is a bin edge."""
    rng = np.random.default_rng(9)
    cams, masks = [], []
    for interval in (0.01, 0.001):
        edges = np.arange(0, 1, interval)
        cam = rng.choice(edges, size=(20, 30))
        cam[0, 0], cam[-1, -1] = 0.0, 1.0
        cams.append(cam)
        masks.append(rng.choice(np.array([0, 1, 255], dtype=np.uint8), size=cam.shape))
    return cams, masks


@pytest.mark.parametrize("interval", [0.01, 0.001, 0.05])
@pytest.mark.parametrize("data", ["smooth", "bin_edges"])
def test_pxap_matches_reference(interval, data):
    cams, masks = _dataset(0, 9, 26, 31) if data == "smooth" else _bin_edge_maps()
    positive, negative, value = ref.pxap(cams, masks, interval)
    metric = PxAP(cam_curve_interval=interval)
    for start in range(0, len(cams), 4):
        metric.update(
            torch.from_numpy(np.stack(cams[start : start + 4])),
            torch.from_numpy(np.stack(masks[start : start + 4])),
        )
    np.testing.assert_array_equal(metric.positive_hist.numpy(), positive)
    np.testing.assert_array_equal(metric.negative_hist.numpy(), negative)
    result = metric.compute()
    assert result.ndim == 0 and result.dtype == torch.float64
    assert result.item() == pytest.approx(value, rel=1e-12, abs=1e-12)


def test_edge_scores_fall_below_their_decimal_bin():
    """np.arange's edge 35 is 0.35000000000000003: a score of exactly 0.35 lands in bin 34."""
    edges = np.arange(0, 1, 0.01)
    assert edges[35] > 0.35
    metric = PxAP()
    cam = np.array([[0.0, 0.35, edges[35], 0.07, 1.0]])
    metric.update(torch.from_numpy(cam[None]), torch.from_numpy(np.ones((1, 1, 5), dtype=np.uint8)))
    hist = metric.positive_hist.numpy()
    assert hist[34] == 1 and hist[35] == 1 and hist[7] == 1
    assert hist[100] == 1  # a score of exactly 1.0 lands in [1, 2)
    np.testing.assert_array_equal(hist, np.histogram(cam, bins=np.append(edges, [1.0, 2.0, 3.0]))[0])


def test_perfect_and_ignored_pixels():
    cam = np.zeros((1, 8, 8))
    cam[0, 2:5, 2:5] = 1.0
    mask = (cam > 0).astype(np.uint8)
    mask[0, 0, :] = 255
    cam[0, 0, :] = 1.0  # high scores on ignored pixels do not count as false positives
    metric = PxAP()
    metric.update(torch.from_numpy(cam), torch.from_numpy(mask))
    assert metric.compute().item() == pytest.approx(100.0)


def test_no_positive_pixel_raises():
    metric = PxAP()
    with warnings.catch_warnings(), pytest.raises(RuntimeError, match="object pixel"):
        warnings.simplefilter("ignore")  # torchmetrics warns about compute() before update()
        metric.compute()
    metric.update(torch.rand(2, 5, 5), torch.zeros(2, 5, 5, dtype=torch.uint8))
    with pytest.raises(RuntimeError, match="object pixel"):
        metric.compute()


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="one shape"):
        PxAP().update(torch.rand(2, 5, 5), torch.zeros(2, 5, 6, dtype=torch.uint8))
