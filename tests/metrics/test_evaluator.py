"""The Evaluator's overlap (issue 24): metric updates on a worker thread leave the states of the serial path.

The 2-process DDP half is in ``ddp_check.py`` (``test_ddp.py``): each rank evaluates its batches
overlapped, and the synced states equal one serial process's.
"""

from __future__ import annotations

import threading
import time
from typing import ClassVar

import numpy as np
import pytest
import torch
from metrics_cases import random_boxes, smooth_map
from torchmetrics import Metric

from wsol_lightning.metrics import EvaluationStep, Evaluator
from wsol_lightning.models import CAM

FIELDS = {"boxes", "mask", "part_mask", "images_without_object"}
NUM_CLASSES = 6


def evaluation_steps(seed: int, batches: int, batch_size: int = 4, side: int = 40) -> list[EvaluationStep]:
    """Batches of smooth and noise maps at 10x10 (resized to ``side``), 0-2 boxes, masks and parts."""
    rng = np.random.default_rng(seed)
    steps = []
    for _ in range(batches):
        raw = np.stack([smooth_map(rng, 10, 10, 3) if rng.random() < 0.7 else rng.random((10, 10))
                        for _ in range(batch_size)])
        boxes = [random_boxes(rng, side, side, int(rng.integers(0, 3))).astype(np.int64) for _ in range(batch_size)]
        masks = torch.from_numpy(rng.random((batch_size, side, side)) < 0.3).to(torch.uint8)
        parts = torch.from_numpy(rng.random((batch_size, side, side)) < 0.05).to(torch.uint8)
        steps.append(EvaluationStep(
            labels=torch.from_numpy(rng.integers(0, NUM_CLASSES, batch_size)),
            logits=torch.from_numpy(rng.normal(size=(batch_size, NUM_CLASSES))).float(),
            raw_maps=raw, image_size=(side, side), boxes=boxes,
            annotations={"mask": masks, "part_mask": parts}, cam_threshold=0.3,
        ))
    return steps


def cam_evaluator(overlap: bool, max_pending: int = 2) -> Evaluator:
    """The evaluator of a CAM model (its real metric collection) at interval 0.01."""
    metrics = CAM(num_classes=NUM_CLASSES, backbone="resnet18", pretrained=False).evaluation_metrics()
    return Evaluator(metrics, FIELDS, overlap=overlap, max_pending=max_pending)


def states(evaluator: Evaluator) -> dict[str, torch.Tensor]:
    return {f"{name}.{state}": getattr(metric, state).clone()
            for name, metric in evaluator.metrics.items() for state in metric._defaults}


def test_overlapped_and_serial_evaluation_leave_identical_states_and_values() -> None:
    steps = evaluation_steps(seed=0, batches=7)
    serial, overlapped = cam_evaluator(overlap=False), cam_evaluator(overlap=True)
    for step in steps:
        serial.update(step)
    for step in evaluation_steps(seed=0, batches=7):  # fresh steps: no shared cached resize/sweep
        overlapped.update(step)
    values_serial, values_overlapped = serial.compute(0.3), overlapped.compute(0.3)
    assert {"maxboxacc_v2", "gt_known_loc", "top1_loc", "pxap", "pxap_with_object"} <= set(values_serial)
    expected, got = states(serial), states(overlapped)
    assert expected.keys() == got.keys() and any(int(t.sum()) > 0 for t in expected.values())
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert values_serial.keys() == values_overlapped.keys()
    for key in values_serial:
        assert torch.equal(values_serial[key], values_overlapped[key]), key


class _SlowCount(Metric):
    """Counts images; each update sleeps and records how many updates were queued at that moment."""

    requires: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, fail_on: int | None = None) -> None:
        super().__init__()
        self.add_state("count", torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")
        self.fail_on = fail_on
        self.calls = 0
        self.order: list[int] = []
        self.threads: set[threading.Thread] = set()

    def update(self, step: EvaluationStep) -> None:
        self.calls += 1
        if self.calls == self.fail_on:
            raise RuntimeError("NaN in the map of batch 3")
        time.sleep(0.02)
        self.threads.add(threading.current_thread())
        self.order.append(int(step.labels[0]))
        self.count += len(step.labels)

    def update_from_step(self, step: EvaluationStep) -> None:
        self.update(step)

    def compute(self) -> torch.Tensor:
        return self.count

    def logged_values(self, reference_threshold: float | None) -> dict[str, torch.Tensor]:
        return {"count": self.compute()}


def _numbered_steps(count: int) -> list[EvaluationStep]:
    return [EvaluationStep(labels=torch.tensor([i, i]), logits=torch.zeros(2, 3), raw_maps=np.zeros((2, 2, 2)),
                           image_size=(2, 2), boxes=[np.zeros((0, 4))] * 2) for i in range(count)]


def test_the_queue_is_bounded_and_updates_run_in_batch_order() -> None:
    metric = _SlowCount()
    evaluator = Evaluator({"count": metric}, set(), overlap=True, max_pending=2)
    most_waiting = 0
    for step in _numbered_steps(10):
        evaluator.update(step)
        most_waiting = max(most_waiting, sum(not f.done() for f in evaluator._pending))
    assert most_waiting <= 2  # update() blocked instead of queueing all ten batches
    assert int(evaluator.compute()["count"]) == 20
    assert metric.order == list(range(10))
    (worker,) = metric.threads  # one thread, not the caller's
    assert worker is not threading.current_thread() and worker.name.startswith("wsol-evaluator")
    evaluator.close()
    assert evaluator._worker is None and not worker.is_alive()
    evaluator.update(_numbered_steps(1)[0])  # a closed evaluator takes batches again
    assert int(evaluator.compute()["count"]) == 22


def test_a_worker_error_surfaces_by_compute_and_the_next_epoch_starts_clean() -> None:
    evaluator = Evaluator({"count": _SlowCount(fail_on=3)}, set(), overlap=True)
    with pytest.raises(RuntimeError, match="batch 3"):
        for step in _numbered_steps(5):
            evaluator.update(step)
        evaluator.compute()
    evaluator.reset()
    for step in _numbered_steps(2):
        evaluator.update(step)
    assert int(evaluator.compute()["count"]) == 4


def test_overlap_under_inference_mode_after_a_reset_in_it() -> None:
    """``trainer.validate`` twice on one model: the states reset in inference mode update on the worker."""
    serial, overlapped = cam_evaluator(overlap=False), cam_evaluator(overlap=True)
    for evaluator in (serial, overlapped):
        with torch.inference_mode():
            for epoch in range(2):
                evaluator.reset()
                for step in evaluation_steps(seed=epoch, batches=2):
                    evaluator.update(step)
                values = evaluator.compute(0.3)
    assert values.keys() == serial.compute(0.3).keys()
    for key, value in serial.compute(0.3).items():
        assert torch.equal(value, values[key]), key
