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


def _ring_with_a_hole(tail_x: tuple[int, int]) -> np.ndarray:
    """A 1-pixel ring (x, y 2..9) at 200 around a basin at 100, a tail at 200 on row 5, 0 elsewhere."""
    cam = np.zeros((14, 14))
    cam[2:10, 2:10] = 200.0
    cam[3:9, 3:9] = 100.0
    cam[5, tail_x[0] : tail_x[1]] = 200.0
    return cam


@pytest.mark.parametrize(
    ("tail_x", "gt_y1"),
    [((0, 2), 10), ((10, 13), 10), ((0, 2), 11)],
    ids=["left-tail", "right-tail", "taller-gt"],
)
def test_hole_that_hits_from_the_ring_level_down(tail_x, gt_y1):
    """The hole box [2, 2, 10, 10] (IoU 1 or 0.9 with the GT box) exists at every cut from the
    basin's level to the ring's, while the ring's own box misses IoU 90: the hole sweep must reach
    the highest cut (254: the ring quantizes to 255) and bound holes by the component's box plus
    one pixel (the tail widens the component's box to the left or right; with the taller GT box
    only the padded box, 9,900 px x 100, reaches 90 x |GT| = 8,100 x 100, not the bare 8,000)."""
    cam, gt = _ring_with_a_hole(tail_x), np.array([[2, 2, 10, gt_y1]])
    _check(Case("ring", cam, gt), 0.001, True, (90,))
    hits = threshold_hits(cam[None], [gt], cam_thresholds(0.001), (90,), True)[0, 0]
    assert hits[cam_thresholds(0.001) * 255 >= 254].any()


def test_short_and_wide_labels_agree(monkeypatch):
    """V2 labels maps of up to SHORT_LABELS_MAX_PIXELS pixels in int16; int32 gives the same hits."""
    from wsol_lightning.cam import sweep

    rng = np.random.default_rng(19)
    # checkerboards: every background pixel off the frame is a hole of its own (about half the
    # map in roots), at the largest int16 size (254 x 258 = 65532 pixels) and just past it
    boards = [
        Case("board", (np.indices((h, w)).sum(axis=0) % 2) * rng.random((h, w)), random_boxes(rng, h, w, 2))
        for h, w in ((254, 258), (256, 256))
    ]
    cases = random_cases(seed=17, count=20, max_side=64) + noise_cases(2, size=96) + boards
    thresholds = cam_thresholds(0.01)
    build, dtypes = sweep._workspace, []

    def recording_workspace(*args):
        ws = build(*args)
        dtypes.append(ws.label.dtype)
        return ws

    monkeypatch.setattr(sweep, "_workspace", recording_workspace)
    hits = [threshold_hits(c.cam[None], [c.boxes], thresholds, DELTAS, True) for c in cases]
    assert dtypes == [np.int16] * (len(cases) - 1) + [np.int32]
    monkeypatch.setattr(sweep, "SHORT_LABELS_MAX_PIXELS", 0)
    for case, want in zip(cases, hits):
        got = threshold_hits(case.cam[None], [case.boxes], thresholds, DELTAS, True)
        np.testing.assert_array_equal(got, want, err_msg=f"{case.name} {case.cam.shape}")
    assert dtypes[len(cases) :] == [np.int32] * len(cases)
