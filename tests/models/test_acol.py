from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import make_batch, tiny_cli_args
from torch import nn

from wsol_lightning.models import ACoL, available_models, get_model
from wsol_lightning.models.acol import ACoLNet, erase_mask, fused_localization_map
from wsol_lightning.models.components import BACKBONES, build_backbone


class _FixedMaps(nn.Module):
    """Stand-in classifier returning hand-made class maps (and recording its input)."""

    def __init__(self, maps: torch.Tensor) -> None:
        super().__init__()
        self.maps = maps
        self.seen: torch.Tensor | None = None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        self.seen = features
        return self.maps


def _hand_made_net(features: torch.Tensor, maps_a: torch.Tensor, foreground_threshold: float = 0.6) -> ACoLNet:
    net = ACoLNet("resnet18", num_classes=maps_a.shape[1], foreground_threshold=foreground_threshold)
    net.features = lambda images: features  # type: ignore[method-assign]
    net.classifier = _FixedMaps(maps_a)
    net.classifier_erased = _FixedMaps(torch.zeros_like(maps_a))
    return net


def test_erase_mask_is_normalized_gt_map_at_or_above_delta() -> None:
    maps = torch.zeros(2, 2, 3, 3)
    maps[0, 0] = torch.arange(9.0).view(3, 3)  # normalized k/8: k/8 >= 0.6 for k >= 5 (4.8)
    maps[0, 1] = -torch.arange(9.0).view(3, 3)  # not the chosen class
    maps[1, 1] = torch.tensor([[0.0, 10.0, 0.0], [6.0, 0.0, 0.0], [0.0, 0.0, 5.9]])  # 6/10 == delta: erased
    mask = erase_mask(maps, torch.tensor([0, 1]), 0.6)
    assert mask.shape == (2, 1, 3, 3) and mask.dtype == torch.bool
    expected0 = torch.arange(9).view(3, 3) >= 5
    expected1 = torch.tensor([[False, True, False], [True, False, False], [False, False, False]])
    assert torch.equal(mask[0, 0], expected0) and torch.equal(mask[1, 0], expected1)


def test_classifier_b_sees_the_feature_with_exactly_those_positions_zeroed() -> None:
    features = torch.arange(1.0, 1 + 2 * 4 * 3 * 3).view(2, 4, 3, 3)
    maps_a = torch.zeros(2, 3, 3, 3)
    maps_a[0, 2, 0, 0] = 1.0  # GT class 2: only the top-left position reaches delta
    maps_a[1, 0] = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.7, 0.6], [0.0, 1.0, 0.0]])  # 3 positions >= 0.6
    net = _hand_made_net(features, maps_a)
    out = net(torch.zeros(2, 3, 8, 8), torch.tensor([2, 0]))
    keep = torch.ones(2, 1, 3, 3)
    keep[0, 0, 0, 0] = 0
    keep[1, 0, 1, 1] = keep[1, 0, 1, 2] = keep[1, 0, 2, 1] = 0
    torch.testing.assert_close(net.classifier_erased.seen, features * keep)
    assert torch.equal(out.erase_mask, keep == 0)
    assert torch.equal(net.classifier.seen, features)  # A sees the full feature


def test_without_labels_the_erasing_follows_a_top1_class() -> None:
    maps_a = torch.zeros(1, 2, 2, 2)
    maps_a[0, 1] = torch.tensor([[5.0, 1.0], [1.0, 1.0]])  # class 1 has the larger mean -> top-1
    maps_a[0, 0, 1, 1] = 1.0
    net = _hand_made_net(torch.ones(1, 3, 2, 2), maps_a)
    out = net(torch.zeros(1, 3, 8, 8))
    assert out.classes.tolist() == [1]
    assert out.erase_mask[0, 0].tolist() == [[True, False], [False, False]]


def test_erasing_off_feeds_b_the_full_feature() -> None:
    features = torch.randn(1, 4, 3, 3)
    net = _hand_made_net(features, torch.randn(1, 2, 3, 3))
    net.erasing = False
    out = net(torch.zeros(1, 3, 8, 8), torch.tensor([0]))
    assert not out.erase_mask.any() and torch.equal(net.classifier_erased.seen, features)


def test_no_gradient_reaches_classifier_a_through_the_mask() -> None:
    torch.manual_seed(0)
    net = ACoLNet("resnet18", num_classes=3)
    features = torch.rand(2, 512, 4, 4, requires_grad=True)
    net.features = lambda images: features  # type: ignore[method-assign]
    out = net(torch.zeros(2, 3, 8, 8), torch.tensor([0, 2]))
    assert out.erase_mask.any() and not out.erase_mask.requires_grad
    torch.nn.functional.cross_entropy(out.logits_erased, torch.tensor([0, 2])).backward()
    assert all(p.grad is None for p in net.classifier.parameters())  # B's loss never reaches A
    assert all(p.grad is not None for p in net.classifier_erased.parameters())
    erased = out.erase_mask.expand_as(features)
    assert torch.all(features.grad[erased] == 0) and features.grad[~erased].abs().sum() > 0


def test_fused_map_is_the_max_of_the_separately_normalized_branch_maps() -> None:
    maps_a = torch.zeros(1, 2, 2, 2)
    maps_b = torch.zeros(1, 2, 2, 2)
    maps_a[0, 1] = torch.tensor([[2.0, 4.0], [6.0, 10.0]])  # -> [[0, .25], [.5, 1]]
    maps_b[0, 1] = torch.tensor([[-1.0, 1.0], [0.0, -1.0]])  # -> [[0, 1], [.5, 0]]
    maps_b[0, 0] = 100.0  # another class never enters
    fused = fused_localization_map(maps_a, maps_b, torch.tensor([1]))
    torch.testing.assert_close(fused, torch.tensor([[[0.0, 1.0], [0.5, 1.0]]]))


def test_constant_maps_erase_nothing_and_fuse_to_zeros_without_nan() -> None:
    maps = torch.full((2, 3, 4, 4), 2.5)
    assert not erase_mask(maps, torch.tensor([0, 2]), 0.6).any()
    fused = fused_localization_map(maps, torch.zeros_like(maps), torch.tensor([0, 2]))
    assert torch.isfinite(fused).all() and torch.equal(fused, torch.zeros(2, 4, 4))


def test_evaluation_map_is_driven_by_the_class_passed_in() -> None:
    torch.manual_seed(0)
    model = ACoL(num_classes=4, backbone="resnet18").eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits, maps = model.model.localize(images, torch.tensor([1, 3]))[:2]
        out = model.model(images, torch.tensor([1, 3]))
        torch.testing.assert_close(logits, model(images))  # classification from A only
        fused = fused_localization_map(out.class_maps, out.class_maps_erased, out.classes)
        torch.testing.assert_close(maps, fused)
        torch.testing.assert_close(out.erase_mask, erase_mask(out.class_maps, torch.tensor([1, 3]), 0.6))
    assert maps.min() >= 0 and maps.max() <= 1


@pytest.mark.parametrize("backbone", BACKBONES)
def test_shapes_and_gradients_on_every_backbone(backbone: str) -> None:
    model = ACoL(num_classes=5, backbone=backbone)
    batch = make_batch(torch.randn(2, 3, 64, 64), torch.tensor([1, 4]))
    losses = model.training_losses(batch)
    assert set(losses) == {"ce_a", "ce_b"} and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for head in (model.model.classifier, model.model.classifier_erased):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters())
    model.eval()
    with torch.no_grad():
        logits, maps = model.model.localize(batch.image, batch.label)[:2]
    assert logits.shape == (2, 5) and maps.shape == (2, 4, 4)  # stride 16: 14x14 at 224


def test_vgg_map_resolution_pooling_and_smoothing() -> None:
    x = torch.randn(1, 3, 64, 64)
    small = ACoLNet("vgg16", 3)
    large = ACoLNet(build_backbone("vgg16", large_feature_map=True), 3)  # the original ACoL VGG: 28x28 at 224
    units = small.backbone.units
    assert isinstance(small.smoothing, nn.AvgPool2d) and isinstance(units["pool1"], nn.MaxPool2d)
    assert units["pool1"].kernel_size == 3 and units["conv5_inserted"].stride == 1
    assert "conv4_inserted" in large.backbone.unit_names and "pool4" not in large.backbone.unit_names
    with torch.no_grad():
        assert small(x).class_maps.shape[-2:] == (4, 4) and large(x).class_maps.shape[-2:] == (8, 8)
    plain = ACoLNet("vgg16", 3, vgg_pooling="torchvision", feature_smoothing=False)
    assert isinstance(plain.smoothing, nn.Identity) and plain.backbone.units["pool1"].kernel_size == 2
    assert isinstance(ACoLNet("resnet18", 3).smoothing, nn.Identity)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_gives_finite_losses_and_maps(dtype: torch.dtype) -> None:
    model = ACoL(num_classes=4, backbone="resnet18")
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([0, 3])
    with torch.autocast("cpu", dtype=dtype):
        losses = model.training_losses(make_batch(x, y))
        _, maps = model.model.localize(x, y)[:2]
    assert all(torch.isfinite(v) and v.dtype == torch.float32 for v in losses.values())
    assert maps.dtype == torch.float32 and torch.isfinite(maps).all()


def test_bias_lr_multiplier_splits_the_groups() -> None:
    model = ACoL(num_classes=4, backbone="resnet18", lr=0.01, head_lr_multiplier=10.0, bias_lr_multiplier=2.0)
    groups = {g["name"]: g for g in model.parameter_groups()}
    assert {n: g["lr"] for n, g in groups.items()} == pytest.approx(
        {"backbone": 0.01, "backbone_bias": 0.02, "head": 0.1, "head_bias": 0.2}
    )
    assert id(model.model.classifier.layers[0].bias) in {id(p) for p in groups["head_bias"]["params"]}
    assert sum(len(g["params"]) for g in groups.values()) == len(list(model.parameters()))
    assert [g["name"] for g in ACoL(num_classes=4).parameter_groups()] == ["backbone", "head"]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"foreground_threshold": 0.0}, "foreground_threshold"), ({"foreground_threshold": 1.5}, "foreground_threshold"),
     ({"vgg_pooling": "avg"}, "vgg_pooling"), ({"bias_lr_multiplier": 0.0}, "bias_lr_multiplier")],
)
def test_bad_arguments_name_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        ACoL(num_classes=3, **kwargs)


def test_registry() -> None:
    assert "acol" in available_models() and isinstance(get_model("acol", num_classes=3), ACoL)


def test_cli_fit_then_test(tmp_path: Path) -> None:
    from wsol_lightning.cli import run_cli

    run_cli(["fit", *tiny_cli_args("experiments/acol.yaml", str(tmp_path / "fit"))])
    ckpt = sorted((tmp_path / "fit").rglob("*.ckpt"))[-1]
    args = tiny_cli_args("experiments/acol.yaml", str(tmp_path / "test"))
    cli = run_cli(["test", *args, "--ckpt_path", str(ckpt), "--trainer.limit_test_batches", "1"])
    assert isinstance(cli.model, ACoL) and cli.model.hparams.foreground_threshold == 0.6
    for name in ("maxboxacc_v2", "gt_known_loc", "top1_loc"):
        assert 0.0 <= float(cli.trainer.callback_metrics[f"test/{name}"]) <= 100.0


def test_head_init_follows_the_code_bases_unless_forced() -> None:
    def last_conv_std(**kwargs) -> float:
        net = ACoLNet("resnet18", num_classes=8, **kwargs)
        convs = [m for m in net.classifier.modules() if isinstance(m, torch.nn.Conv2d)]
        return float(convs[-1].weight.std())

    he, xavier = last_conv_std(), last_conv_std(head_init="xavier")
    # He fan-out on the final 1x1 conv to 8 classes: std sqrt(2 / 8) = 0.5; Xavier: sqrt(2 / (1024 + 8))
    assert he == pytest.approx(0.5, rel=0.1)
    assert xavier == pytest.approx((2 / (1024 + 8)) ** 0.5, rel=0.1)
