"""Map-level helpers: normalization, quantization, thresholds, resize (issue 2, definitions 1-2)."""

from __future__ import annotations

import ast
from pathlib import Path

import cv2
import metrics_reference as ref
import numpy as np
import pytest
import torch
from metrics_cases import adversarial_cases, random_cases

from wsol_lightning.cam import (
    cam_thresholds,
    normalize_cam,
    pxap_bin_edges,
    quantize_cam,
    resize_cam,
    sweep,
    threshold_cuts,
)
from wsol_lightning.metrics.evaluator import EvaluationStep

CASES = adversarial_cases() + random_cases(seed=3, count=40)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_normalize_matches_reference_bitwise(case):
    got = normalize_cam(case.cam)
    want = ref.normalize(case.cam)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, want)
    if want.max() > 0:
        assert got.max() == 1.0 and got.min() == 0.0


def _sweep_quantization(cam: np.ndarray) -> tuple[np.ndarray, int]:
    """The quantized map and status as the box sweep computes them (its value range and loader)."""
    cam = np.ascontiguousarray(cam, dtype=np.float64)
    height, width = cam.shape
    ws = sweep._workspace(height, width, False)
    lowest, span, status = sweep._value_range(cam.reshape(-1))
    if status != 0:
        return np.zeros((height, width), np.uint8), status
    sweep._load_map(ws, cam, lowest, span, height, width, True)
    return ws.qpad.reshape(height + 2, width + 2)[1:-1, 1:-1], status


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_fused_quantization_matches_normalize_then_floor(case):
    quantized, status = _sweep_quantization(case.cam)
    want = (ref.normalize(case.cam) * 255).astype(np.uint8)
    np.testing.assert_array_equal(quantized, want)
    np.testing.assert_array_equal(quantize_cam(normalize_cam(case.cam)), want)
    assert status == (1 if want.max() == 0 else 0)
    no_box, offsets = np.zeros((1, 4), np.int64), np.array([0, 1])
    _, tops, statuses = sweep.level_hit_masks(case.cam[None], no_box, offsets, np.array([50]), True)
    assert tops[0] == want.max() and statuses[0] == status


def test_normalize_division_not_reciprocal():
    # x / m and x * (1 / m) differ for these values; the reference divides.
    cam = np.array([[0.0, 0.7, 3.0 * 0.1, 49.0]])
    got = normalize_cam(cam)
    np.testing.assert_array_equal(got, (cam - 0.0) / 49.0)
    assert got.max() == 1.0


def test_normalize_nan_constant_and_batched_torch():
    maps = torch.stack([torch.full((4, 5), 2.5), torch.rand(4, 5, dtype=torch.float64), torch.rand(4, 5)])
    maps[2, 1, 1] = float("nan")
    out = normalize_cam(maps)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64 and out.shape == maps.shape
    assert (out[0] == 0).all() and (out[2] == 0).all()
    np.testing.assert_array_equal(out[1].numpy(), ref.normalize(maps[1].numpy()))


def test_infinite_values_are_rejected_but_all_inf_is_constant():
    cam = np.random.default_rng(0).random((6, 7))
    cam[2, 3] = np.inf
    with pytest.raises(ValueError, match="inf"):
        normalize_cam(cam)
    assert _sweep_quantization(cam)[1] == 2
    np.testing.assert_array_equal(normalize_cam(np.full((3, 3), np.inf)), np.zeros((3, 3)))


@pytest.mark.parametrize("interval", [0.01, 0.001, 0.037, 0.25])
def test_thresholds_and_cuts(interval):
    thresholds = cam_thresholds(interval)
    np.testing.assert_array_equal(thresholds, np.arange(0, 1, interval))
    top = np.array([0, 1, 37, 254, 255], dtype=np.uint8)
    cuts = threshold_cuts(thresholds, top)
    want = [[int(t * m) for t in thresholds] for m in top]
    np.testing.assert_array_equal(cuts, want)
    np.testing.assert_array_equal(
        pxap_bin_edges(interval), np.append(np.arange(0, 1, interval), [1.0, 2.0, 3.0])
    )


def test_thresholds_reject_bad_interval():
    with pytest.raises(ValueError):
        cam_thresholds(0.0)


@pytest.mark.parametrize(
    ("source", "size"), [((14, 14), (224, 224)), ((7, 9), (31, 45)), ((40, 33), (12, 20))]
)
def test_resize_matches_opencv_bicubic_float64(source, size):
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(3, *source)).astype(np.float32)
    want = np.stack(
        [cv2.resize(m.astype(np.float64), (size[1], size[0]), interpolation=cv2.INTER_CUBIC) for m in maps]
    )
    batched = resize_cam(maps, size)
    assert batched.dtype == np.float64 and batched.shape == (3, *size)
    np.testing.assert_array_equal(batched, want)
    np.testing.assert_array_equal(resize_cam(maps[1], size), want[1])
    tensor = resize_cam(torch.from_numpy(maps), size)
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float64
    np.testing.assert_array_equal(tensor.numpy(), want)


def test_resize_is_bicubic_by_hand_values():
    """Golden values of wsolevaluation's ``cv2.resize(cam, INTER_CUBIC)`` (inference.py L79-94), by hand.

    OpenCV's bicubic: Keys kernel with ``a = -0.75``, half-pixel centres, replicated border. Doubling
    ``[0, 1]`` samples it at ``-0.25, 0.25, 0.75, 1.25``: ``w(1.25) = -0.10546875`` and
    ``w(0.75) + w(1.75) = 0.26171875 - 0.03515625``, then the mirror image; it overshoots ``[0, 1]``
    where bilinear gives ``0, 0.25, 0.75, 1``. The map ``[[0, 0], [0, 1]]`` is separable: the outer product.
    """
    row = np.array([-0.10546875, 0.2265625, 0.7734375, 1.10546875])
    np.testing.assert_array_equal(resize_cam(np.array([[0.0, 1.0], [0.0, 1.0]]), (2, 4)), np.stack([row, row]))
    corner = np.array([[[0.0, 0.0], [0.0, 1.0]]], dtype=np.float32)
    np.testing.assert_array_equal(resize_cam(corner, (4, 4)), np.outer(row, row)[None])
    np.testing.assert_array_equal(resize_cam(torch.from_numpy(corner), (4, 4)).numpy(), np.outer(row, row)[None])
    step = EvaluationStep(torch.tensor([0]), torch.zeros(1, 2), corner.astype(np.float64), (4, 4), [np.zeros((0, 4))])
    np.testing.assert_array_equal(step.maps, np.outer(row, row)[None])  # what every metric scores


def test_numba_kernels_are_not_imported_at_package_import():
    """Importing ``wsol_lightning.cam`` / ``metrics`` stays light: only ``cam/sweep.py`` imports numba, lazily."""
    package = Path(__file__).resolve().parents[2] / "src" / "wsol_lightning"
    for module in [*(package / "cam").glob("*.py"), *(package / "metrics").glob("*.py")]:
        if module.name == "sweep.py":
            continue
        for node in ast.parse(module.read_text()).body:
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(name == "numba" or name.endswith("cam.sweep") for name in names), module.name
