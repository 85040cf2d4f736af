from __future__ import annotations

import pytest
import torch

from wsol_lightning.models.components.self_correlation import (
    cosine_affinity,
    high_order_self_correlation,
    normalize_columns,
    seeded_correlation_map,
    seeded_self_correlation_map,
    self_correlation,
)


def _two_groups() -> torch.Tensor:
    """[1, 3, 2, 2]: positions 0, 1 along e1 (norms 1 and 3), positions 2, 3 along e2 (norms 2 and 0.5)."""
    positions = torch.tensor([[1.0, 0, 0], [3.0, 0, 0], [0, 2.0, 0], [0, 0.5, 0]])
    return positions.T.reshape(1, 3, 2, 2)


def test_self_correlation_of_two_orthogonal_groups_is_block_diagonal() -> None:
    expected = torch.tensor([[1.0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]])
    torch.testing.assert_close(self_correlation(_two_groups())[0], expected)


def test_negative_cosine_is_cut_by_relu_and_small_ones_by_the_threshold() -> None:
    positions = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 0.1]])  # cos(0, 2) = 0.995, cos(1, 2) < 0
    features = positions.T.reshape(1, 2, 3)
    correlation = self_correlation(features)[0]
    assert correlation[0, 1] == 0 and correlation[1, 2] == 0 and correlation[0, 2] > 0.99
    assert self_correlation(features, threshold=0.999)[0, 0, 2] == 0


def test_high_order_by_hand_on_two_groups() -> None:
    # S' (diagonal zeroed) swaps the two members of each group, so T^2 = identity (up to eps) and
    # the combination is max(SC1 = 1/2 on each block, 2 * I) normalized: columns [0.8, 0.2].
    features = _two_groups()
    first = high_order_self_correlation(features, mode="first_order")[0]
    blocks = torch.tensor([[1.0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]])
    torch.testing.assert_close(first, blocks / (2 + 1e-5))
    high = high_order_self_correlation(features, second_order_threshold=0.5, mode="high_order")[0]
    torch.testing.assert_close(high, torch.eye(4), atol=1e-4, rtol=0)
    combined = high_order_self_correlation(features, second_order_weight=2.0, mode="combined")[0]
    block = torch.tensor([[0.8, 0.2], [0.2, 0.8]])
    torch.testing.assert_close(combined, torch.block_diag(block, block), atol=1e-5, rtol=0)


def test_second_order_threshold_is_relative_to_one_over_n() -> None:
    torch.manual_seed(0)
    features = torch.rand(1, 6, 3, 3)  # positive features: every pair correlates
    loose = high_order_self_correlation(features, 0.0, second_order_threshold=0.0, mode="high_order")
    cut = high_order_self_correlation(features, 0.0, second_order_threshold=1.0, mode="high_order")
    below = loose < 1.0 / 9
    assert below.any() and (cut[below] == 0).all() and torch.equal(cut[~below], loose[~below])


@pytest.mark.parametrize("mode", ["combined", "first_order"])
def test_columns_of_the_normalized_correlation_sum_to_one(mode: str) -> None:
    torch.manual_seed(0)
    correlation = high_order_self_correlation(torch.randn(3, 16, 5, 5), mode=mode)
    torch.testing.assert_close(correlation.sum(dim=1), torch.ones(3, 25), atol=1e-4, rtol=0)
    assert not torch.allclose(correlation.sum(dim=2), torch.ones(3, 25), atol=1e-3)  # rows do not


def test_normalize_columns_divides_each_column_by_its_sum() -> None:
    matrix = torch.tensor([[[1.0, 2.0], [3.0, 2.0]]])
    torch.testing.assert_close(normalize_columns(matrix, 0.0), torch.tensor([[[0.25, 0.5], [0.75, 0.5]]]))


def test_seeds_select_columns_not_rows() -> None:
    # column j of the correlation = affinity of every position to seed position j
    correlation = torch.tensor([[[0.0, 4.0, 1.0], [1.0, 0.0, 1.0], [2.0, 2.0, 3.0]]])
    object_seeds = torch.tensor([[False, True, False]])
    none = torch.zeros(1, 3, dtype=torch.bool)
    column_one = seeded_correlation_map(correlation, object_seeds, none)
    torch.testing.assert_close(column_one, torch.tensor([[1.0, 0.0, 0.5]]))
    # seed columns 0 and 1: column-normalized [0, .5, 1] + [1, 0, .5] = [1, .5, 1.5] -> [.5, 0, 1]
    two = torch.tensor([[True, True, False]])
    columns_zero_one = seeded_correlation_map(correlation, two, none)
    torch.testing.assert_close(columns_zero_one, torch.tensor([[0.5, 0.0, 1.0]]))
    # object column 1 minus background column 0: [1, 0, .5] - [0, .5, 1] -> ReLU [1, 0, 0]
    background = torch.tensor([[True, False, False]])
    torch.testing.assert_close(
        seeded_correlation_map(correlation, object_seeds, background), torch.tensor([[1.0, 0.0, 0.0]])
    )
    # no object seed: the map is all zeros
    assert torch.equal(seeded_correlation_map(correlation, none, background), torch.zeros(1, 3))


def test_batched_chunked_map_equals_per_image() -> None:
    torch.manual_seed(0)
    blocks = [torch.randn(5, 8, 4, 4), torch.randn(5, 12, 4, 4)]
    object_seeds = torch.rand(5, 16) > 0.6
    background_seeds = ~object_seeds & (torch.rand(5, 16) > 0.5)
    batched = seeded_self_correlation_map(blocks, object_seeds, background_seeds, chunk_size=2)
    for i in range(5):
        single = seeded_self_correlation_map(
            [b[i : i + 1] for b in blocks], object_seeds[i : i + 1], background_seeds[i : i + 1], chunk_size=1
        )
        torch.testing.assert_close(batched[i : i + 1], single)
    summed = high_order_self_correlation(blocks[0]) + high_order_self_correlation(blocks[1])
    torch.testing.assert_close(batched, seeded_correlation_map(summed, object_seeds, background_seeds))


def test_bf16_autocast_computes_the_product_in_float32() -> None:
    torch.manual_seed(0)
    features = torch.randn(2, 16, 4, 4)
    reference = high_order_self_correlation(features)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        affinity = cosine_affinity(features.bfloat16(), features.bfloat16())
        correlation = high_order_self_correlation(features)
    assert affinity.dtype == torch.float32 and correlation.dtype == torch.float32
    torch.testing.assert_close(correlation, reference)


def test_cosine_affinity_is_differentiable_and_rejects_mismatched_inputs() -> None:
    a = torch.randn(2, 4, 3, 3, requires_grad=True)
    b = torch.randn(2, 4, 5)
    affinity = cosine_affinity(a, b)
    assert affinity.shape == (2, 9, 5)
    affinity.sum().backward()
    assert a.grad is not None and torch.isfinite(a.grad).all()
    with pytest.raises(ValueError, match="same batch and channels"):
        cosine_affinity(a, torch.randn(2, 3, 5))


def test_bad_arguments_are_named() -> None:
    features = torch.randn(1, 4, 2, 2)
    with pytest.raises(ValueError, match="order"):
        high_order_self_correlation(features, order=0)
    with pytest.raises(ValueError, match="mode"):
        high_order_self_correlation(features, mode="third")  # type: ignore[arg-type]
    seeds = torch.ones(1, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="chunk_size"):
        seeded_self_correlation_map([features], seeds, seeds, chunk_size=0)
    with pytest.raises(ValueError, match="share batch and spatial"):
        seeded_self_correlation_map([features, torch.randn(1, 4, 3, 3)], seeds, seeds)
