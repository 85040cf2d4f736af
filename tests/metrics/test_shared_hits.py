"""``update_from_hits``: one :func:`threshold_hits` run feeding several metrics gives ``update``'s states."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from metrics_cases import random_boxes, smooth_map

from wsol_lightning.cam import threshold_hits
from wsol_lightning.metrics import GTKnownLoc, MaxBoxAccV2, TopKLoc


def _batches(seed: int) -> list[tuple[torch.Tensor, list[np.ndarray], torch.Tensor, torch.Tensor]]:
    rng = np.random.default_rng(seed)
    batches = []
    for count in (5, 3):
        maps = np.stack([smooth_map(rng, 30, 40, 4) for _ in range(count)])
        boxes = [random_boxes(rng, 30, 40, int(rng.integers(1, 3))) for _ in range(count)]
        correct1 = torch.arange(count) % 2 == 1
        correct5 = correct1 | (torch.arange(count) % 3 == 0)
        batches.append((torch.from_numpy(maps), boxes, correct1, correct5))
    return batches


def _states(metric: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: getattr(metric, name).clone() for name in metric._defaults}


def test_shared_hits_give_the_states_and_values_of_separate_updates() -> None:
    separate = [GTKnownLoc(), TopKLoc(), TopKLoc(threshold="own")]
    shared = [GTKnownLoc(), TopKLoc(), TopKLoc(threshold="own")]
    for maps, boxes, correct1, correct5 in _batches(0):
        separate[0].update(maps, boxes)
        separate[1].update(maps, boxes, correct1)
        separate[2].update(maps, boxes, correct5)
        hits = threshold_hits(maps, boxes, shared[0].thresholds, (50,), shared[0].multi_contour)
        shared[0].update_from_hits(hits)
        shared[1].update_from_hits(hits[:, 0, :], correct1)
        shared[2].update_from_hits(hits[:, 0, :], correct5)
    assert separate[1].hits.sum() > 0  # some hits on correctly classified images: the states are not all zero
    for a, b in zip(separate, shared):
        assert _states(a).keys() == _states(b).keys()
        for name, value in _states(a).items():
            assert torch.equal(value, getattr(b, name)), name
        assert int(b.count) == 8 and b.compute().item() == a.compute().item()
        assert b.best_threshold().item() == a.best_threshold().item()


def test_update_from_hits_resets_the_cached_value() -> None:
    maps, boxes, _, _ = _batches(0)[0]
    metric = TopKLoc()
    hits = threshold_hits(maps, boxes, metric.thresholds, (50,), False)[:, 0, :]
    assert hits.any()
    metric.update_from_hits(hits, torch.zeros(len(maps), dtype=torch.bool))
    assert metric.compute().item() == 0.0
    metric.update_from_hits(hits, torch.ones(len(maps), dtype=torch.bool))
    assert metric.compute().item() > 0.0


def test_update_from_hits_rejects_wrong_shapes() -> None:
    with pytest.raises(ValueError, match=r"hits must have shape \[N, 3, 100\]"):
        MaxBoxAccV2().update_from_hits(np.zeros((2, 1, 100), dtype=bool))
    with pytest.raises(ValueError, match=r"hits must have shape \[N, 100\]"):
        TopKLoc().update_from_hits(np.zeros((2, 1, 100), dtype=bool), np.ones(2, dtype=bool))
    with pytest.raises(ValueError, match="correctness flags"):
        TopKLoc().update_from_hits(np.zeros((2, 100), dtype=bool), np.ones(3, dtype=bool))
