from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import make_batch, tiny_cli_args
from torch import nn

from wsol_lightning.models import ADL, available_models, get_model
from wsol_lightning.models.adl import DEFAULT_ADL_POSITIONS, ADLNet
from wsol_lightning.models.cam import CAMNet
from wsol_lightning.models.components import BACKBONES, build_backbone
from wsol_lightning.models.components.adl import (
    AttentionBasedDropout,
    channel_mean_attention,
    draw_drop_selection,
    drop_mask,
)


def _features() -> torch.Tensor:
    """[1, 2, 2, 3] features whose channel mean is [[0, 1, 2], [3, 4, 8]] (max 8)."""
    mean = torch.tensor([[0.0, 1.0, 2.0], [3.0, 4.0, 8.0]])
    return torch.stack([mean * 0.5, mean * 1.5])[None]


def test_identity_in_eval_mode() -> None:
    layer = AttentionBasedDropout(drop_rate=1.0).eval()
    x = torch.rand(2, 4, 3, 3)
    assert layer(x) is x


def test_drop_mask_zeroes_exactly_the_positions_at_or_above_gamma_max() -> None:
    layer = AttentionBasedDropout(drop_rate=1.0, drop_threshold=0.5).train()  # always the drop mask
    x = _features()
    out = layer(x)
    kept = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])  # gamma * max = 4: 4 (equal) and 8 are dropped
    torch.testing.assert_close(out, x * kept)


def test_fixed_seed_selects_drop_mask_or_importance_map() -> None:
    x = _features()
    attention = channel_mean_attention(x)
    with_drop = x * drop_mask(attention, 0.9)
    with_importance = x * torch.sigmoid(attention)
    outcomes = set()
    for seed in range(12):
        u = torch.rand(1, generator=torch.Generator().manual_seed(seed)).item()
        layer = AttentionBasedDropout(0.75, 0.9, generator=torch.Generator().manual_seed(seed)).train()
        expected = with_drop if u + 0.75 >= 1.0 else with_importance
        torch.testing.assert_close(layer(x), expected)
        outcomes.add(u + 0.75 >= 1.0)
    assert outcomes == {True, False}
    # the global RNG is used without a generator
    torch.manual_seed(3)
    first = AttentionBasedDropout(0.5).train()(x)
    torch.manual_seed(3)
    torch.testing.assert_close(AttentionBasedDropout(0.5).train()(x), first)


def test_per_batch_draw_shares_one_selection_per_sample_draw_does_not() -> None:
    generator = torch.Generator().manual_seed(0)
    batch = [draw_drop_selection(8, 0.5, "batch", generator) for _ in range(50)]
    assert all(s.shape == (8,) and (s.all() or not s.any()) for s in batch)
    per_sample = [draw_drop_selection(8, 0.5, "sample", generator) for _ in range(50)]
    assert any(s.any() and not s.all() for s in per_sample)
    rate = torch.stack([draw_drop_selection(1, 0.75, "batch", generator) for _ in range(4000)]).float().mean()
    assert abs(rate.item() - 0.75) < 0.03
    # through the layer: identical images in one batch get identical outputs only with the batch draw
    x = _features().expand(16, -1, -1, -1)
    out = AttentionBasedDropout(0.5, draw="batch", generator=torch.Generator().manual_seed(1)).train()(x)
    assert torch.equal(out, out[:1].expand_as(out))
    out = AttentionBasedDropout(0.5, draw="sample", generator=torch.Generator().manual_seed(1)).train()(x)
    assert not torch.equal(out, out[:1].expand_as(out))


def test_gradient_flows_through_the_importance_map() -> None:
    v = torch.tensor([[[[0.7]]]], requires_grad=True)
    AttentionBasedDropout(drop_rate=0.0).train()(v).sum().backward()  # v * sigmoid(v)
    s = torch.sigmoid(torch.tensor(0.7))
    torch.testing.assert_close(v.grad.squeeze(), s + 0.7 * s * (1 - s))


def test_external_attention_replaces_the_channel_mean() -> None:
    x = torch.ones(1, 2, 1, 2)
    attention = torch.tensor([[[[1.0, 0.2]]]])
    out = AttentionBasedDropout(drop_rate=1.0, drop_threshold=0.9).train()(x, attention)
    torch.testing.assert_close(out, torch.tensor([[[[0.0, 1.0]], [[0.0, 1.0]]]]))


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"drop_rate": 1.5}, "drop_rate"), ({"drop_threshold": -0.1}, "drop_threshold"),
     ({"draw": "pixel"}, "draw")],
)
def test_bad_layer_arguments_name_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        AttentionBasedDropout(**kwargs)


def test_default_positions_and_pretrained_weight_names_unchanged() -> None:
    net = ADLNet("resnet50", 3)
    names = net.backbone.unit_names
    for unit in DEFAULT_ADL_POSITIONS["resnet50"]:
        assert names[names.index(unit) + 1] == f"{unit}_inserted"
    assert len(net.adl_layers) == 3
    # ADL has no parameters: every weight keeps the name the pretrained checkpoint loads into
    assert net.state_dict().keys() == CAMNet("resnet50", 3).state_dict().keys()
    # pool4 removed with large_feature_map: the same positions
    vgg_units = ADLNet(build_backbone("vgg16", large_feature_map=True), 3).backbone.unit_names
    assert [vgg_units[vgg_units.index(u) + 1] for u in ("pool3", "conv4", "conv5")] == [
        "pool3_inserted", "conv4_inserted", "conv5_inserted"]


def test_inception_neck_position_and_no_dropout() -> None:
    net = ADLNet("inception_v3", 3)
    assert isinstance(net.neck[-1], AttentionBasedDropout)
    assert not any(isinstance(m, nn.Dropout) for m in net.modules())
    assert len(net.adl_layers) == 3


def test_unknown_position_is_reported_by_key() -> None:
    with pytest.raises(ValueError, match="backbone_units.*layer9_0"):
        ADL(num_classes=3, backbone="resnet18", backbone_units=["layer9_0"])


def test_eval_forward_equals_the_cam_network_with_the_same_weights() -> None:
    torch.manual_seed(0)
    net = ADLNet("resnet18", 3, apply_prob=1.0)
    cam = CAMNet("resnet18", 3)
    cam.load_state_dict(net.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x).logits, cam.eval()(x).logits)
        # the drop masks act in training
        assert not torch.allclose(net.train()(x).logits, cam.train()(x).logits)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_shapes_and_gradients_on_every_backbone(backbone: str) -> None:
    model = ADL(num_classes=5, backbone=backbone)
    batch = make_batch(torch.randn(2, 3, 64, 64), torch.tensor([1, 4]))
    loss = model.training_losses(batch)["ce"]
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.model.classifier.parameters())
    model.eval()
    with torch.no_grad():
        logits, maps = model.model.localize(batch.image, batch.label)[:2]
    assert logits.shape == (2, 5) and maps.shape == (2, 4, 4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_gives_finite_loss_and_maps(dtype: torch.dtype) -> None:
    model = ADL(num_classes=4, backbone="resnet18", apply_prob=0.5, draw="sample")
    x, y = torch.randn(4, 3, 64, 64), torch.tensor([0, 3, 1, 2])
    with torch.autocast("cpu", dtype=dtype):
        loss = model.training_losses(make_batch(x, y))["ce"]
        model.eval()
        _, maps = model.model.localize(x, y)[:2]
    assert torch.isfinite(loss) and loss.dtype == torch.float32 and torch.isfinite(maps.float()).all()


def test_registry() -> None:
    assert "adl" in available_models() and isinstance(get_model("adl", num_classes=3), ADL)


def test_cli_fit_then_test(tmp_path: Path) -> None:
    from wsol_lightning.cli import run_cli

    run_cli(["fit", *tiny_cli_args("experiments/adl.yaml", str(tmp_path / "fit"))])
    ckpt = sorted((tmp_path / "fit").rglob("*.ckpt"))[-1]
    args = tiny_cli_args("experiments/adl.yaml", str(tmp_path / "test"))
    cli = run_cli(["test", *args, "--ckpt_path", str(ckpt), "--trainer.limit_test_batches", "1"])
    assert isinstance(cli.model, ADL) and cli.model.hparams.foreground_threshold == 0.9
    for name in ("maxboxacc_v2", "gt_known_loc", "top1_loc"):
        assert 0.0 <= float(cli.trainer.callback_metrics[f"test/{name}"]) <= 100.0
