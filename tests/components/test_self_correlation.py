from __future__ import annotations

import math

import pytest
import torch

from wsol_lightning.models.components.self_correlation import (
    colour_position_features,
    cosine_affinity,
    gaussian_affinity,
    high_order_cross_correlation,
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


@pytest.mark.parametrize("order", [2, 3])
def test_high_order_walks_the_column_stochastic_matrix_from_the_left(order: int) -> None:
    """SPA's ``hsc`` (vgg_spa.py L130-138): ``H <- colnorm(H @ T)``, ``T`` column-normalized, not ``H^T @ T``.

    Positive features make ``T`` dense and asymmetric, so a transposed aggregation differs.
    """
    torch.manual_seed(0)
    features = torch.rand(1, 6, 3, 3)
    similarity = self_correlation(features, 0.0)[0].double()
    transition = similarity.fill_diagonal_(0.0)
    transition = transition / (transition.sum(dim=0, keepdim=True) + 1e-5)
    assert not torch.allclose(transition, transition.T, atol=1e-3)
    expected = transition
    for _ in range(order - 1):
        expected = expected @ transition
        expected = expected / (expected.sum(dim=0, keepdim=True) + 1e-10)
    got = high_order_self_correlation(features, 0.0, second_order_threshold=0.0, order=order, mode="high_order")
    torch.testing.assert_close(got[0].double(), expected, atol=1e-6, rtol=0)


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


def _two_colour_image() -> torch.Tensor:
    """[1, 3, 4, 4]: left half black (0, 0, 0), right half white (1, 1, 1)."""
    image = torch.zeros(1, 3, 4, 4)
    image[..., 2:] = 1.0
    return image


def test_colour_affinity_of_two_flat_regions_is_a_block_matrix() -> None:
    # 2x2 grid: cells (black, white, black, white); colour distance^2 3, sigma_c 1 -> exp(-1.5)
    features = colour_position_features(_two_colour_image(), (2, 2), colour_sigma=1.0, position_sigma=1e6)
    across = math.exp(-1.5)
    black, white = [1.0, across, 1.0, across], [across, 1.0, across, 1.0]
    expected = torch.tensor([black, white, black, white])
    torch.testing.assert_close(gaussian_affinity(features)[0], expected)


def test_position_term_of_the_bilateral_affinity_by_hand() -> None:
    # cell centres (.25, .25), (.25, .75), (.75, .25), (.75, .75); sigma_p .5: exp(-2 d^2), d^2 = .25 or .5
    features = colour_position_features(_two_colour_image(), (2, 2), colour_sigma=1.0, position_sigma=0.5)
    e = math.exp
    expected = torch.tensor(
        [
            [1.0, e(-1.5 - 0.5), e(-0.5), e(-1.5 - 1.0)],
            [e(-2.0), 1.0, e(-2.5), e(-0.5)],
            [e(-0.5), e(-2.5), 1.0, e(-2.0)],
            [e(-2.5), e(-0.5), e(-2.0), 1.0],
        ]
    )
    torch.testing.assert_close(gaussian_affinity(features)[0], expected)
    with pytest.raises(ValueError, match="colour_sigma"):
        colour_position_features(_two_colour_image(), (2, 2), colour_sigma=0.0, position_sigma=0.5)


def test_image_affinity_separates_what_flat_features_cannot() -> None:
    # Constant features: every position correlates equally (one block: HSC diag 1/3, off 2/9).
    # The image's colours split black from white; seed at position 0 (black).
    features = torch.ones(1, 4, 2, 2)
    image_features = colour_position_features(_two_colour_image(), (2, 2), colour_sigma=1.0, position_sigma=1e6)
    seeds = torch.tensor([[True, False, False, False]])
    none = torch.zeros(1, 4, dtype=torch.bool)
    plain = seeded_self_correlation_map([features], seeds, none)
    torch.testing.assert_close(plain, torch.tensor([[1.0, 0.0, 0.0, 0.0]]), atol=1e-4, rtol=0)
    only_image = seeded_self_correlation_map(
        [features], seeds, none, image_features=image_features, image_affinity_weight=1.0
    )
    torch.testing.assert_close(only_image, torch.tensor([[1.0, 0.0, 1.0, 0.0]]), atol=1e-4, rtol=0)
    # w = 1/2: column 0 = (1/3, 2/9, 2/9, 2/9) / 2 + (1, c, 1, c) / (2 + 2c) / 2, c = exp(-1.5)
    c = math.exp(-1.5)
    column = [(f + a / (2 + 2 * c)) / 2 for f, a in zip((1 / 3, 2 / 9, 2 / 9, 2 / 9), (1, c, 1, c), strict=True)]
    expected = [(v - column[1]) / (column[0] - column[1]) for v in column]
    mixed = seeded_self_correlation_map(
        [features], seeds, none, image_features=image_features, image_affinity_weight=0.5
    )
    torch.testing.assert_close(mixed, torch.tensor([expected]), atol=1e-4, rtol=0)


def test_image_affinity_weight_zero_is_exactly_spa() -> None:
    torch.manual_seed(0)
    blocks = [torch.randn(3, 8, 4, 4), torch.randn(3, 6, 4, 4)]
    object_seeds, background_seeds = torch.rand(3, 16) > 0.6, torch.rand(3, 16) > 0.8
    image_features = colour_position_features(torch.randn(3, 3, 32, 32), (4, 4), 0.5, 0.5)
    plain = seeded_self_correlation_map(blocks, object_seeds, background_seeds)
    zero = seeded_self_correlation_map(
        blocks, object_seeds, background_seeds, image_features=image_features, image_affinity_weight=0.0
    )
    assert torch.equal(plain, zero)
    with pytest.raises(ValueError, match="image_affinity_weight"):
        seeded_self_correlation_map(blocks, object_seeds, background_seeds, image_affinity_weight=0.5)
    with pytest.raises(ValueError, match="image_affinity_weight"):
        seeded_self_correlation_map(blocks, object_seeds, background_seeds, image_affinity_weight=1.5)


def test_cross_correlation_with_itself_is_the_self_correlation() -> None:
    torch.manual_seed(0)
    features = torch.randn(2, 8, 3, 3)
    itself = torch.tensor([True, True])
    for mode in ("combined", "first_order", "high_order"):
        cross = high_order_cross_correlation(features, features, itself, mode=mode, order=3)
        assert torch.equal(cross, high_order_self_correlation(features, mode=mode, order=3))
    # a copy is another image: its self-pairs stay, so only the first order is the same
    copy = high_order_cross_correlation(features, features.clone(), None, mode="first_order")
    assert torch.equal(copy, high_order_self_correlation(features, mode="first_order"))
    copy_combined = high_order_cross_correlation(features, features.clone())
    assert not torch.allclose(copy_combined, high_order_self_correlation(features))


def _partner_through_its_own_structure() -> tuple[torch.Tensor, torch.Tensor]:
    """Image: e1, e1, e2, e2. Partner: e3 (like nothing in the image), (e1 + e3) / sqrt 2, e2, e2."""
    image = torch.tensor([[1.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0]])
    partner = torch.tensor([[0.0, 0, 1], [1, 0, 1], [0, 1, 0], [0, 1, 0]])
    return image.T.reshape(1, 3, 2, 2), partner.T.reshape(1, 3, 2, 2)


def test_cross_high_order_spreads_over_the_partner_before_matching_into_the_image() -> None:
    # Partner position 0 (e3) matches no image position (first order column 0 = 0); the partner's own
    # transition T_bb sends it to partner position 1 (its only neighbour), which matches image
    # positions 0 and 1 equally: H[:, 0] = T_ab[:, 1] = (.5, .5, 0, 0).
    image, partner = _partner_through_its_own_structure()
    first = high_order_cross_correlation(image, partner, mode="first_order")[0]
    assert torch.equal(first[:, 0], torch.zeros(4))
    expected = torch.tensor([0.5, 0.5, 0.0, 0.0])
    high = high_order_cross_correlation(image, partner, mode="high_order")[0]
    torch.testing.assert_close(high[:, 0], expected, atol=1e-4, rtol=0)
    combined = high_order_cross_correlation(image, partner, mode="combined")[0]
    torch.testing.assert_close(combined[:, 0], expected, atol=1e-4, rtol=0)


def test_partner_object_seeds_join_the_image_seeds() -> None:
    image, partner = _partner_through_its_own_structure()
    none = torch.zeros(1, 4, dtype=torch.bool)
    partner_seed = torch.tensor([[True, False, False, False]])
    # the image has no seed of its own: SPA gives 0, the partner's seed finds image positions 0, 1
    assert torch.equal(seeded_self_correlation_map([image], none, none), torch.zeros(1, 4))
    crossed = seeded_self_correlation_map(
        [image], none, none, partner_blocks=[partner], partner_object_seeds=partner_seed
    )
    torch.testing.assert_close(crossed, torch.tensor([[1.0, 1.0, 0.0, 0.0]]), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="partner_object_seeds"):
        seeded_self_correlation_map([image], none, none, partner_blocks=[partner])


def test_being_ones_own_partner_gives_the_map_without_partner() -> None:
    torch.manual_seed(0)
    blocks = [torch.randn(3, 8, 4, 4), torch.randn(3, 6, 4, 4)]
    object_seeds, background_seeds = torch.rand(3, 16) > 0.6, torch.rand(3, 16) > 0.8
    plain = seeded_self_correlation_map(blocks, object_seeds, background_seeds)
    itself = seeded_self_correlation_map(
        blocks, object_seeds, background_seeds, chunk_size=2, partner_blocks=blocks,
        partner_object_seeds=object_seeds, same_image=torch.ones(3, dtype=torch.bool),
    )
    torch.testing.assert_close(itself, plain, atol=1e-6, rtol=0)
    # a partner with identical features: the first-order maps agree as well
    copies = seeded_self_correlation_map(
        blocks, object_seeds, background_seeds, mode="first_order",
        partner_blocks=[b.clone() for b in blocks], partner_object_seeds=object_seeds,
    )
    first_order = seeded_self_correlation_map(blocks, object_seeds, background_seeds, mode="first_order")
    torch.testing.assert_close(copies, first_order, atol=1e-6, rtol=0)
