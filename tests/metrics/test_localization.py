"""MaxBoxAccV2 / MaxBoxAcc v1, GT-known Loc and Top-1 Loc against the naive reference (definition 5)."""

from __future__ import annotations

import warnings

import metrics_reference as ref
import numpy as np
import pytest
import torch
from metrics_cases import adversarial_cases, random_boxes, random_cases, smooth_map

from wsol_lightning.metrics import GTKnownLoc, MaxBoxAccV2, TopKLoc

INTERVAL = 0.01


def _batches(seed: int, shapes: list[tuple[int, int, int]]) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """Batches of equal-size maps (smooth, blocky, noise) with 1-3 GT boxes each."""
    rng = np.random.default_rng(seed)
    batches = []
    for count, height, width in shapes:
        maps, boxes = [], []
        for i in range(count):
            maps.append(smooth_map(rng, height, width, 4) if i % 3 else rng.random((height, width)) ** 2)
            boxes.append(random_boxes(rng, height, width, int(rng.integers(1, 4))))
        batches.append((np.stack(maps), boxes))
    return batches


BATCHES = _batches(0, [(7, 36, 44), (5, 36, 44), (6, 23, 57)]) + [
    (case.cam[None].astype(np.float64), [case.boxes]) for case in adversarial_cases()
]


def _reference_tables(deltas: tuple[int, ...], multi_contour: bool) -> np.ndarray:
    return np.concatenate(
        [ref.hit_table(list(maps), boxes, INTERVAL, deltas, multi_contour) for maps, boxes in BATCHES]
    )


@pytest.fixture(scope="module")
def tables() -> dict[str, np.ndarray]:
    return {"v2": _reference_tables((30, 50, 70), True), "v1": _reference_tables((50,), False)}


def _feed(metric, with_correct: np.ndarray | None = None) -> None:
    start = 0
    for maps, boxes in BATCHES:
        cams = torch.from_numpy(maps)
        if with_correct is None:
            metric.update(cams, [torch.from_numpy(b) for b in boxes])
        else:
            metric.update(
                cams,
                [torch.from_numpy(b) for b in boxes],
                torch.from_numpy(with_correct[start : start + len(maps)]),
            )
        start += len(maps)


def test_maxboxacc_v2_states_and_values(tables):
    metric = MaxBoxAccV2()
    _feed(metric)
    want = ref.max_box_acc(tables["v2"], INTERVAL)
    assert metric.hits.dtype == torch.long and metric.hits.shape == (3, 100)
    np.testing.assert_array_equal(metric.hits.numpy(), want["counts"])
    assert int(metric.count) == tables["v2"].shape[0]
    value = metric.compute()
    assert value.ndim == 0
    assert value.item() == pytest.approx(want["value"], rel=1e-12, abs=0)
    per_iou = metric.compute_per_iou()
    assert list(per_iou) == [30, 50, 70]
    for row, delta in enumerate((30, 50, 70)):
        accuracy, threshold = per_iou[delta]
        assert accuracy.item() == want["per_delta"][row]
        assert threshold.item() == want["best_threshold"][row]
    thresholds, curve = metric.box_accuracy_curve()
    np.testing.assert_array_equal(thresholds.numpy(), np.arange(0, 1, INTERVAL))
    np.testing.assert_allclose(curve.numpy(), want["counts"] * 100.0 / tables["v2"].shape[0], rtol=0, atol=0)


def test_maxboxacc_v1_and_gt_known_loc(tables):
    v1 = MaxBoxAccV2(iou_thresholds=(50,), multi_contour=False)
    gt_known = GTKnownLoc()
    _feed(v1)
    _feed(gt_known)
    want = ref.max_box_acc(tables["v1"], INTERVAL)
    for metric in (v1, gt_known):
        np.testing.assert_array_equal(metric.hits.numpy(), want["counts"])
        assert metric.compute().item() == pytest.approx(want["value"], rel=1e-12, abs=0)
        assert metric.best_threshold().item() == want["best_threshold"][0]


def test_v2_differs_from_v1_somewhere(tables):
    """Guards the test data: the multi-contour boxes must matter on these maps."""
    assert (tables["v2"][:, 1] != tables["v1"][:, 0]).any()


@pytest.mark.parametrize("mode", ["gt_known", "own"])
def test_top_one_loc(tables, mode):
    n_images = tables["v1"].shape[0]
    correct = np.random.default_rng(4).random(n_images) < 0.6
    metric = TopKLoc(threshold=mode)
    _feed(metric, correct)
    index, value = ref.top_one_loc(tables["v1"][:, 0], correct, own=mode == "own")
    assert metric.compute().item() == pytest.approx(value, rel=1e-12, abs=0)
    assert metric.best_threshold().item() == np.arange(0, 1, INTERVAL)[index]
    np.testing.assert_array_equal(metric.gt_known_hits.numpy(), tables["v1"][:, 0].sum(axis=0))


def test_top_one_loc_is_gt_known_when_always_correct():
    top1 = TopKLoc()
    gt_known = GTKnownLoc()
    for maps, boxes in BATCHES[:3]:
        top1.update(torch.from_numpy(maps), boxes, torch.ones(len(maps), dtype=torch.bool))
        gt_known.update(torch.from_numpy(maps), boxes)
    assert top1.compute().item() == gt_known.compute().item()
    assert top1.best_threshold().item() == gt_known.best_threshold().item()


def test_top_five_through_a_wider_correct_mask():
    maps, boxes = BATCHES[0]
    top1, top5 = TopKLoc(1), TopKLoc(5)
    correct1 = np.array([True, False, False, True, False, True, False])
    correct5 = correct1 | np.array([False, True, False, False, True, False, False])
    top1.update(torch.from_numpy(maps), boxes, torch.from_numpy(correct1))
    top5.update(torch.from_numpy(maps), boxes, torch.from_numpy(correct5))
    assert top5.compute() >= top1.compute()


def test_batching_and_forward_are_consistent():
    maps, boxes = BATCHES[0]
    whole = MaxBoxAccV2(cam_curve_interval=0.001)
    whole.update(torch.from_numpy(maps), boxes)
    pieces = MaxBoxAccV2(cam_curve_interval=0.001)
    batch_values = [
        pieces(torch.from_numpy(maps[i : i + 3]), boxes[i : i + 3]) for i in range(0, len(maps), 3)
    ]
    np.testing.assert_array_equal(pieces.hits.numpy(), whole.hits.numpy())
    assert pieces.compute().item() == whole.compute().item()
    single = MaxBoxAccV2(cam_curve_interval=0.001)
    single.update(torch.from_numpy(maps[:3]), boxes[:3])
    assert batch_values[0].item() == single.compute().item()


def test_float32_and_float64_inputs_agree():
    maps, boxes = BATCHES[1]
    maps32 = maps.astype(np.float32)
    a, b = MaxBoxAccV2(), MaxBoxAccV2()
    a.update(torch.from_numpy(maps32), boxes)
    b.update(torch.from_numpy(maps32.astype(np.float64)), boxes)
    np.testing.assert_array_equal(a.hits.numpy(), b.hits.numpy())


def test_several_boxes_formats_accepted():
    maps, boxes = BATCHES[1]
    as_lists = [b.tolist() for b in boxes]
    as_float = [torch.from_numpy(b).float() for b in boxes]
    results = []
    for given in (boxes, as_lists, as_float):
        metric = MaxBoxAccV2()
        metric.update(torch.from_numpy(maps), given)
        results.append(metric.hits.numpy())
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_empty_batch_is_a_no_op():
    metric = MaxBoxAccV2()
    metric.update(torch.zeros(0, 8, 8, dtype=torch.float64), [])
    top1 = TopKLoc()
    top1.update(torch.zeros(0, 8, 8), [], torch.zeros(0, dtype=torch.bool))
    assert int(metric.count) == 0 and int(metric.hits.sum()) == 0 and int(top1.count) == 0


def test_compute_without_images_raises():
    for metric in (MaxBoxAccV2(), GTKnownLoc(), TopKLoc()):
        with warnings.catch_warnings(), pytest.raises(RuntimeError, match="at least one image"):
            warnings.simplefilter("ignore")  # torchmetrics warns about compute() before update()
            metric.compute()


@pytest.mark.parametrize(
    ("boxes", "message"),
    [
        ([[[0, 0, 3, 3]]], "maps but"),
        ([[[0, 0, 3, 3]], np.zeros((0, 4))], r"\[K >= 1, 4\]"),
        ([[[0, 0, 3, 3]], [[4, 0, 3, 3]]], "x1 >= x0"),
        ([[[0, 0, 3, 3]], [[0.5, 0, 3, 3]]], "integer"),
    ],
)
def test_invalid_boxes(boxes, message):
    with pytest.raises(ValueError, match=message):
        MaxBoxAccV2().update(torch.rand(2, 8, 8), boxes)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        MaxBoxAccV2(iou_thresholds=(50.5,))
    with pytest.raises(ValueError):
        MaxBoxAccV2(iou_thresholds=())
    with pytest.raises(ValueError):
        TopKLoc(threshold="best")
    with pytest.raises(ValueError, match="inf"):
        MaxBoxAccV2().update(torch.tensor([[[0.0, float("inf")], [1.0, 2.0]]]), [[[0, 0, 1, 1]]])
    with pytest.raises(ValueError, match="correctness"):
        TopKLoc().update(torch.rand(2, 8, 8), [[[0, 0, 3, 3]]] * 2, torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="pass one of"):
        MaxBoxAccV2().best_threshold()


def test_random_cases_one_by_one():
    """Maps of many sizes, one image per update, against the reference value."""
    cases = random_cases(seed=21, count=24, max_side=40)
    metric = MaxBoxAccV2()
    for case in cases:
        metric.update(torch.from_numpy(np.asarray(case.cam, dtype=np.float64)[None]), [case.boxes])
    table = np.concatenate([ref.hit_table([c.cam], [c.boxes], INTERVAL, (30, 50, 70), True) for c in cases])
    np.testing.assert_array_equal(metric.hits.numpy(), table.sum(axis=0))
    assert metric.compute().item() == pytest.approx(
        ref.max_box_acc(table, INTERVAL)["value"], rel=1e-12, abs=0
    )
