"""MCIS: co-attention math against loops, pair targets and losses, gating, backbones, AMP, CLI."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers import make_batch, tiny_cli_args

from wsol_lightning.cli import run_cli
from wsol_lightning.models.components import label_loss
from wsol_lightning.models.mcis import MCIS, MCISNet, aggregate_coattention_maps, coattention
from wsol_lightning.models.mcis.loss import pair_targets


def test_affinity_softmaxes_and_attended_features_match_explicit_loops() -> None:
    torch.manual_seed(0)
    channels, (hm, wm), (hn, wn) = 3, (2, 2), (1, 3)
    fm, fn = torch.randn(1, channels, hm, wm), torch.randn(1, channels, hn, wn)
    weight = torch.randn(channels, channels)
    out = coattention(fm, fn, weight)
    xm, xn = fm.flatten(2)[0], fn.flatten(2)[0]  # [K, N]
    num_m, num_n = xm.shape[1], xn.shape[1]
    affinity = torch.zeros(num_m, num_n)
    for i in range(num_m):
        for j in range(num_n):
            affinity[i, j] = sum(xm[k, i] * weight[k, l] * xn[l, j] for k in range(channels) for l in range(channels))
    column = torch.zeros(num_m, num_n)  # A: softmax over image-m positions i
    row = torch.zeros(num_m, num_n)  # B^T: softmax over image-n positions j
    for j in range(num_n):
        total = sum(math.exp(affinity[i, j]) for i in range(num_m))
        for i in range(num_m):
            column[i, j] = math.exp(affinity[i, j]) / total
    for i in range(num_m):
        total = sum(math.exp(affinity[i, j]) for j in range(num_n))
        for j in range(num_n):
            row[i, j] = math.exp(affinity[i, j]) / total
    attended_n = torch.stack([sum(xm[:, i] * column[i, j] for i in range(num_m)) for j in range(num_n)], dim=1)
    attended_m = torch.stack([sum(xn[:, j] * row[i, j] for j in range(num_n)) for i in range(num_m)], dim=1)
    torch.testing.assert_close(out.affinity[0], affinity)
    torch.testing.assert_close(out.attention_m[0], column)
    torch.testing.assert_close(out.attention_n[0], row)
    torch.testing.assert_close(out.attended_n[0], attended_n.view(channels, hn, wn))
    torch.testing.assert_close(out.attended_m[0], attended_m.view(channels, hm, wm))


def test_identical_images_with_a_large_identity_w_attend_to_themselves() -> None:
    # orthonormal position features: f_i . f_j = 1 if i == j else 0, so with W = 30 I each softmax
    # puts ~all mass on the same position and the attended features equal the features.
    features = torch.eye(4).view(1, 4, 2, 2)
    out = coattention(features, features.clone(), 30.0 * torch.eye(4))
    torch.testing.assert_close(out.attended_m, features, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.attended_n, features, atol=1e-6, rtol=0)


def test_coattention_is_float32_under_bf16_autocast() -> None:
    features = torch.randn(2, 8, 3, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = coattention(features, features, torch.randn(8, 8))
    assert out.affinity.dtype == out.attended_m.dtype == torch.float32


def test_pair_targets_and_label_losses_by_hand() -> None:
    targets_m = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 1.0]])
    targets_n = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    common, unique_m, unique_n = pair_targets(targets_m, targets_n)
    assert common.tolist() == [[1, 0, 0], [0, 0, 1]]
    assert unique_m.tolist() == [[0, 0, 0], [1, 0, 0]] and unique_n.tolist() == [[0, 0, 0], [0, 1, 0]]
    zeros = torch.zeros(2, 3)
    assert label_loss(zeros, common, "mlsm").item() == pytest.approx(math.log(2))
    # ce: only the labelled row counts: -log softmax = log 3 for zero logits
    assert label_loss(zeros, unique_m, "ce").item() == pytest.approx(math.log(3))
    assert label_loss(zeros, torch.zeros(2, 3), "ce").item() == 0.0


def test_contrastive_branch_gates_the_original_features_by_the_coattended_gate() -> None:
    torch.manual_seed(0)
    net = MCISNet("resnet18", num_classes=3, num_extra_convs=1, head_width=8)
    with torch.no_grad():
        net.common_gate.weight.zero_()  # G = sigmoid(0) = 0.5 everywhere
    fm, fn = torch.rand(2, 8, 3, 3, requires_grad=True), torch.rand(2, 8, 3, 3)
    out = net.pair_forward(fm, fn)
    expected = net.coattention_classifier(0.5 * fm).mean(dim=(2, 3))
    torch.testing.assert_close(out.contrastive_logits_m, expected)
    out.contrastive_logits_m.sum().backward()
    assert net.common_gate.weight.grad.abs().sum() > 0 and fm.grad.abs().sum() > 0
    assert net.single_classifier.weight.grad is None


def tiny_model(**kwargs: object) -> MCIS:
    torch.manual_seed(0)
    defaults = {"num_classes": 3, "backbone": "resnet18", "head_width": 16, "self_pair_scales": (0.75,)}
    return MCIS(**{**defaults, **kwargs})


def test_training_losses_and_contrastive_schedule() -> None:
    batch = make_batch(torch.randn(4, 3, 32, 32), torch.tensor([0, 0, 1, 2]))  # same + different pair
    model = tiny_model(contrastive_start_epoch=0)
    late = model.training_losses(batch)
    assert set(late) == {"single", "coattention", "contrastive", "self_pair_single", "self_pair_coattention"}
    assert late["contrastive"] > 0 and all(torch.isfinite(v) for v in late.values())
    same_class_only = make_batch(batch.image, torch.tensor([1, 1, 2, 2]))
    assert model.training_losses(same_class_only)["contrastive"] == 0  # nothing unique in the batch
    model.hparams.contrastive_start_epoch = 2  # no trainer: epoch 0
    assert model.training_losses(batch)["contrastive"] == 0
    model.model.self_pair_flip, model.model.self_pair_scales = False, ()  # the network draws the self-pairs
    assert "self_pair_single" not in model.training_losses(batch)
    model.hparams.update(coattention_weight=0.0, contrastive_weight=0.0)
    assert set(model.training_losses(batch)) == {"single"}


def test_self_pair_single_term_covers_both_members_and_contrastive_terms_are_gated_per_side() -> None:
    # multi-label pairs: image 0 has {0, 1}, its partner {0}: only the m side has a unique label
    targets = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    batch = make_batch(torch.randn(4, 3, 32, 32), targets.argmax(1), multi_hot=targets)
    model = tiny_model(contrastive_start_epoch=0, multilabel=True, self_pair_scales=())
    losses = model.training_losses(batch)
    net = model.model
    out = net(batch.image)
    flipped = net(batch.image.flip(-1))
    both = torch.cat([out.logits, flipped.logits])  # official train.py L260: MLSM(logits2, [l_m; l_m])
    torch.testing.assert_close(losses["self_pair_single"], label_loss(both, torch.cat([targets, targets]), "mlsm"))
    m, n = torch.tensor([0, 2]), torch.tensor([1, 3])
    pair = net.pair_forward(out.features[m], out.features[n])
    _, unique_m, unique_n = pair_targets(targets[m], targets[n])
    assert unique_n.sum() == 0 and unique_m.sum() == 1
    # the n side has no unique label anywhere in the batch: its term is left out (official L278-282)
    torch.testing.assert_close(losses["contrastive"], label_loss(pair.contrastive_logits_m, unique_m, "mlsm"))


def test_aggregate_coattention_maps_by_hand() -> None:
    # one image, 1x4 maps; the first map is always taken, a later one only if sigmoid(mean) > 0.1
    first = torch.tensor([[[2.0, -5.0, -5.0, -5.0]]])  # mean -3.25: still taken (first), ReLU -> [1, 0, 0, 0]
    dropped = torch.tensor([[[-10.0, 1.0, -10.0, -10.0]]])  # mean -7.25: sigmoid 7e-4, left out but counted
    kept = torch.tensor([[[0.0, 0.0, 3.0, 1.0]]])  # mean 1 -> [0, 0, 1, 1/3]
    everyone = torch.tensor([True])
    fused = aggregate_coattention_maps([first, dropped, kept], [everyone] * 3)
    torch.testing.assert_close(fused, torch.tensor([[[1 / 3, 0.0, 1 / 3, 1 / 9]]]), atol=1e-7, rtol=0)
    # a map an image does not have (no same-class partner) is neither added nor counted
    absent = aggregate_coattention_maps([first, kept], [everyone, torch.tensor([False])])
    torch.testing.assert_close(absent, torch.tensor([[[1.0, 0.0, 0.0, 0.0]]]), atol=1e-7, rtol=0)


def test_coattention_map_uses_the_flip_pair_both_sides_flipped_back() -> None:
    model = tiny_model(localization_map="coattention", self_pair_scales=(), num_test_partners=0).eval()
    net = model.model
    images, classes = torch.randn(2, 3, 32, 32), torch.tensor([1, 2])
    with torch.no_grad():
        maps = net.localize(images, classes).maps
        pair = net.pair_forward(net(images).features, net(images.flip(-1)).features)
        own = pair.coattention_maps_m[torch.arange(2), classes]
        flipped_back = pair.coattention_maps_n[torch.arange(2), classes].flip(-1)
    torch.testing.assert_close(maps, aggregate_coattention_maps([own, flipped_back], [torch.ones(2, dtype=torch.bool)] * 2))


def test_localization_maps_single_and_coattention() -> None:
    images, classes = torch.randn(3, 3, 32, 32), torch.tensor([1, 1, 0])
    single = tiny_model().eval()
    logits, maps = single.model.localize(images, classes)[:2]
    assert logits.shape == (3, 3) and maps.shape == (3, 2, 2)
    torch.testing.assert_close(maps, single.model(images).class_maps[torch.arange(3), classes])
    refined = tiny_model(localization_map="coattention").eval()
    _, maps = refined.model.localize(images, classes)[:2]
    assert maps.shape == (3, 2, 2) and torch.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1 + 1e-6


@pytest.mark.parametrize("backbone", ["vgg16", "resnet50", "inception_v3", "resnet18"])
def test_shapes_and_gradients_on_every_backbone(backbone: str) -> None:
    torch.manual_seed(0)
    model = MCIS(num_classes=3, backbone=backbone, head_width=16, self_pair_scales=(), contrastive_start_epoch=0)
    batch = make_batch(torch.randn(2, 3, 64, 64), torch.tensor([0, 2]))
    losses = model.training_losses(batch)
    sum(losses.values()).backward()
    net = model.model
    for param in (net.coattention_weight, net.coattention_classifier.weight, net.common_gate.weight):
        assert param.grad is not None and param.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.backbone.parameters())
    model.eval()
    logits, maps = model.model.localize(batch.image, batch.label)[:2]
    assert logits.shape == (2, 3) and maps.dim() == 3 and maps.shape[0] == 2


def test_bf16_autocast_gives_finite_losses_and_maps() -> None:
    model = tiny_model(contrastive_start_epoch=0, localization_map="coattention")
    batch = make_batch(torch.randn(4, 3, 32, 32), torch.tensor([0, 0, 1, 2]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model.training_losses(batch)
        _, maps = model.eval().model.localize(batch.image, batch.label)[:2]
    assert all(torch.isfinite(v) for v in losses.values()) and torch.isfinite(maps).all()


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"label_loss": "hinge"}, "label_loss"), ({"contrastive_weight": -1.0}, "contrastive_weight"),
     ({"self_pair_scales": (0.0,)}, "self_pair_scales"), ({"localization_map": "gate"}, "localization_map"),
     ({"num_test_partners": -1}, "num_test_partners"), ({"num_extra_convs": -1}, "num_extra_convs")],
)
def test_bad_arguments_name_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        MCIS(num_classes=3, **kwargs)


def test_cli_fit_and_test_with_pair_sampling(tmp_path: Path) -> None:
    extra = ["--data.different_class_pairs", "1", "--model.head_width", "16", "--model.self_pair_flip", "false"]
    cli = run_cli(["fit", *tiny_cli_args("experiments/mcis.yaml", str(tmp_path)), *extra])
    assert cli.datamodule.hparams.pair_sampling and cli.datamodule.hparams.different_class_pairs == 1
    (ckpt,) = tmp_path.rglob("*.ckpt")
    cli = run_cli(["test", *tiny_cli_args("experiments/mcis.yaml", str(tmp_path)), *extra, "--ckpt_path", str(ckpt)])
    assert 0.0 <= float(cli.trainer.callback_metrics["test/maxboxacc_v2"]) <= 100.0
