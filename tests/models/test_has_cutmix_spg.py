from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import make_batch, tiny_cli_args

from wsol_lightning.models import SPG, CutMix, HaS, available_models, get_model
from wsol_lightning.models.cam import CAMNet
from wsol_lightning.models.components import BACKBONES
from wsol_lightning.models.components.augment import cutmix, cutmix_box, hide_patches, step_generator
from wsol_lightning.models.cutmix import cutmix_cross_entropy
from wsol_lightning.models.spg import IGNORE, SPGNet, guidance_bce, seed_mask, spg_losses


# -- HaS -------------------------------------------------------------------------------------------
def test_hidden_grid_for_a_fixed_seed_on_a_non_square_image() -> None:
    # 5x7 image, 3-px patches: 2 rows (px 0-2, 3-4) x 3 columns (px 0-2, 3-5, 6), edges cut.
    # torch.rand(1, 2, 3) with seed 0 = [[.4963, .7682, .0885], [.1320, .3074, .6341]]: < 0.5 hides
    # cells (0, 0), (0, 2), (1, 0), (1, 1).
    images = torch.arange(1.0, 1 + 2 * 5 * 7).view(1, 2, 5, 7)
    out = hide_patches(images, 3, 0.5, fill=-9.0, generator=torch.Generator().manual_seed(0))
    hidden = torch.zeros(5, 7, dtype=torch.bool)
    hidden[0:3, 0:3] = hidden[0:3, 6:7] = hidden[3:5, 0:3] = hidden[3:5, 3:6] = True
    assert torch.equal(out[0] == -9.0, hidden.expand(2, 5, 7))  # every channel, nothing else
    assert torch.equal(out[:, :, ~hidden], images[:, :, ~hidden])
    assert images.min() > 0  # the input is not modified


def test_hide_probability_extremes_and_grid_zero() -> None:
    images = torch.randn(2, 3, 6, 4)
    assert torch.equal(hide_patches(images, 2, 0.0), images)
    assert torch.equal(hide_patches(images, 4, 1.0), torch.zeros_like(images))  # fill 0 = dataset mean
    assert hide_patches(images, 0, 1.0) is images  # wsolevaluation's "off"


def test_has_trains_on_hidden_images_and_is_identity_at_evaluation() -> None:
    torch.manual_seed(0)
    model = HaS(num_classes=3, backbone="resnet18", grid_size=8, apply_prob=1.0, fill=0.0)
    images, labels = torch.randn(2, 3, 32, 32), torch.tensor([0, 2])
    model.model.eval()  # fixed BN statistics, so the two passes below are comparable
    loss = model.training_losses(make_batch(images, labels))["ce"]
    mean_pixel = torch.tensor(model.model.backbone.mean)[None, :, None, None]  # fill 0 = the backbone's mean
    expected = F.cross_entropy(model.model(mean_pixel.expand_as(images)).logits, labels)  # all hidden
    torch.testing.assert_close(loss, expected)
    model.eval()
    with torch.no_grad():
        logits, maps = model.model.localize(images, labels)[:2]
        out = model.model(images)
    torch.testing.assert_close(logits, out.logits)
    torch.testing.assert_close(maps, model.model.class_maps(out.features, labels))


def test_step_generator_is_reproducible_from_the_global_seed() -> None:
    torch.manual_seed(5)
    first = torch.rand(4, generator=step_generator())
    torch.manual_seed(5)
    assert torch.equal(torch.rand(4, generator=step_generator()), first)
    torch.manual_seed(5)
    assert not torch.equal(torch.rand(4, generator=step_generator(offset=1)), first)  # another rank


# -- CutMix ----------------------------------------------------------------------------------------
def test_cutmix_box_sides_and_clipping_by_hand() -> None:
    # lam 0.75: sqrt(1 - lam) = 0.5, sides int(8 * .5) = 4 and int(12 * .5) = 6, half-sides 2 and 3.
    reference = torch.Generator().manual_seed(1)
    cy = int(torch.randint(8, (1,), generator=reference))
    cx = int(torch.randint(12, (1,), generator=reference))
    y0, x0, y1, x1 = cutmix_box(8, 12, 0.75, torch.Generator().manual_seed(1))
    assert (y0, x0, y1, x1) == (max(cy - 2, 0), max(cx - 3, 0), min(cy + 2, 8), min(cx + 3, 12))
    # lam 0: the full-size box around the centre, clipped at the border (area < H W off-centre).
    y0, x0, y1, x1 = cutmix_box(8, 12, 0.0, torch.Generator().manual_seed(1))
    assert (y0, x0, y1, x1) == (max(cy - 4, 0), max(cx - 6, 0), min(cy + 4, 8), min(cx + 6, 12))


def test_cutmix_pastes_the_partner_box_and_mixes_labels_by_area() -> None:
    images = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 10, 14).clone()  # image i is all i
    labels = torch.tensor([5, 6, 7, 8])
    mixed = cutmix(images, labels, beta=1.0, prob=1.0, generator=torch.Generator().manual_seed(3))
    y0, x0, y1, x1 = mixed.box
    area = (y1 - y0) * (x1 - x0)
    assert 0 < area < 10 * 14
    assert mixed.lam == pytest.approx(1 - area / (10 * 14))
    inside = torch.zeros(10, 14, dtype=torch.bool)
    inside[y0:y1, x0:x1] = True
    partner = mixed.labels_b - 5  # image i's partner index, read from its label
    for i in range(4):
        assert torch.all(mixed.images[i][:, inside] == partner[i])
        assert torch.all(mixed.images[i][:, ~inside] == i)
    assert torch.equal(mixed.labels_a, labels) and sorted(partner.tolist()) == [0, 1, 2, 3]
    assert torch.all(images == torch.arange(4.0).view(4, 1, 1, 1))  # input untouched
    again = cutmix(images, labels, 1.0, 1.0, torch.Generator().manual_seed(3))
    assert again.box == mixed.box and torch.equal(again.images, mixed.images)


def test_cutmix_off_returns_the_batch_with_lam_one() -> None:
    images, labels = torch.randn(3, 3, 8, 8), torch.tensor([0, 1, 2])
    for beta, prob in ((1.0, 0.0), (0.0, 1.0)):
        out = cutmix(images, labels, beta, prob, torch.Generator().manual_seed(0))
        assert out.images is images and out.lam == 1.0 and torch.equal(out.labels_b, labels)


def test_cutmix_cross_entropy_equals_the_formula_by_hand() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)]])  # softmax = [1/4, 3/4]
    loss = cutmix_cross_entropy(logits, torch.tensor([1]), torch.tensor([0]), lam=0.25)
    torch.testing.assert_close(loss, torch.tensor(0.25 * -math.log(0.75) + 0.75 * -math.log(0.25)))
    # equal to CE against the mixed soft target lam * y_a + (1 - lam) * y_b
    torch.testing.assert_close(loss, F.cross_entropy(logits, torch.tensor([[0.75, 0.25]])))


def test_cutmix_training_loss_is_the_mixed_ce_of_the_step_draws() -> None:
    model = CutMix(num_classes=4, backbone="resnet18", beta=1.0, apply_prob=1.0)
    model.model.eval()
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    torch.manual_seed(7)
    loss = model.training_losses(make_batch(images, labels))["ce"]
    torch.manual_seed(7)
    mixed = cutmix(images, labels, 1.0, 1.0, step_generator(0))
    logits = model.model(mixed.images).logits
    ce_a, ce_b = F.cross_entropy(logits, mixed.labels_a), F.cross_entropy(logits, mixed.labels_b)
    expected = mixed.lam * ce_a + (1 - mixed.lam) * ce_b
    assert mixed.lam < 1.0
    torch.testing.assert_close(loss, expected)


# -- SPG -------------------------------------------------------------------------------------------
def test_seed_mask_foreground_background_and_ignore_band() -> None:
    scores = torch.full((1, 8, 8), 0.5)  # ignore band (low 0.01 <= s <= high 0.7)
    scores[0, :5] = 0.9  # 40 pixels > 0.7: foreground, no fallback
    scores[0, 5, 0] = 0.7  # == high: not foreground (strict)
    scores[0, 6, :] = 0.005  # < low: background
    scores[0, 7, 0] = 0.01  # == low: not background (strict)
    mask = seed_mask(scores, high=0.7, low=0.01)
    expected = torch.full((8, 8), IGNORE, dtype=torch.uint8)
    expected[:5] = 1
    expected[6] = 0
    assert mask.dtype == torch.uint8 and torch.equal(mask[0], expected)


def test_seed_mask_fallback_below_30_foreground_pixels() -> None:
    scores = torch.full((2, 8, 8), 0.3)
    scores[0, 0, :4] = 0.8  # only 4 pixels > 0.7 -> foreground = s > 0.7 * 0.8 = 0.56
    scores[0, 1, :3] = 0.6  # 0.6 > 0.56: foreground by the fallback
    scores[0, 2, 0] = 0.55  # below 0.56: ignored
    scores[1] = 0.004  # image 2: max 0.01 -> fallback 0.007, but every pixel < low: background wins
    scores[1, 0, 0] = 0.01
    mask = seed_mask(scores, high=0.7, low=0.05)
    expected = torch.full((8, 8), IGNORE, dtype=torch.uint8)
    expected[0, :4] = expected[1, :3] = 1
    assert torch.equal(mask[0], expected)
    assert torch.equal(mask[1], torch.zeros(8, 8, dtype=torch.uint8))
    # with 30 or more pixels above high there is no fallback
    scores[0, 3:7] = 0.8  # 32 more pixels > 0.7
    assert torch.equal(seed_mask(scores, 0.7, 0.05)[0] == 1, scores[0] > 0.7)


def test_guidance_bce_by_hand_on_the_kept_pixels() -> None:
    logits = torch.tensor([[[[2.0, -1.0], [0.0, 5.0]]]], requires_grad=True)
    mask = torch.tensor([[[1, 0], [IGNORE, IGNORE]]], dtype=torch.uint8)
    expected = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0))) / 2  # -log s(2), -log(1 - s(-1))
    torch.testing.assert_close(guidance_bce(logits, mask), torch.tensor(expected))
    nothing = guidance_bce(logits, torch.full((1, 2, 2), IGNORE, dtype=torch.uint8))
    nothing.backward()
    assert float(nothing.detach()) == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def _spg_inputs() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    maps = torch.zeros(2, 3, 4, 4)
    maps[0, 1, :2, :2] = 5.0  # GT-class maps with a clear object
    maps[1, 2, 2:, 1:] = 3.0
    return {
        "logits": torch.randn(2, 3, requires_grad=True),
        "class_maps": maps.requires_grad_(),
        "guidance_b1": torch.randn(2, 1, 8, 8, requires_grad=True),
        "guidance_b2": torch.randn(2, 1, 4, 4, requires_grad=True),
        "guidance_c": torch.randn(2, 1, 4, 4, requires_grad=True),
    }


def test_spg_terms_follow_the_masks_of_the_note() -> None:
    inputs, labels, size = _spg_inputs(), torch.tensor([1, 2]), (16, 16)
    losses = spg_losses(**inputs, labels=labels, image_size=size)

    def up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x.detach(), size=size, mode="bilinear", align_corners=False)[:, 0]

    attention = up(inputs["class_maps"][[0, 1], [1, 2]][:, None])
    attention = (attention - attention.amin((1, 2), keepdim=True)) / (
        attention.amax((1, 2), keepdim=True) - attention.amin((1, 2), keepdim=True)
    )
    b1, b2 = torch.sigmoid(up(inputs["guidance_b1"])), torch.sigmoid(up(inputs["guidance_b2"]))
    expected = {
        "ce": F.cross_entropy(inputs["logits"], labels),
        "b2_attention": guidance_bce(inputs["guidance_b2"], seed_mask(attention, 0.7, 0.01)),
        "b1_b2": guidance_bce(inputs["guidance_b1"], seed_mask(b2, 0.5, 0.05)),
        "c_fused": guidance_bce(inputs["guidance_c"], seed_mask((b1 + b2) / 2, 0.7, 0.1)),
    }
    assert set(losses) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(losses[name], value)


def test_no_gradient_flows_through_the_pseudo_masks() -> None:
    labels, size = torch.tensor([1, 2]), (16, 16)
    for term, receives in (
        ("b2_attention", {"guidance_b2"}),
        ("b1_b2", {"guidance_b1"}),
        ("c_fused", {"guidance_c"}),
        ("ce", {"logits"}),
    ):
        inputs = _spg_inputs()
        spg_losses(**inputs, labels=labels, image_size=size)[term].backward()
        got = {name for name, t in inputs.items() if t.grad is not None and t.grad.abs().sum() > 0}
        assert got == receives, term


def test_spg_map_is_the_main_class_map_and_guidance_is_off_the_map() -> None:
    torch.manual_seed(0)
    net = SPGNet("resnet18", 4).eval()
    images, classes = torch.randn(2, 3, 32, 32), torch.tensor([3, 0])
    with torch.no_grad():
        logits, maps = net.localize(images, classes)[:2]
        out = net(images)
    torch.testing.assert_close(maps, out.class_maps[[0, 1], [3, 0]])
    torch.testing.assert_close(logits, out.class_maps.mean(dim=(2, 3)))
    assert net.guidance_units == ("layer3_0", "layer3_1")


def test_spg_vgg16_pool4_is_wsolevaluations_3x3_stride_2_pad_1_max_pool() -> None:
    """wsolevaluation's VggSpg (wsol/vgg.py L182-185), not the shared VGG16's 2x2/s2 pool."""
    torch.manual_seed(0)
    net = SPGNet("vgg16", 3).eval()
    pool = net.backbone.units["pool4"]
    assert isinstance(pool, torch.nn.MaxPool2d)
    assert (pool.kernel_size, pool.stride, pool.padding) == (3, 2, 1)
    features = torch.randn(1, 512, 29, 29)
    torch.testing.assert_close(pool(features), F.max_pool2d(features, 3, 2, 1), rtol=0, atol=0)
    # an odd conv4 side tells the pools apart: 232 px -> conv4 29x29 -> 15x15 (2x2/s2: 14x14)
    with torch.no_grad():
        maps = net.localize(torch.rand(1, 3, 232, 232), torch.tensor([0]))[1]
    assert maps.shape == (1, 15, 15)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_spg_shapes_and_gradients_on_every_backbone(backbone: str) -> None:
    model = SPG(num_classes=3, backbone=backbone)
    batch = make_batch(torch.randn(2, 3, 32, 32), torch.tensor([0, 2]))
    losses = model.training_losses(batch)
    assert set(losses) == {"ce", "b2_attention", "b1_b2", "c_fused"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    net = model.model
    for head in (net.classifier, net.branch_b1, net.branch_b2, net.branch_shared, net.head_c):
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters())
    model.eval()
    with torch.no_grad():
        logits, maps = model.model.localize(batch.image, batch.label)[:2]
    assert logits.shape == (2, 3) and maps.shape == (2, 2, 2)  # stride 16: 14x14 at 224


@pytest.mark.parametrize("cls", [HaS, CutMix, SPG])
def test_bf16_autocast_gives_finite_losses_and_maps(cls: type) -> None:
    model = cls(num_classes=4, backbone="resnet18")
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 3, 1, 2])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model.training_losses(make_batch(x, y))
        model.eval()
        _, maps = model.model.localize(x, y)[:2]
    assert all(torch.isfinite(v) and v.dtype == torch.float32 for v in losses.values())
    assert torch.isfinite(maps.float()).all()


@pytest.mark.parametrize(
    ("cls", "kwargs", "key"),
    [
        (HaS, {"grid_size": -1}, "grid_size"),
        (HaS, {"apply_prob": 1.5}, "apply_prob"),
        (CutMix, {"beta": -0.1}, "beta"),
        (CutMix, {"apply_prob": 2.0}, "apply_prob"),
        (SPG, {"attention_thresholds": (0.1, 0.5)}, "attention_thresholds"),
        (SPG, {"b2_thresholds": (1.2, 0.1)}, "b2_thresholds"),
        (SPG, {"fused_thresholds": (0.7,)}, "fused_thresholds"),
        (SPG, {"fallback_ratio": -0.1}, "fallback_ratio"),
        (SPG, {"min_foreground_pixels": -1}, "min_foreground_pixels"),
        (SPG, {"guidance_weight": -1.0}, "guidance_weight"),
        (SPG, {"backbone_units": ("layer3_1", "layer3_0")}, "backbone_units"),
        (SPG, {"backbone_units": ("conv4", "layer3_1")}, "backbone_units"),
    ],
)
def test_bad_arguments_name_the_key(cls: type, kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        cls(num_classes=3, **kwargs)


def test_registry_and_networks() -> None:
    for name, cls, net in (("has", HaS, CAMNet), ("cutmix", CutMix, CAMNet), ("spg", SPG, SPGNet)):
        model = get_model(name, num_classes=3)
        assert name in available_models() and isinstance(model, cls) and isinstance(model.model, net)


@pytest.mark.parametrize(("config", "cls"), [("has", HaS), ("cutmix", CutMix), ("spg", SPG)])
def test_cli_fit_then_test(tmp_path: Path, config: str, cls: type) -> None:
    from wsol_lightning.cli import run_cli

    small = ("--data.resize_size", "36", "--data.crop_size", "32")
    run_cli(["fit", *tiny_cli_args(f"experiments/{config}.yaml", str(tmp_path / "fit"), *small)])
    ckpt = sorted((tmp_path / "fit").rglob("*.ckpt"))[-1]
    args = tiny_cli_args(f"experiments/{config}.yaml", str(tmp_path / "test"), *small)
    cli = run_cli(["test", *args, "--ckpt_path", str(ckpt), "--trainer.limit_test_batches", "1"])
    assert isinstance(cli.model, cls)
    for name in ("maxboxacc_v2", "gt_known_loc", "top1_loc"):
        assert 0.0 <= float(cli.trainer.callback_metrics[f"test/{name}"]) <= 100.0
