from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers import make_batch, tiny_cli_args

from wsol_lightning.cli import run_cli
from wsol_lightning.export import ExportableWSOL
from wsol_lightning.models import SPA, available_models
from wsol_lightning.models.components import BACKBONES, build_backbone, gather_class_maps
from wsol_lightning.models.spa import (
    SelfCorrelationGenerator,
    SPANet,
    default_scg_taps,
    restricted_activation_loss,
    restricted_activation_masks,
    same_class_partners,
)

SPA_CONFIG = "experiments/spa.yaml"


def _tiny_class_maps() -> torch.Tensor:
    """[1, 2, 1, 3]: class-0 logits 0, 1, 4 over class-1 logits 0 at three positions."""
    return torch.tensor([[[[0.0, 1.0, 4.0]], [[0.0, 0.0, 0.0]]]])


def test_ram_masks_from_the_class_probability_variance_by_hand() -> None:
    # two classes: Var = (p0 - p1)^2 / 2 = tanh(a / 2)^2 / 2; normalized: 0, (tanh .5 / tanh 2)^2 = 0.23, 1
    background, foreground = restricted_activation_masks(_tiny_class_maps(), 0.1, 0.2)
    assert background.tolist() == [[[True, False, False]]]
    assert foreground.tolist() == [[[False, False, True]]]  # 0.23 lies in the ignored band (0.1, 0.3]
    _, foreground_low_gap = restricted_activation_masks(_tiny_class_maps(), 0.1, 0.1)
    assert foreground_low_gap.tolist() == [[[False, True, True]]]


def test_ram_loss_value_by_hand() -> None:
    maps = _tiny_class_maps().requires_grad_(True)
    loss = restricted_activation_loss(maps, torch.tensor([0]), 0.1, 0.2)
    sigmoid = lambda v: 1.0 / (1.0 + math.exp(-v))  # noqa: E731
    expected = (sigmoid(0.0) + 0.0 + (1.0 - sigmoid(4.0))) / 3  # bg, ignored, fg; mean over all 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    # the gradient reaches the GT-class map at masked positions only, never the other class
    # (the masks are detached)
    assert maps.grad[0, 1].abs().sum() == 0
    assert maps.grad[0, 0, 0, 1] == 0 and maps.grad[0, 0, 0, 0] > 0 and maps.grad[0, 0, 0, 2] < 0


def test_ram_switches_on_after_the_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = SPA(num_classes=3, backbone="resnet18", head="cam", ram_start_epoch=2, ram_weight=0.5).eval()
    batch = make_batch(torch.randn(2, 3, 32, 32), torch.tensor([0, 2]))
    monkeypatch.setattr(SPA, "current_epoch", property(lambda self: 1))
    assert model.training_losses(batch)["ram"] == 0
    monkeypatch.setattr(SPA, "current_epoch", property(lambda self: 2))
    losses = model.training_losses(batch)
    out = model.model(batch.image)
    expected = 0.5 * restricted_activation_loss(out.class_maps, batch.label)
    torch.testing.assert_close(losses["ram"], expected)
    assert set(SPA(num_classes=3, backbone="resnet18", ram=False).training_losses(batch)) == {"ce"}


def test_seeds_from_a_hand_made_cam() -> None:
    generator = SelfCorrelationGenerator(object_threshold=0.1, background_threshold=0.05)
    cam = torch.tensor([[[-3.0, 0.2], [2.0, 10.0]]])  # ReLU -> [0, .2, 2, 10] -> minmax [0, .02, .2, 1]
    object_seeds, background_seeds = generator.seeds(cam)
    assert object_seeds.tolist() == [[False, False, True, True]]
    assert background_seeds.tolist() == [[True, True, False, False]]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_shapes_and_gradients_on_every_backbone(backbone: str) -> None:
    torch.manual_seed(0)
    model = SPA(num_classes=5, backbone=backbone, ram_start_epoch=0)
    batch = make_batch(torch.randn(2, 3, 64, 64), torch.tensor([1, 4]))
    model.train()
    losses = model.training_losses(batch)
    assert set(losses) == {"ce", "ram"}
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert all(p.grad is not None for p in model.model.head.parameters())
    first_unit = next(iter(model.model.backbone.units.values()))
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in first_unit.parameters())
    model.eval()
    with torch.no_grad():
        logits, maps = model.model.localize(batch.image, batch.label)[:2]
        out = model.model(batch.image)
    assert logits.shape == (2, 5) and maps.shape == (2, *out.class_maps.shape[-2:])
    assert len(out.blocks) == 2 and all(b.shape[-2:] == out.class_maps.shape[-2:] for b in out.blocks)
    assert 0.0 <= maps.min() and maps.max() <= 1.0


def test_batched_scg_equals_per_image() -> None:
    torch.manual_seed(0)
    net = SPANet("resnet18", num_classes=4, head="cam", generator=SelfCorrelationGenerator(chunk_size=2)).eval()
    images, classes = torch.randn(3, 3, 64, 64), torch.tensor([0, 3, 1])
    with torch.no_grad():
        out = net(images)
        cams = gather_class_maps(out.class_maps, classes)
        batched = net.generator(out.blocks, cams)
        torch.testing.assert_close(net.localize(images, classes)[1], batched, atol=1e-4, rtol=0)
        for i in range(3):
            single = net.generator([b[i : i + 1] for b in out.blocks], cams[i : i + 1])
            torch.testing.assert_close(batched[i : i + 1], single)


def test_switches_scg_off_one_block_and_correlation_modes() -> None:
    torch.manual_seed(0)
    images, classes = torch.randn(2, 3, 64, 64), torch.tensor([1, 0])
    model = SPA(num_classes=3, backbone="resnet18", scg=False).eval()
    with torch.no_grad():
        _, maps = model.model.localize(images, classes)[:2]
        torch.testing.assert_close(maps, gather_class_maps(model.model(images).class_maps, classes).relu())
    one_block = SPA(num_classes=3, backbone="resnet18", backbone_units=["layer4_1"])
    assert one_block.model.scg_taps == ("layer4_1",)
    for mode in ("first_order", "high_order"):
        with torch.no_grad():
            model = SPA(num_classes=3, backbone="resnet18", scg_mode=mode).eval()
            _, maps = model.model.localize(images, classes)[:2]
        assert torch.isfinite(maps).all()
    assert default_scg_taps(build_backbone("vgg16", large_feature_map=True)) == ("conv4", "conv5")
    assert SPANet("vgg16", 2, head="cam").scg_taps == ("pool4", "conv5")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_gives_finite_losses_and_maps(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    model = SPA(num_classes=4, backbone="resnet18", ram_start_epoch=0)
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([0, 3])
    with torch.autocast("cpu", dtype=dtype):
        losses = model.training_losses(make_batch(x, y))
        with torch.no_grad():
            _, maps = model.eval().model.localize(x, y)[:2]
    assert all(torch.isfinite(v) for v in losses.values())
    assert maps.dtype == torch.float32 and torch.isfinite(maps).all()


def test_bad_arguments_name_the_key() -> None:
    for kwargs, key in [
        ({"ram_weight": -1.0}, "ram_weight"),
        ({"ram_start_epoch": -1}, "ram_start_epoch"),
        ({"ram_background_threshold": 1.5}, "ram_background_threshold"),
        ({"scg_mode": "both"}, "scg_mode"),
        ({"scg_order": 0}, "scg_order"),
        ({"scg_chunk_size": 0}, "scg_chunk_size"),
        ({"foreground_threshold": 0.01, "background_threshold": 0.05}, "background_threshold"),
        ({"backbone_units": ["nope"]}, "backbone_units"),
        ({"head": "big"}, "head"),
        ({"scg_image_affinity_weight": 1.5}, "scg_image_affinity_weight"),
        ({"scg_image_colour_sigma": 0.0}, "scg_image_colour_sigma"),
        ({"scg_image_position_sigma": -1.0}, "scg_image_position_sigma"),
    ]:
        with pytest.raises(ValueError, match=key):
            SPA(num_classes=2, backbone="resnet18", **kwargs)


def test_registry() -> None:
    assert "spa" in available_models()


def test_cli_fit_and_test(tmp_path: Path) -> None:
    run_cli(["fit", *tiny_cli_args(SPA_CONFIG, str(tmp_path / "fit"), "--model.init_args.ram_start_epoch", "0")])
    checkpoints = sorted((tmp_path / "fit").rglob("*.ckpt"))
    assert checkpoints, "fit wrote no checkpoint"
    test_args = tiny_cli_args(SPA_CONFIG, str(tmp_path / "test"), "--trainer.limit_test_batches", "1")
    cli = run_cli(["test", *test_args, "--ckpt_path", str(checkpoints[-1])])
    metrics = cli.trainer.callback_metrics
    union = ("gt_known_loc_union", "top1_loc_union", "top5_loc_union")  # union_box_threshold in spa.yaml
    for name in ("maxboxacc_v2", "gt_known_loc", "top1_loc", *union):
        assert 0.0 <= float(metrics[f"test/{name}"]) <= 100.0, name


def test_partner_is_the_most_confident_other_image_predicted_as_the_class() -> None:
    # predictions: images 0, 1, 2 -> class 0 (softmax p0 = .67, .55, .94), image 3 -> class 1
    logits = torch.tensor([[2.0, 1.0, 0.0], [1.5, 1.0, 0.0], [4.0, 1.0, 0.0], [0.0, 3.0, 0.0]])
    classes = torch.tensor([0, 0, 1, 2])
    # 0 and 1: the other class-0 images, 2 is the most confident; 2 (map of class 1): image 3;
    # 3 (class 2): nobody predicts class 2, so itself
    assert same_class_partners(logits, classes).tolist() == [2, 2, 3, 3]
    assert same_class_partners(logits[:1], classes[:1]).tolist() == [0]


def test_cross_image_scg_wiring_with_a_copy_partner() -> None:
    # two copies of one image, each the other's partner: in first order the partner's columns are
    # the image's own, so the map is plain SCG's; alone in its batch, an image is its own partner.
    torch.manual_seed(0)
    plain = SPA(num_classes=3, backbone="resnet18", head="cam", scg_mode="first_order").eval()
    crossed = SPA(num_classes=3, backbone="resnet18", head="cam", scg_mode="first_order", scg_cross_image=True).eval()
    crossed.load_state_dict(plain.state_dict())
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        predicted = plain(image).argmax(dim=1)
        _, expected = plain.model.localize(image, predicted)[:2]
        _, pair = crossed.model.localize(image.repeat(2, 1, 1, 1), predicted.repeat(2))[:2]
        _, alone = crossed.model.localize(image, predicted)[:2]
    torch.testing.assert_close(pair, expected.repeat(2, 1, 1), atol=1e-5, rtol=0)
    torch.testing.assert_close(alone, expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="scg_cross_image"):
        ExportableWSOL(crossed)


def test_image_affinity_changes_the_map_and_needs_images() -> None:
    torch.manual_seed(0)
    plain = SPA(num_classes=3, backbone="resnet18", head="cam").eval()
    mixed = SPA(num_classes=3, backbone="resnet18", head="cam", scg_image_affinity_weight=0.5).eval()
    mixed.load_state_dict(plain.state_dict())
    images, classes = torch.randn(2, 3, 64, 64), torch.tensor([0, 2])
    with torch.no_grad():
        out = mixed.model(images)
        cams = gather_class_maps(out.class_maps, classes)
        with pytest.raises(ValueError, match="scg_image_affinity_weight"):
            mixed.model.generator(out.blocks, cams)
        _, mixed_maps = mixed.model.localize(images, classes)[:2]
        _, plain_maps = plain.model.localize(images, classes)[:2]
    assert mixed_maps.shape == plain_maps.shape and not torch.allclose(mixed_maps, plain_maps)


@pytest.mark.parametrize(
    ("flag", "value"), [("scg_image_affinity_weight", "0.5"), ("scg_cross_image", "true")]
)
def test_cli_fit_and_test_with_an_open_idea_switch(tmp_path: Path, flag: str, value: str) -> None:
    switch = (f"--model.init_args.{flag}", value)
    run_cli(["fit", *tiny_cli_args(SPA_CONFIG, str(tmp_path / "fit"), "--trainer.limit_train_batches", "1", *switch)])
    checkpoints = sorted((tmp_path / "fit").rglob("*.ckpt"))
    assert checkpoints, "fit wrote no checkpoint"
    test_args = tiny_cli_args(SPA_CONFIG, str(tmp_path / "test"), "--trainer.limit_test_batches", "1", *switch)
    cli = run_cli(["test", *test_args, "--ckpt_path", str(checkpoints[-1])])
    generator = cli.model.model.generator
    assert (generator.image_affinity_weight, generator.cross_image) == (
        (0.5, False) if flag == "scg_image_affinity_weight" else (0.0, True)
    )
    assert 0.0 <= float(cli.trainer.callback_metrics["test/maxboxacc_v2"]) <= 100.0
