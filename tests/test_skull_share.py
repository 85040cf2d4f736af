"""The skull diagnostic (``SkullShare``) on hand-made maps and skull rings."""

from __future__ import annotations

import pytest
import torch

from wsol_lightning.metrics.diagnostics import SkullShare


def ring(size: int = 4) -> torch.Tensor:
    """A one-pixel ring on the border of a ``size x size`` slice (12 pixels at 4x4)."""
    skull = torch.ones(size, size, dtype=torch.uint8)
    skull[1:-1, 1:-1] = 0
    return skull


def test_share_of_the_normalized_mass_on_the_ring_by_hand() -> None:
    # Tumour slice 1: inner 2x2 at 2, two ring pixels at 1 -> normalized mass 4 inside, 2 x 0.5 on
    # the ring: share 1 / 5 = 20%. Tumour slice 2: one ring pixel at 3, rest 0: share 100%.
    first = torch.zeros(4, 4)
    first[1:3, 1:3] = 2.0
    first[0, 0] = first[3, 2] = 1.0
    second = torch.zeros(4, 4)
    second[0, 3] = 3.0
    # Tumour-free slice 1: constant map (normalized to zeros), i.e. uniform: the ring's area, 12/16.
    # Tumour-free slice 2: 1 inside, 2 on the ring -> after min-max only the ring has mass: 100%.
    constant = torch.full((4, 4), 5.0)
    offset = torch.full((4, 4), 2.0)
    offset[1:3, 1:3] = 1.0
    metric = SkullShare()
    skulls = ring().expand(2, 4, 4)
    metric.update(torch.stack([first, constant]), skulls, torch.tensor([True, False]))
    metric.update(torch.stack([second, offset]), skulls, torch.tensor([True, False]))
    result = metric.compute()
    assert result["skull_cam_share"].item() == pytest.approx((20.0 + 100.0) / 2)
    assert result["skull_cam_share_no_tumour"].item() == pytest.approx((75.0 + 100.0) / 2)


def test_a_uniform_spread_scores_the_ring_area_and_absent_groups_are_not_reported() -> None:
    metric = SkullShare()
    flat = torch.ones(6, 6)
    flat[0, 0] = 0.0  # min-max then gives 1 everywhere but one ring pixel
    metric.update(flat[None], ring(6)[None], torch.tensor([True]))
    result = metric.compute()
    assert set(result) == {"skull_cam_share"}
    assert result["skull_cam_share"].item() == pytest.approx(100.0 * 19 / 35)  # 20 ring px minus the 0
    metric.reset()
    # ramp 0..35 in raster order: the ring holds 0..5, 30..35, 6, 12, 18, 24, 11, 17, 23, 29 = 350 of 630
    ramp = torch.arange(36, dtype=torch.float64).reshape(6, 6)
    metric.update(ramp[None], ring(6)[None], torch.tensor([False]))
    result = metric.compute()
    assert set(result) == {"skull_cam_share_no_tumour"}
    assert result["skull_cam_share_no_tumour"].item() == pytest.approx(100.0 * 350 / 630)
