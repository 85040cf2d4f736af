"""Randomized and adversarial localization maps with GT boxes for the metric tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Case:
    name: str
    cam: np.ndarray
    boxes: np.ndarray


def random_boxes(rng: np.random.Generator, height: int, width: int, count: int) -> np.ndarray:
    x = np.sort(rng.integers(0, width, size=(count, 2)), axis=1)
    y = np.sort(rng.integers(0, height, size=(count, 2)), axis=1)
    return np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)


def smooth_map(rng: np.random.Generator, height: int, width: int, blobs: int) -> np.ndarray:
    """Sum of Gaussian bumps (some negative) on a float64 grid."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    cam = np.zeros((height, width))
    for _ in range(blobs):
        cy, cx = rng.uniform(-2, height + 2), rng.uniform(-2, width + 2)
        sigma = rng.uniform(0.7, max(1.0, min(height, width) / 3))
        cam += rng.uniform(-0.5, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
    return cam


def random_cases(seed: int, count: int, max_side: int = 64) -> list[Case]:
    """Smooth maps of random size, scale and quantization (plateaus, blocky ties), 1-3 GT boxes."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        height, width = (int(v) for v in rng.integers(1, max_side + 1, size=2))
        kind = i % 4
        if kind == 0:
            cam = smooth_map(rng, height, width, int(rng.integers(1, 6)))
        elif kind == 1:
            cam = np.round(smooth_map(rng, height, width, 3) * rng.integers(2, 9)) * 1.0
        elif kind == 2:
            block = int(rng.integers(2, 6))
            small = rng.integers(0, 4, size=(height // block + 1, width // block + 1)).astype(np.float64)
            cam = np.kron(small, np.ones((block, block)))[:height, :width]
        else:
            cam = rng.random((height, width)) ** 3
        cam = cam * rng.choice([1e-3, 1.0, 250.0, -7.0]) + rng.normal() * 10
        if i % 5 == 0:
            cam = cam.astype(np.float32)
        cases.append(
            Case(f"random{seed}_{i}", cam, random_boxes(rng, height, width, int(rng.integers(1, 4))))
        )
    return cases


def _square_ring(cam: np.ndarray, top: int, left: int, size: int, value: float, thickness: int = 1) -> None:
    cam[top : top + size, left : left + size] = value
    inner = size - 2 * thickness
    if inner > 0:
        cam[top + thickness : top + thickness + inner, left + thickness : left + thickness + inner] = 0


def adversarial_cases() -> list[Case]:
    """The adversarial maps listed in issue 2 (one ``Case`` each, several GT boxes where useful)."""
    rng = np.random.default_rng(2020)
    cases = [
        Case("constant", np.full((20, 30), 3.7), np.array([[2, 3, 10, 12]])),
        Case("all_zero_origin_gt", np.zeros((16, 16)), np.array([[0, 0, 0, 0]])),
        Case("all_zero_thin_gt", np.zeros((16, 16)), np.array([[0, 0, 0, 2], [0, 0, 1, 1]])),
    ]
    nan = rng.random((18, 22))
    nan[4, 5] = np.nan
    cases.append(Case("nan", nan, np.array([[0, 0, 0, 0], [3, 3, 9, 9]])))

    peaks = rng.random((40, 50)) * 1e-3
    peaks[10, 12] = 1e6
    peaks[30, 40] = -1e6
    cases.append(Case("peaks_1e6", peaks, np.array([[10, 12, 12, 14], [0, 0, 49, 39]])))

    ring = np.zeros((30, 34))
    _square_ring(ring, 5, 6, 15, 1.0)
    ring += np.linspace(0, 0.1, 34)[None, :]
    cases.append(Case("ring_thin", ring, np.array([[4, 5, 21, 20], [7, 8, 19, 18]])))

    yy, xx = np.mgrid[0:41, 0:45]
    radius = np.hypot(yy - 20, xx - 22)
    annulus = ((radius > 8) & (radius < 12)).astype(np.float64) + 0.2 * (radius < 4)
    cases.append(Case("ring_thick", annulus, np.array([[9, 8, 35, 33], [17, 15, 27, 25]])))

    nested = np.zeros((40, 40))
    _square_ring(nested, 2, 2, 36, 1.0)
    _square_ring(nested, 6, 6, 28, 0.6, thickness=2)
    _square_ring(nested, 11, 11, 18, 0.8)
    _square_ring(nested, 15, 15, 10, 0.3)
    nested[19:21, 19:21] = 0.9
    cases.append(Case("nested_rings", nested, np.array([[2, 2, 38, 38], [13, 13, 25, 25], [18, 18, 22, 22]])))

    spur = np.zeros((9, 14))
    for y, x in [(1, 2), (2, 1), (2, 3), (3, 2)]:
        spur[y, x] = 1.0
    spur[2, 4:11] = 1.0
    spur[6, 3:6] = 0.5
    cases.append(Case("diamond_ring_spur", spur, np.array([[1, 1, 3, 3], [1, 1, 11, 4]])))

    lines = np.zeros((32, 32))
    lines[5, 3:29] = 1.0
    lines[8:30, 20] = 0.8
    np.fill_diagonal(lines[10:, :22], 0.6)
    np.fill_diagonal(np.fliplr(lines[12:30, 0:18]), 0.7)
    cases.append(Case("one_pixel_lines", lines, np.array([[3, 5, 28, 5], [20, 8, 20, 29], [0, 10, 21, 31]])))

    ties = np.zeros((30, 40))
    for top, left in [(2, 3), (2, 30), (20, 3), (20, 30), (12, 17)]:
        ties[top : top + 4, left : left + 4] = 1.0
        ties[top + 4, left] = 1.0
    cases.append(Case("equal_area_ties", ties, np.array([[3, 2, 7, 7], [30, 20, 34, 25]])))

    diagonal_ties = np.zeros((20, 20))
    for start in (1, 11):
        np.fill_diagonal(diagonal_ties[start : start + 6, start : start + 6], 1.0)
    cases.append(Case("zero_area_ties", diagonal_ties, np.array([[11, 11, 17, 17]])))

    border = rng.random((25, 31)) * 0.05
    border[0:4, 0:6] = 1.0
    border[21:25, 27:31] = 0.9
    border[10:15, 0] = 0.8
    border[0, 15:20] = 0.7
    _square_ring(border, 14, 22, 8, 0.95)
    border[14:22, 30] = 0.95
    border[17:19, 29:31] = 0.0
    cases.append(Case("border_objects", border, np.array([[0, 0, 6, 4], [22, 14, 30, 21]])))

    open_ring = np.zeros((20, 20))
    _square_ring(open_ring, 0, 0, 12, 1.0)
    open_ring[0, 4:7] = 0.0
    cases.append(Case("ring_open_to_frame", open_ring, np.array([[0, 0, 12, 12], [1, 1, 11, 11]])))

    # A square spiral wall whose height rises along its length, inside a shallow basin: the
    # enclosed corridor opens and closes, holes split and merge as the threshold moves.
    spiral = np.full((29, 29), 0.05)
    y, x, step, value = 14, 14, 1, 0.2
    direction = 0
    moves = [(0, 1), (1, 0), (0, -1), (-1, 0)]
    while 1 <= y < 28 and 1 <= x < 28:
        for _ in range(2):
            dy, dx = moves[direction % 4]
            for _ in range(step):
                if 1 <= y < 28 and 1 <= x < 28:
                    spiral[y, x] = value
                    value += 0.004
                y, x = y + dy, x + dx
            direction += 1
        step += 2
    spiral[0, :] = spiral[-1, :] = spiral[:, 0] = spiral[:, -1] = 0.1
    cases.append(Case("spiral", spiral, np.array([[1, 1, 27, 27], [10, 10, 18, 18]])))

    # Quantized levels T-1..T+2 around the cut of t = 0.3 (T = int(0.3 * 255) = 76), exact extremes.
    cut = int(0.3 * 255)
    plateau = np.zeros((24, 36))
    plateau[0, 0] = 1.0
    for j, level in enumerate([cut - 1, cut, cut + 1, cut + 2]):
        plateau[4:20, 2 + 8 * j : 8 + 8 * j] = (level + 0.5) / 255
    plateau[10:14, 4:30] = (cut + 0.5) / 255
    cases.append(
        Case("plateaus_at_cut", plateau, np.array([[18, 4, 23, 19], [26, 4, 31, 19], [2, 4, 31, 19]]))
    )

    exact = rng.integers(0, 256, size=(12, 15)) / 255.0
    exact[0, 0], exact[-1, -1] = 0.0, 1.0
    cases.append(Case("exact_levels", exact, np.array([[2, 2, 9, 7]])))

    tiny = np.zeros((30, 30))
    for value, (y, x) in zip(np.linspace(0.2, 1.0, 9), rng.integers(0, 30, size=(9, 2))):
        tiny[y, x] = value
    tiny[14:16, 14] = 0.95
    cases.append(Case("tiny_objects", tiny, np.array([[14, 14, 14, 15], [0, 0, 1, 1]])))

    checker = (np.indices((17, 23)).sum(axis=0) % 2).astype(np.float64)
    checker[5:12, 5:12] *= 0.5
    cases.append(Case("checkerboard", checker, np.array([[5, 5, 11, 11], [0, 0, 22, 16]])))

    cases.append(Case("single_pixel", np.array([[4.2]]), np.array([[0, 0, 0, 0]])))
    cases.append(Case("single_row", rng.random((1, 30)), np.array([[3, 0, 12, 0]])))
    cases.append(Case("single_column", rng.random((27, 1)), np.array([[0, 5, 0, 20]])))
    cases.append(Case("two_by_two", np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([[0, 0, 1, 1]])))

    several = smooth_map(rng, 48, 48, 5)
    cases.append(Case("several_gt_boxes", several, random_boxes(rng, 48, 48, 6)))
    cases.append(Case("non_square", smooth_map(rng, 23, 71, 4), random_boxes(rng, 23, 71, 2)))
    cases.append(Case("negative_values", -3 - 2 * rng.random((19, 26)), np.array([[5, 5, 15, 12]])))
    cases.append(Case("noise_small", rng.random((48, 64)), random_boxes(rng, 48, 64, 3)))
    return cases


def noise_cases(count: int, size: int = 224) -> list[Case]:
    """White-noise maps: thousands of components and holes at mid thresholds."""
    rng = np.random.default_rng(7)
    return [
        Case(f"noise{i}", rng.random((size, size)), random_boxes(rng, size, size, 2)) for i in range(count)
    ]
