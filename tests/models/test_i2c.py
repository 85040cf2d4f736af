"""I2C: seeds, SC/GC losses, centroid bank (by hand, DDP, checkpoint), backbones, AMP, CLI, attributes."""

from __future__ import annotations

import dataclasses
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import make_batch, tiny_cli_args

from wsol_lightning.cli import run_cli
from wsol_lightning.models.i2c import I2C, CentroidBank
from wsol_lightning.models.i2c.loss import (
    attribute_consistency_loss,
    attribute_global_consistency_loss,
    attribute_overlap,
    global_consistency_loss,
    same_class_pairs,
    stochastic_consistency_loss,
)
from wsol_lightning.models.i2c.torch_model import gather_seed_vectors, select_object_seeds

REPO = Path(__file__).resolve().parents[2]


def hand_attention() -> torch.Tensor:
    """A 4x5 map with four object positions above 0.7 at flat positions 6, 7, 12, 18."""
    attention = torch.full((1, 4, 5), 0.2)
    for position, value in ((6, 0.9), (7, 1.0), (12, 0.8), (18, 0.75)):
        attention.view(-1)[position] = value
    attention.view(-1)[3] = 0.7  # at the threshold: not an object position
    return attention


def test_random_seeds_are_distinct_object_positions() -> None:
    generator = torch.Generator().manual_seed(0)
    chosen = set()
    for _ in range(20):
        seeds = select_object_seeds(hand_attention(), 3, 0.7, "random", generator)[0].tolist()
        assert len(set(seeds)) == 3 and set(seeds) <= {6, 7, 12, 18}
        chosen.add(tuple(sorted(seeds)))
    assert len(chosen) > 1  # stochastic


def test_raster_seeds_are_the_first_object_positions_and_cycle() -> None:
    assert select_object_seeds(hand_attention(), 3, 0.7, "raster")[0].tolist() == [6, 7, 12]
    assert select_object_seeds(hand_attention(), 6, 0.7, "raster")[0].tolist() == [6, 7, 12, 18, 6, 7]
    assert set(select_object_seeds(hand_attention(), 6, 0.7, "random")[0].tolist()) == {6, 7, 12, 18}


def test_constant_map_falls_back_to_peak_positions() -> None:
    seeds = select_object_seeds(torch.zeros(2, 3, 3), 3, 0.7, "raster")
    assert seeds.tolist() == [[0, 1, 2], [0, 1, 2]]


def test_seed_vectors_are_the_features_at_the_seed_positions() -> None:
    features = torch.arange(2 * 3 * 20, dtype=torch.float32).view(2, 3, 4, 5)
    positions = torch.tensor([[6, 7], [0, 19]])
    seeds = gather_seed_vectors(features, positions)
    assert seeds.shape == (2, 2, 3)
    assert seeds[0, 1].tolist() == features[0, :, 1, 2].tolist()
    assert seeds[1, 1].tolist() == features[1, :, 3, 4].tolist()


def test_same_class_pairs_use_positions_2k_2k_plus_1() -> None:
    first, second = same_class_pairs(torch.tensor([3, 3, 1, 2, 0, 0, 5]))
    assert first.tolist() == [0, 4] and second.tolist() == [1, 5]


def test_stochastic_consistency_by_hand_and_zero_for_identical_seeds() -> None:
    a = torch.tensor([[[0.0, 0.0], [1.0, 1.0]]], requires_grad=True)
    b = torch.tensor([[[3.0, 4.0], [1.0, 1.0]]])
    assert stochastic_consistency_loss(a, b).item() == pytest.approx(2.5)  # (5 + 0) / 2
    same = torch.randn(2, 3, 4, requires_grad=True)
    loss = stochastic_consistency_loss(same, same.detach().clone())
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(same.grad).all()


def test_global_consistency_skips_unseen_classes_and_stops_gradient_at_the_bank() -> None:
    centroids = torch.tensor([[0.0, 0.0], [9.0, 9.0], [1.0, 1.0]], requires_grad=True)
    seen = torch.tensor([True, False, True])
    centres = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 1.0]], requires_grad=True)
    loss = global_consistency_loss(centres, centroids, torch.tensor([0, 1, 2]), seen)
    assert loss.item() == pytest.approx(2.5)  # (5 + 0) / 2, class 1 unseen
    loss.backward()
    assert centroids.grad is None and centres.grad[1].abs().sum() == 0
    assert global_consistency_loss(centres, centroids, torch.tensor([1]), seen).item() == 0.0


def test_bank_update_by_hand_with_duplicate_classes() -> None:
    bank = CentroidBank(num_classes=3, dim=2, momentum_decay=0.1)
    bank.update(torch.tensor([0, 0, 2]), torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0]]))
    assert bank.centroids.tolist() == [[2.0, 1.0], [0.0, 0.0], [5.0, 5.0]]  # eta = 1: the scatter mean
    assert bank.visit_count.tolist() == [1, 0, 1] and bank.seen.tolist() == [True, False, True]
    bank.update(torch.tensor([0, 0]), torch.tensor([[0.0, 0.0], [4.0, 0.0]]))
    eta = math.exp(-0.1)
    expected = [(1 - eta) * 2.0 + eta * 2.0, (1 - eta) * 1.0 + eta * 0.0]
    assert bank.centroids[0].tolist() == pytest.approx(expected)
    assert bank.visit_count.tolist() == [2, 0, 1]
    bank.update(torch.zeros(0, dtype=torch.long), torch.zeros(0, 2))  # no pair: unchanged
    assert bank.visit_count.tolist() == [2, 0, 1]


def tiny_model(**kwargs: object) -> I2C:
    torch.manual_seed(0)
    return I2C(num_classes=3, backbone="resnet18", head="cam", **kwargs)


def test_losses_are_zero_for_identical_features() -> None:
    # eval: no batch statistics, so both images give the same features; raster: the same seed positions
    model = tiny_model(seed_sampling="raster").eval()
    image = torch.randn(1, 3, 32, 32)
    batch = make_batch(image.repeat(2, 1, 1, 1), torch.tensor([1, 1]))
    first = model.training_losses(batch)
    assert first["sc"].item() == 0.0 and first["gc"].item() == 0.0  # gc: class 1 not seen yet
    second = model.training_losses(batch)  # bank now holds exactly this batch's centre
    assert second["sc"].item() == 0.0 and second["gc"].item() == pytest.approx(0.0, abs=1e-5)
    assert model.model.centroid_bank.visit_count.tolist() == [0, 2, 0]


def test_seed_gradient_reaches_the_backbone_through_the_consistency_losses() -> None:
    model = tiny_model(sc_weight=1.0, gc_weight=0.0).train()
    batch = make_batch(torch.randn(4, 3, 32, 32), torch.tensor([0, 0, 2, 2]))
    model.training_losses(batch)["sc"].backward()
    assert model.model.backbone.units["stem"][0].weight.grad.abs().sum() > 0
    assert model.model.head.classifier.fc.weight.grad is None  # seeds are read, not differentiated, from the CAM


@pytest.mark.parametrize("backbone", ["vgg16", "resnet50", "inception_v3", "resnet18"])
def test_shapes_and_gradients_on_every_backbone(backbone: str) -> None:
    torch.manual_seed(0)
    model = I2C(num_classes=3, backbone=backbone, head="i2c", head_width=32, sc_weight=1.0, gc_weight=1.0)
    batch = make_batch(torch.randn(2, 3, 64, 64), torch.tensor([2, 2]))
    model.model.centroid_bank.update(torch.tensor([2]), torch.ones(1, model.model.backbone.out_channels))
    losses = model.training_losses(batch)  # class 2 seen: the GC term is active
    assert set(losses) == {"ce", "sc", "gc"} and losses["gc"] > 0
    sum(losses.values()).backward()
    grads = [p.grad for p in model.model.backbone.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    model.eval()
    logits, maps = model.model.localize(batch.image, batch.label)[:2]
    assert logits.shape == (2, 3) and maps.dim() == 3 and maps.shape[0] == 2


def test_bf16_autocast_gives_finite_losses_and_maps() -> None:
    model = tiny_model(sc_weight=1.0, gc_weight=1.0)
    batch = make_batch(torch.randn(4, 3, 32, 32), torch.tensor([0, 0, 1, 1]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model.training_losses(batch)
        losses = model.training_losses(batch)
        _, maps = model.model.localize(batch.image, batch.label)[:2]
    assert all(torch.isfinite(v) for v in losses.values()) and torch.isfinite(maps).all()
    assert model.model.centroid_bank.centroids.dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"foreground_threshold": 1.5}, "foreground_threshold"), ({"num_seeds": 0}, "num_seeds"), ({"seed_sampling": "grid"}, "seed_sampling"),
     ({"sc_weight": -1.0}, "sc_weight"), ({"head": "mlp"}, "head"), ({"centroid_momentum_decay": -1.0}, "centroid_momentum_decay")],
)
def test_bad_arguments_name_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        I2C(num_classes=3, **kwargs)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_bank_is_identical_on_both_ranks_after_a_ddp_step(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests")])}
    script = Path(__file__).with_name("i2c_bank_ddp.py")
    subprocess.run([sys.executable, str(script), str(tmp_path), str(_free_port())], env=env, check=True, timeout=240)
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    keys = ("hand_centroids", "hand_count", "centroids", "count", "attribute_centroids", "attribute_count")
    for key in keys:
        assert torch.equal(rank0[key], rank1[key]), key
    # union over ranks: class 0 <- mean([1,0],[3,2]); class 1 <- mean([4,4],[0,2]); class 2 <- [5,5]
    assert rank0["hand_centroids"].tolist() == [[2.0, 1.0], [2.0, 3.0], [5.0, 5.0], [0.0, 0.0]]
    assert rank0["hand_count"].tolist() == [1, 1, 1, 0]
    assert rank0["count"].tolist() == [1, 1, 0, 1]  # rank 0 saw classes 0, 3; rank 1 classes 1, 3
    assert rank0["attribute_count"].tolist() == [1, 1, 0]  # attribute 0 on both ranks, 1 on rank 1 only


def test_cli_fit_test_and_bank_restored_from_checkpoint(tmp_path: Path) -> None:
    cli = run_cli(["fit", *tiny_cli_args("experiments/i2c.yaml", str(tmp_path))])
    assert cli.datamodule.hparams.pair_sampling
    bank = cli.model.model.centroid_bank
    assert bank.seen.any()
    (ckpt,) = tmp_path.rglob("*.ckpt")
    restored = I2C.load_from_checkpoint(ckpt).model.centroid_bank
    assert torch.equal(restored.centroids, bank.centroids) and torch.equal(restored.visit_count, bank.visit_count)
    run_cli(["test", *tiny_cli_args("experiments/i2c.yaml", str(tmp_path)), "--ckpt_path", str(ckpt)])


# -- attribute level ------------------------------------------------------------------------------
HAND_ATTRIBUTES = torch.tensor([[1, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 1], [1, 1, 0, 0]]).bool()


def test_attribute_overlap_is_the_jaccard_index_by_hand() -> None:
    overlap = attribute_overlap(HAND_ATTRIBUTES)
    # |P0 & P1| = 1 of |P0 | P1| = 3; P0 = P3; P2 shares nothing
    assert overlap[0, 1].item() == pytest.approx(1 / 3) and overlap[1, 3].item() == pytest.approx(1 / 3)
    assert overlap[0, 3].item() == 1.0 and overlap[0, 2].item() == 0.0 and overlap[1, 2].item() == 0.0
    assert torch.equal(overlap, overlap.T)
    assert attribute_overlap(torch.zeros(2, 4, dtype=torch.bool)).tolist() == [[0.0, 0.0], [0.0, 0.0]]


def test_attribute_consistency_weights_every_pair_by_overlap_by_hand() -> None:
    seeds = torch.tensor([[[0.0, 0.0]], [[3.0, 4.0]], [[100.0, 100.0]], [[0.0, 0.0]]], requires_grad=True)
    loss = attribute_consistency_loss(seeds, attribute_overlap(HAND_ATTRIBUTES))
    # pairs (0,1): w 1/3, d 5; (0,3): w 1, d 0; (1,3): w 1/3, d 5; pairs with image 2: w 0
    assert loss.item() == pytest.approx((5 / 3 + 0 + 5 / 3) / (1 / 3 + 1 + 1 / 3))  # = 2
    loss.backward()
    assert seeds.grad[2].abs().sum() == 0  # image 2 shares no attribute: no pull
    nothing_shared = torch.eye(3, dtype=torch.bool)
    assert attribute_consistency_loss(torch.randn(3, 2, 4), attribute_overlap(nothing_shared)).item() == 0.0


def test_attribute_consistency_with_one_hot_class_attributes_is_sc_over_all_same_class_pairs() -> None:
    torch.manual_seed(0)
    labels = torch.tensor([0, 1, 0, 0, 1, 2])
    seeds = torch.randn(6, 3, 5)
    loss = attribute_consistency_loss(seeds, attribute_overlap(torch.nn.functional.one_hot(labels).bool()))
    pairs = [(i, j) for i in range(6) for j in range(i + 1, 6) if labels[i] == labels[j]]  # 4 pairs
    first, second = (torch.tensor(index) for index in zip(*pairs))
    expected = stochastic_consistency_loss(seeds[first], seeds[second])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_attribute_global_consistency_uses_the_mean_of_seen_attribute_centroids_by_hand() -> None:
    centroids = torch.tensor([[0.0, 0.0], [2.0, 0.0], [9.0, 9.0]], requires_grad=True)
    seen = torch.tensor([True, True, False])
    present = torch.tensor([[1, 1, 0], [0, 0, 1], [0, 1, 1]]).bool()
    centres = torch.tensor([[1.0, 3.0], [5.0, 5.0], [2.0, 4.0]], requires_grad=True)
    loss = attribute_global_consistency_loss(centres, centroids, present, seen)
    # image 0: prototype mean(G0, G1) = (1, 0), distance 3; image 1: only unseen attribute 2, left out;
    # image 2: attribute 2 unseen, prototype G1 = (2, 0), distance 4
    assert loss.item() == pytest.approx(3.5)
    loss.backward()
    assert centroids.grad is None and centres.grad[1].abs().sum() == 0
    assert attribute_global_consistency_loss(centres, centroids, present[1:2], seen).item() == 0.0


def test_attribute_level_step_by_hand_on_identical_images() -> None:
    model = tiny_model(seed_sampling="raster", consistency_unit="attribute", num_attributes=3).eval()
    image = torch.randn(1, 3, 32, 32)
    attributes = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    batch = make_batch(image.repeat(3, 1, 1, 1), torch.tensor([1, 1, 1]), attributes=attributes)
    first = model.training_losses(batch)  # identical seeds: sc = 0; empty bank: gc = 0
    assert first["sc"].item() == 0.0 and first["gc"].item() == 0.0
    bank = model.model.attribute_bank
    assert bank.visit_count.tolist() == [1, 0, 1]  # attribute 1 is in no image; image 2 has none
    # first visit (eta = 1): both seen centroids are the (common) seed centre of the images holding them
    assert torch.allclose(bank.centroids[0], bank.centroids[2]) and bank.centroids[0].abs().sum() > 0
    assert bank.centroids[1].abs().sum() == 0
    second = model.training_losses(batch)
    assert second["gc"].item() == pytest.approx(0.0, abs=1e-4)  # every prototype is that centre
    assert model.model.centroid_bank.visit_count.sum() == 0  # the class bank is not used


def test_attribute_level_without_attributes_in_the_batch_says_what_to_set() -> None:
    model = tiny_model(consistency_unit="attribute", num_attributes=3)
    batch = make_batch(torch.randn(2, 3, 32, 32), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="the dataset's attributes: true"):
        model.training_losses(batch)
    with pytest.raises(ValueError, match="carries 4 attributes but the attribute bank holds 3"):
        model.training_losses(dataclasses.replace(batch, attributes=torch.ones(2, 4)))


def test_attribute_bank_is_restored_from_a_checkpoint_without_num_attributes(tmp_path: Path) -> None:
    model = tiny_model(consistency_unit="attribute", num_attributes=5)
    model.model.attribute_bank.update(torch.tensor([1, 4]), torch.randn(2, model.model.backbone.out_channels))
    checkpoint = {"state_dict": model.state_dict()}
    fresh = tiny_model(consistency_unit="attribute")
    assert fresh.model.attribute_bank is None
    fresh.on_load_checkpoint(checkpoint)
    fresh.load_state_dict(checkpoint["state_dict"])
    assert torch.equal(fresh.model.attribute_bank.centroids, model.model.attribute_bank.centroids)
    assert fresh.model.attribute_bank.visit_count.tolist() == [0, 1, 0, 0, 1]


def test_bad_consistency_unit_names_the_key() -> None:
    with pytest.raises(ValueError, match="consistency_unit"):
        I2C(num_classes=3, consistency_unit="part")


def test_cli_fit_and_test_at_attribute_level_on_the_synthetic_set(tmp_path: Path) -> None:
    extra = ("--model.init_args.consistency_unit", "attribute", "--data.dataset.attributes", "true")
    cli = run_cli(["fit", *tiny_cli_args("experiments/i2c.yaml", str(tmp_path), *extra)])
    bank = cli.model.model.attribute_bank
    assert bank.centroids.shape[0] == cli.datamodule.num_attributes > 0  # sized from the data at fit start
    assert bank.seen.any() and cli.model.model.centroid_bank.visit_count.sum() == 0
    (ckpt,) = tmp_path.rglob("*.ckpt")
    restored = I2C.load_from_checkpoint(ckpt).model.attribute_bank
    assert torch.equal(restored.centroids, bank.centroids)
    assert torch.equal(restored.visit_count, bank.visit_count)
    run_cli(["test", *tiny_cli_args("experiments/i2c.yaml", str(tmp_path), *extra), "--ckpt_path", str(ckpt)])


def test_cli_attribute_level_without_attributes_fails_with_the_key(tmp_path: Path) -> None:
    extra = ("--model.init_args.consistency_unit", "attribute")
    args = tiny_cli_args("experiments/i2c.yaml", str(tmp_path), *extra)
    with pytest.raises(ValueError, match="the dataset's attributes: true"):
        run_cli(["fit", *args])


def test_gc_reads_the_bank_before_this_steps_update_by_hand() -> None:
    """GC is ``|| G_y - c ||`` with the bank of the previous step; the update comes after (official order)."""
    model = tiny_model(seed_sampling="raster", gc_weight=1.0).eval()
    bank = model.model.centroid_bank
    previous = torch.linspace(-1.0, 1.0, bank.centroids.shape[1])
    bank.centroids[1] = previous
    bank.visit_count[1] = 3
    image = torch.randn(1, 3, 32, 32)
    losses = model.training_losses(make_batch(image.repeat(2, 1, 1, 1), torch.tensor([1, 1])))
    eta = math.exp(-bank.momentum_decay * 3)
    centre = (bank.centroids[1] - (1 - eta) * previous) / eta  # the pair's centre, from the update
    assert bank.visit_count[1] == 4
    assert losses["gc"].item() == pytest.approx(torch.linalg.vector_norm(previous - centre).item(), rel=1e-4)


def test_vgg16_d1_pools_and_smoothing_as_the_official_vgg_i2c() -> None:
    """``vgg_pooling: acol`` + ``large_feature_map``: configuration D1 (3x3/s2 pools, stride-1 pools after
    conv4/conv5); ``feature_smoothing``: the head and the seeds read the 3x3/s1 average of the feature."""
    torch.manual_seed(0)
    model = I2C(num_classes=3, backbone="vgg16", large_feature_map=True, vgg_pooling="acol",
                feature_smoothing=True).eval()
    backbone = model.model.backbone
    pools = [(name, unit) for name, unit in backbone.units.items() if isinstance(unit, torch.nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride, p.padding) for _, p in pools] == [(3, 2, 1)] * 3 + [(3, 1, 1)] * 2
    assert backbone.unit_names.index(pools[3][0]) == backbone.unit_names.index("conv4") + 1
    assert backbone.unit_names.index(pools[4][0]) == backbone.unit_names.index("conv5") + 1
    images = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        out = model.model(images)
        expected = torch.nn.functional.avg_pool2d(backbone(images), 3, stride=1, padding=1)
    assert out.class_maps.shape[-2:] == (28, 28)
    torch.testing.assert_close(out.seed_features, expected)
    plain = I2C(num_classes=3, backbone="vgg16").model.backbone
    assert all(unit.kernel_size == 2 for unit in plain.units.values() if isinstance(unit, torch.nn.MaxPool2d))
