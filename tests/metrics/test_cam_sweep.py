"""Per-threshold hits of the one-sweep kernels against the naive OpenCV reference (definitions 1-4)."""

from __future__ import annotations

import metrics_reference as ref
import numpy as np
import pytest
import torch
from metrics_cases import Case, adversarial_cases, noise_cases, random_boxes, random_cases, smooth_map

from wsol_lightning.cam import cam_thresholds, threshold_hits

DELTAS = (0, 30, 50, 70, 100)
ADVERSARIAL = adversarial_cases()
RANDOM = random_cases(seed=11, count=60)


def _check(case: Case, interval: float, multi_contour: bool, deltas: tuple[int, ...] = DELTAS) -> None:
    want = ref.hit_table([case.cam], [case.boxes], interval, deltas, multi_contour)
    got = threshold_hits(case.cam[None], [case.boxes], cam_thresholds(interval), deltas, multi_contour)
    assert got.dtype == bool and got.shape == want.shape
    mismatched = np.argwhere(got != want)
    assert not len(mismatched), f"{case.name}: (image, delta, threshold) mismatches {mismatched[:5].tolist()}"


@pytest.mark.parametrize("multi_contour", [True, False], ids=["v2", "v1"])
@pytest.mark.parametrize("case", ADVERSARIAL, ids=lambda c: c.name)
def test_adversarial_maps(case, multi_contour):
    _check(case, 0.01, multi_contour)


@pytest.mark.parametrize("multi_contour", [True, False], ids=["v2", "v1"])
@pytest.mark.parametrize("case", RANDOM, ids=lambda c: c.name)
def test_random_maps(case, multi_contour):
    _check(case, 0.01, multi_contour)


@pytest.mark.parametrize("multi_contour", [True, False], ids=["v2", "v1"])
@pytest.mark.parametrize("interval", [0.001, 0.037, 0.25])
def test_other_intervals(interval, multi_contour):
    for case in ADVERSARIAL[:16] + random_cases(seed=12, count=12, max_side=24):
        _check(case, interval, multi_contour)


@pytest.mark.parametrize("multi_contour", [True, False], ids=["v2", "v1"])
def test_white_noise_with_thousands_of_components(multi_contour):
    cases = noise_cases(2)
    assert max(len(ref.boxes_at_threshold(ref.normalize(cases[0].cam), t, True)) for t in (0.2, 0.8)) > 1000
    for case in cases:
        _check(case, 0.01, multi_contour, (30, 50, 70))


@pytest.mark.slow
@pytest.mark.parametrize("multi_contour", [True, False], ids=["v2", "v1"])
def test_many_random_maps_slow(multi_contour):
    for case in random_cases(seed=13, count=1000, max_side=96) + noise_cases(6, size=160):
        _check(case, 0.01, multi_contour)


@pytest.mark.parametrize("multi_contour", [True, False], ids=["v2", "v1"])
def test_mixed_batch_equals_reference(multi_contour):
    """One call over very different maps of one size: no state leaks from one map to the next."""
    rng = np.random.default_rng(5)
    height, width = 33, 41
    maps = [
        smooth_map(rng, height, width, 4),
        rng.random((height, width)),
        np.zeros((height, width)),
        np.round(smooth_map(rng, height, width, 3) * 4),
        (np.indices((height, width)).sum(axis=0) % 2).astype(np.float64),
        np.full((height, width), 7.0),
        rng.random((height, width)) ** 4,
    ]
    boxes = [random_boxes(rng, height, width, 2) for _ in maps]
    want = ref.hit_table(maps, boxes, 0.01, DELTAS, multi_contour)
    got = threshold_hits(
        torch.from_numpy(np.stack(maps)),
        [torch.from_numpy(b) for b in boxes],
        cam_thresholds(0.01),
        DELTAS,
        multi_contour,
    )
    np.testing.assert_array_equal(got, want)


def test_zero_box_when_nothing_is_foreground():
    cam = np.zeros((1, 10, 12))
    thresholds = cam_thresholds(0.1)
    hits = threshold_hits(cam, [np.array([[0, 0, 0, 0]])], thresholds, (50, 100), True)
    assert hits.all()
    third = threshold_hits(cam, [np.array([[0, 0, 0, 2]])], thresholds, (30, 34), True)
    assert third[0, 0].all() and not third[0, 1].any()
