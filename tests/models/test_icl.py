from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import make_batch, tiny_cli_args

from wsol_lightning.cli import run_cli
from wsol_lightning.models import ICL, get_model
from wsol_lightning.models.components import BACKBONES
from wsol_lightning.models.components.non_local import NonLocalBlock
from wsol_lightning.models.icl import ICLAttentionLayer, ICLNet
from wsol_lightning.models.icl.loss import (
    attention_masks,
    contrastive_attention_loss,
    foreground_consistency_loss,
    masked_average_pool,
    threshold_map,
)

ICL_CONFIG = "experiments/icl.yaml"


def _map(values: list[list[float]]) -> torch.Tensor:
    return torch.tensor(values).view(1, 1, len(values), len(values[0]))


# -- masks ------------------------------------------------------------------------------------
def test_masks_of_a_hand_made_map_minmax_reference() -> None:
    # min-max normalized: 0, .1, .3 / .5, .95, 1.0; background < 0.2, peak >= 0.9
    attention = _map([[0.0, 1.0, 3.0], [5.0, 9.5, 10.0]])
    masks = attention_masks(attention, background_threshold=0.2, drop_threshold=0.9, reference="minmax")
    assert masks.foreground.view(-1).tolist() == [False, False, True, True, True, True]
    assert masks.background.view(-1).tolist() == [True, True, False, False, False, False]
    assert masks.dropped_foreground.view(-1).tolist() == [False, False, True, True, False, False]


def test_masks_of_a_hand_made_map_max_reference() -> None:
    # ADL's rule: fractions of the max (10): background < 2, peak >= 9
    attention = _map([[1.0, 2.5, 3.0], [5.0, 9.5, 10.0]])
    masks = attention_masks(attention, background_threshold=0.2, drop_threshold=0.9, reference="max")
    assert masks.background.view(-1).tolist() == [True, False, False, False, False, False]
    assert masks.dropped_foreground.view(-1).tolist() == [False, True, True, True, False, False]


def test_random_selection_drop_mask_is_the_dropped_foreground() -> None:
    layer = ICLAttentionLayer(4, background_threshold=0.2, drop_threshold=0.9)
    attention = torch.rand(3, 1, 5, 5)
    expected = attention_masks(attention, 0.2, 0.9).dropped_foreground.float()
    assert torch.equal(layer.selection_drop_mask(attention), expected)
    peak_only = ICLAttentionLayer(4, drop_background=False).selection_drop_mask(attention)
    assert torch.equal(peak_only, (threshold_map(attention) < 0.9).float())  # ADL's mask on t(a)


def test_masked_average_pool_by_hand_and_empty_mask_gives_zeros() -> None:
    features = torch.arange(8.0).view(1, 2, 2, 2)  # channel 0: 0 1 2 3, channel 1: 4 5 6 7
    mask = torch.tensor([[True, False], [False, True]]).view(1, 1, 2, 2)
    torch.testing.assert_close(masked_average_pool(features, mask), torch.tensor([[1.5, 5.5]]))
    assert torch.equal(masked_average_pool(features, torch.zeros_like(mask)), torch.zeros(1, 2))


# -- contrastive attention loss ---------------------------------------------------------------
def test_contrastive_loss_zero_when_the_margin_is_satisfied_positive_otherwise() -> None:
    fg = torch.tensor([[1.0, 0.0]])
    drop = torch.tensor([[1.0, 0.0]])
    valid = torch.tensor([True])
    far_bg = torch.tensor([[-1.0, 0.0]])  # d(drop, fg) = 0, d(drop, bg) = 4 > margin
    assert contrastive_attention_loss(fg, drop, far_bg, valid, margin=0.5).item() == 0.0
    # d(drop, fg) = 2, d(drop, bg) = 0: 2 - 0 + 0.5
    loss = contrastive_attention_loss(torch.tensor([[0.0, 1.0]]), drop, drop.clone(), valid, margin=0.5)
    assert loss.item() == pytest.approx(2.5)
    # plain L2: sqrt(2) - 0 + 0.5
    loss_l2 = contrastive_attention_loss(torch.tensor([[0.0, 1.0]]), drop, drop.clone(), valid, 0.5, False)
    assert loss_l2.item() == pytest.approx(2**0.5 + 0.5, rel=1e-5)


def test_contrastive_loss_skips_invalid_samples_and_is_never_nan() -> None:
    fg = torch.tensor([[0.0, 1.0], [0.0, 1.0]], requires_grad=True)
    drop = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    bg = drop.clone()
    loss = contrastive_attention_loss(fg, drop, bg, torch.tensor([True, False]), margin=0.5)
    assert loss.item() == pytest.approx(2.5)  # the mean over the one valid sample
    none = contrastive_attention_loss(fg, drop, bg, torch.tensor([False, False]), margin=0.5)
    none.backward()
    assert none.item() == 0.0 and torch.equal(fg.grad, torch.zeros_like(fg))


# -- foreground consistency loss --------------------------------------------------------------
def test_consistency_loss_by_hand_with_resizing() -> None:
    earlier = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]]).view(1, 1, 2, 4)  # pools to [1, 0]
    reference = _map([[0.0, 3.0]])  # normalizes to [0, 1]
    assert foreground_consistency_loss([earlier], reference).item() == pytest.approx(1.0)
    agreeing = _map([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 2.0]])
    assert foreground_consistency_loss([agreeing], reference).item() == 0.0
    half = _map([[0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])  # pools to [.5, 1], normalizes to [0, 1]
    assert foreground_consistency_loss([half], reference, norm="l1").item() == 0.0


def test_no_gradient_reaches_the_reference_attention() -> None:
    earlier = torch.rand(2, 1, 6, 6, requires_grad=True)
    reference = torch.rand(2, 1, 3, 3, requires_grad=True)
    foreground_consistency_loss([earlier], reference).backward()
    assert reference.grad is None
    assert earlier.grad is not None and earlier.grad.abs().sum() > 0


def test_consistency_skips_constant_references() -> None:
    earlier = torch.rand(2, 1, 4, 4, requires_grad=True)
    reference = torch.stack([torch.full((1, 2, 2), 3.0), torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])])
    loss = foreground_consistency_loss([earlier], reference)
    only_second = foreground_consistency_loss([earlier[1:]], reference[1:])
    torch.testing.assert_close(loss, only_second)
    constant = foreground_consistency_loss([earlier], torch.ones(2, 1, 2, 2))
    constant.backward()
    assert constant.item() == 0.0 and torch.isfinite(earlier.grad).all()


# -- non-local block and random selection -----------------------------------------------------
@pytest.mark.parametrize("use_batchnorm", [True, False])
def test_non_local_block_is_the_identity_at_initialization(use_batchnorm: bool) -> None:
    block = NonLocalBlock(6, use_batchnorm=use_batchnorm)
    x = torch.randn(2, 6, 5, 4)
    assert torch.equal(block(x), x)
    assert torch.equal(block.eval()(x), x)


def test_non_local_block_attends_in_float32_under_bf16_autocast() -> None:
    block = NonLocalBlock(8)
    torch.nn.init.normal_(block.output_projection[1].weight)
    x = torch.randn(2, 8, 6, 6) * 50
    with torch.autocast("cpu", dtype=torch.bfloat16):
        affinity = block.affinity(x)
        out = block(x)
    assert affinity.dtype == torch.float32
    torch.testing.assert_close(affinity.sum(-1), torch.ones(2, 36))
    assert torch.isfinite(out.float()).all() and not torch.equal(out.float(), x)


def test_random_selection_is_reproducible_with_a_seed_and_identity_at_eval() -> None:
    layer = ICLAttentionLayer(4, use_non_local=False, drop_rate=0.5)
    x = torch.rand(2, 4, 6, 6)
    outputs = []
    for _ in range(2):
        torch.manual_seed(0)
        outputs.append(torch.stack([layer(x) for _ in range(8)]))
    assert torch.equal(outputs[0], outputs[1])
    assert not all(torch.equal(o, outputs[0][0]) for o in outputs[0])  # both maps were drawn
    assert torch.equal(layer.eval()(x), x)
    with_nl = ICLAttentionLayer(4).eval()
    assert torch.equal(with_nl(x), x)  # identity non-local block and no selection


def test_network_at_eval_ignores_the_random_selection() -> None:
    net = ICLNet("resnet18", num_classes=3).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.manual_seed(0)
        first = net(x).logits
        torch.manual_seed(1)
        second = net(x).logits
    assert torch.equal(first, second)


# -- the method -------------------------------------------------------------------------------
@pytest.mark.parametrize("backbone", BACKBONES)
def test_shapes_and_gradients_on_every_backbone(backbone: str) -> None:
    model = ICL(num_classes=5, backbone=backbone)
    batch = make_batch(torch.randn(2, 3, 64, 64), torch.tensor([1, 4]))
    model.train()
    losses = model.training_losses(batch)
    assert set(losses) == {"ce", "contrastive", "consistency"}
    total = sum(losses.values())
    total.backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert all(p.grad is not None for p in model.model.classifier.parameters())
    assert all(p.grad is not None for p in model.model.projection_heads.parameters())
    for layer in model.model.attention_layers:
        assert layer.non_local.output_projection[1].weight.grad is not None
    model.eval()
    logits, maps = model.model.localize(batch.image, batch.label)[:2]
    assert logits.shape == (2, 5) and maps.dim() == 3 and maps.shape[0] == 2


def test_default_positions_are_adls_in_forward_order() -> None:
    assert ICLNet("resnet18", 3).attention_units == ("layer3_0", "layer4_0", "layer4_1")
    net = ICLNet("resnet18", 3, backbone_units=["layer4_1", "layer2_0"])
    assert net.attention_units == ("layer2_0", "layer4_1") and net.contrastive_units == ("layer4_1",)


def test_bf16_autocast_gives_finite_losses_and_maps() -> None:
    model = ICL(num_classes=4, backbone="resnet18")
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([0, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model.training_losses(make_batch(x, y))
        _, maps = model.model.localize(x, y)[:2]
    assert all(torch.isfinite(v.float()) for v in losses.values()) and torch.isfinite(maps.float()).all()


def test_constant_images_give_finite_losses() -> None:
    model = ICL(num_classes=3, backbone="resnet18")
    losses = model.training_losses(make_batch(torch.zeros(2, 3, 64, 64), torch.tensor([0, 1])))
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_every_part_switches_off() -> None:
    model = ICL(num_classes=3, backbone="resnet18", use_non_local=False, contrastive_weight=0.0,
                consistency_weight=0.0, random_selection=False)
    assert not any(isinstance(m, NonLocalBlock) for m in model.modules())
    assert len(model.model.projection_heads) == 0
    batch = make_batch(torch.randn(2, 3, 64, 64), torch.tensor([0, 1]))
    losses = model.training_losses(batch)
    assert set(losses) == {"ce"}
    torch.manual_seed(0)
    first = model.model(batch.image).logits
    torch.manual_seed(1)
    torch.testing.assert_close(model.model(batch.image).logits, first)  # no random selection
    all_positions = ICL(num_classes=3, backbone="resnet18", contrastive_units="all")
    assert set(all_positions.model.projection_heads) == {"layer3_0", "layer4_0", "layer4_1"}


def test_losses_are_weighted() -> None:
    batch = make_batch(torch.randn(2, 3, 64, 64), torch.tensor([0, 1]))
    torch.manual_seed(0)
    unit = ICL(num_classes=3, backbone="resnet18", contrastive_weight=1.0, consistency_weight=1.0, random_selection=False)
    torch.manual_seed(0)
    scaled = ICL(num_classes=3, backbone="resnet18", contrastive_weight=0.5, consistency_weight=2.0, random_selection=False)
    a, b = unit.training_losses(batch), scaled.training_losses(batch)
    torch.testing.assert_close(b["contrastive"], 0.5 * a["contrastive"])
    torch.testing.assert_close(b["consistency"], 2.0 * a["consistency"])


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"contrastive_weight": -1.0}, "contrastive_weight"),
        ({"consistency_weight": -0.1}, "consistency_weight"),
        ({"contrastive_margin": -0.1}, "contrastive_margin"),
        ({"background_threshold": 0.95}, "background_threshold"),
        ({"apply_prob": 1.5}, "apply_prob"),
        ({"backbone_units": ["layer9"]}, "backbone_units"),
        ({"threshold_reference": "mean"}, "threshold_reference"),
        ({"consistency_norm": "l3"}, "consistency_norm"),
    ],
)
def test_bad_arguments_name_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        ICL(num_classes=3, backbone="resnet18", **kwargs)


def test_registered() -> None:
    assert isinstance(get_model("icl", num_classes=3, backbone="resnet18"), ICL)


def test_cli_fit_and_test(tmp_path: Path) -> None:
    run_cli(["fit", *tiny_cli_args(ICL_CONFIG, str(tmp_path))])
    checkpoints = sorted(tmp_path.rglob("*.ckpt"))
    assert checkpoints
    cli = run_cli(["test", *tiny_cli_args(ICL_CONFIG, str(tmp_path)), "--ckpt_path", str(checkpoints[-1]),
                "--trainer.limit_test_batches", "1"])
    value = float(cli.trainer.callback_metrics["test/maxboxacc_v2"])
    assert 0.0 <= value <= 100.0
