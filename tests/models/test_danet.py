from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from helpers import make_batch, tiny_cli_args

from wsol_lightning.cli import main, run_cli
from wsol_lightning.hierarchy import HierarchyError, load_hierarchy
from wsol_lightning.models import DANet, get_model
from wsol_lightning.models.components import BACKBONES
from wsol_lightning.models.danet import (
    DANetNet,
    fuse_level_maps,
    official_cosine_loss,
    per_level_cosine_loss,
    sample_map_subset,
    summed_pairwise_cosine,
)
from wsol_lightning.models.danet.metrics import IndependentLevelUnionLoc

CONFIG = "experiments/danet.yaml"


def one_hot_maps(indices: list[int], size: int = 4) -> torch.Tensor:
    """Maps ``[1, n, size, size]`` each lit at one pixel: distinct pixels are orthogonal."""
    maps = torch.zeros(1, len(indices), size * size)
    maps[0, torch.arange(len(indices)), torch.tensor(indices)] = 1.0
    return maps.view(1, len(indices), size, size)


# -- DDA cosine loss ---------------------------------------------------------------------
def test_orthogonal_maps_give_zero_and_identical_maps_the_maximum() -> None:
    assert summed_pairwise_cosine(one_hot_maps([0, 5, 9, 15])).item() == pytest.approx(0.0)
    identical = torch.rand(1, 1, 4, 4).expand(1, 4, 4, 4)
    # every pair has cosine 1 (up to the 1e-8 stabilizer): C(4, 2) = 6
    assert summed_pairwise_cosine(identical).item() == pytest.approx(6.0, rel=1e-5)
    assert per_level_cosine_loss([one_hot_maps([0, 1, 2, 3])]).item() == pytest.approx(0.0)
    assert per_level_cosine_loss([identical]).item() == pytest.approx(1.0, rel=1e-5)


def test_cosine_matches_the_formula_with_signs_and_absolute_value_of_the_sum() -> None:
    a = torch.tensor([1.0, 0.0, 0.0, 0.0])
    b = torch.tensor([-1.0, 0.0, 0.0, 0.0])
    c = torch.tensor([1.0, 1.0, 0.0, 0.0])
    maps = torch.stack([a, b, c]).view(1, 3, 2, 2)
    # cos(a,b) = -1, cos(a,c) = 1/sqrt(2), cos(b,c) = -1/sqrt(2): sum = -1
    by_hand = -1.0 + 1 / math.sqrt(2) - 1 / math.sqrt(2)
    assert summed_pairwise_cosine(maps).item() == pytest.approx(by_hand, abs=1e-6)
    # per image |sum| / (B * pairs): |-1| / 3, not the mean of |cos| (= (1 + 2/sqrt(2)) / 3)
    assert per_level_cosine_loss([maps]).item() == pytest.approx(1 / 3, abs=1e-6)
    # the stabilizer: cos = a.b / sqrt(|a|^2 |b|^2 + 1e-8) with tiny maps
    tiny = torch.stack([a * 1e-3, a * 1e-3]).view(1, 2, 2, 2)
    assert summed_pairwise_cosine(tiny).item() == pytest.approx(1e-6 / math.sqrt(1e-12 + 1e-8), rel=1e-4)


def test_official_form_concatenates_levels_at_the_finest_size_and_uses_a_subset() -> None:
    coarse = torch.rand(2, 2, 4, 4)  # level 0: 4x4
    fine = torch.rand(2, 2, 2, 2)  # level 1: 2x2, upsampled to 4x4
    generator = torch.Generator().manual_seed(3)
    subset = sample_map_subset(4, 2, torch.Generator().manual_seed(3))
    loss = official_cosine_loss([coarse, fine], None, generator)  # n = floor(4 / 2) = 2
    stacked = torch.cat(
        [coarse, F.interpolate(fine, size=(4, 4), mode="bilinear", align_corners=True)], dim=1
    )
    a, b = stacked[:, subset[0]].flatten(1), stacked[:, subset[1]].flatten(1)
    cos = (a * b).sum(1) / torch.sqrt((a * a).sum(1) * (b * b).sum(1) + 1e-8)
    assert loss.item() == pytest.approx(cos.abs().sum().item() / 2, rel=1e-5)


def test_same_seed_gives_the_same_subset() -> None:
    torch.manual_seed(7)
    first = sample_map_subset(24, 12)
    torch.manual_seed(7)
    assert torch.equal(first, sample_map_subset(24, 12))
    assert len(set(first.tolist())) == 12 and first.max() < 24
    assert not torch.equal(first, sample_map_subset(24, 12))  # a fresh draw differs
    with pytest.raises(ValueError, match="num_selected_maps"):
        sample_map_subset(3, 1)


# -- HDA: heads and fused map -------------------------------------------------------------
def test_fused_map_by_hand_on_tiny_maps() -> None:
    coarse = torch.tensor([[[[1.0, -3.0], [2.0, 4.0]], [[3.0, 1.0], [-2.0, 0.0]]]])  # [1, K=2, 2, 2]
    fine = torch.tensor([[[[2.0]], [[-4.0]]]])  # [1, K=2, 1, 1]: upsampled to a constant 2x2
    coarse_map = torch.tensor([[2.0, 0.5], [1.0, 2.0]])  # mean over K of ReLU
    fine_map = torch.full((2, 2), 1.0)  # (ReLU(2) + ReLU(-4)) / 2
    fused = fuse_level_maps([coarse, fine])
    torch.testing.assert_close(fused[0], (coarse_map + fine_map) / 2)
    raw = fuse_level_maps([coarse, fine], relu=False)
    torch.testing.assert_close(
        raw[0], (torch.tensor([[2.0, -1.0], [0.0, 2.0]]) + torch.full((2, 2), -1.0)) / 2
    )


def test_fused_maps_pick_the_ancestors_of_the_class() -> None:
    net = DANetNet("resnet18", load_hierarchy("synthetic"), num_maps=2, head_width=(8, 8)).eval()
    level_maps = (torch.rand(2, 4, 2, 4, 4), torch.rand(2, 8, 2, 2, 2))
    classes = torch.tensor([5, 0])  # groups 2 and 0
    fused = net.fused_maps(level_maps, classes)
    expected = fuse_level_maps([level_maps[0][[0, 1], [2, 0]], level_maps[1][[0, 1], [5, 0]]])
    torch.testing.assert_close(fused, expected)


def test_head_output_shapes_per_level_and_logits_are_gap_of_the_mean_map() -> None:
    net = DANetNet(
        "vgg16",
        load_hierarchy("synthetic:8:4").select_levels(["group", "class"]),
        num_maps=3,
        backbone_units=["conv3", "conv5"],
        head_width=(8, 8),
    ).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, 64, 64))
    assert out.level_maps[0].shape == (2, 4, 3, 16, 16) and out.level_maps[1].shape == (2, 8, 3, 4, 4)
    assert [t.shape for t in out.level_logits] == [(2, 4), (2, 8)]
    torch.testing.assert_close(out.logits, out.level_maps[1].mean(dim=2).mean(dim=(2, 3)))


# -- LightningModule ----------------------------------------------------------------------
def tiny_model(**kwargs: object) -> DANet:
    options = dict(
        num_classes=8, backbone="resnet18", hierarchy="synthetic", num_maps=2, head_width=[16, 16]
    )
    options.update(kwargs)
    return DANet(**options)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_shapes_and_gradients_on_every_backbone(backbone: str) -> None:
    model = DANet(num_classes=200, backbone=backbone, hierarchy="cub", num_maps=2, head_width=[8, 8, 8])
    batch = make_batch(torch.randn(2, 3, 64, 64), torch.tensor([1, 199]))
    model.train()
    losses = model.training_losses(batch)
    assert set(losses) == {"ce_level0", "ce_level1", "ce_level2", "cosine"}
    torch.stack(list(losses.values())).sum().backward()
    for head in model.model.heads:
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in head.parameters())
    assert [h.num_classes for h in model.model.heads] == [11, 37, 200]
    model.eval()
    logits, maps = model.model.localize(batch.image, batch.label)[:2]
    assert logits.shape == (2, 200) and maps.dim() == 3 and maps.shape[0] == 2


def test_switches_hda_dda_levels_and_cosine_form() -> None:
    batch = make_batch(torch.randn(2, 3, 64, 64), torch.tensor([3, 6]))
    assert set(tiny_model(hda=False, num_maps=4, head_width=[16]).training_losses(batch)) == {
        "ce_level0",
        "cosine",
    }
    assert set(tiny_model(dda=False, num_maps=1).training_losses(batch)) == {"ce_level0", "ce_level1"}
    per_level = tiny_model(cosine_form="per_level", cosine_weight=1.0).training_losses(batch)["cosine"]
    assert 0.0 <= per_level.item() <= 1.0
    cub = DANet(
        num_classes=200, hierarchy="cub", levels=["family", "species"], num_maps=2, head_width=[8, 8]
    )
    assert [h.num_classes for h in cub.model.heads] == [37, 200]
    model = tiny_model(level_loss_weight=1.0, dda=False)
    out = model.model(batch.image)
    expected = F.cross_entropy(out.level_logits[0], torch.tensor([1, 3]))
    torch.testing.assert_close(model.training_losses(batch)["ce_level0"], expected)


def test_bad_arguments_name_the_key() -> None:
    with pytest.raises(HierarchyError, match="has 8 classes at its finest level 'class' but num_classes .* is 5"):
        tiny_model(num_classes=5)
    with pytest.raises(HierarchyError, match="but backbone_units has 3 entries"):
        tiny_model(backbone_units=["layer2_1", "layer3_1", "layer4_1"])
    with pytest.raises(ValueError, match="backbone_units .* must follow the backbone order"):
        tiny_model(backbone_units=["layer4_1", "layer3_1"])
    with pytest.raises(ValueError, match="cosine_form"):
        tiny_model(cosine_form="mine")
    with pytest.raises(ValueError, match="hda: false"):
        tiny_model(hda=False, levels=["group", "class"])
    with pytest.raises(ValueError, match="head_width must give one width per level"):
        tiny_model(hda=False, num_maps=4)
    with pytest.raises(ValueError, match="num_selected_maps=1 of the 2 maps"):
        tiny_model(num_maps=1)


def test_consistent_level_predictions_are_ancestors_of_the_top_class() -> None:
    model = tiny_model(consistent_level_predictions=True)
    fine = torch.tensor([[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 3.0, 0.6]])  # top class 6 is in group 3
    coarse = torch.tensor([[5.0, 0.0, 0.0, 0.0]])  # the coarse head alone says group 0
    consistent = model.configure_metrics()["level_accuracy"].level_scores((coarse, fine))
    assert consistent[0].argmax().item() == 3
    torch.testing.assert_close(consistent[0], torch.tensor([[0.1, 0.3, 0.5, 3.0]]))
    assert tiny_model().configure_metrics()["level_accuracy"].level_scores((coarse, fine))[0].argmax().item() == 0


def test_bf16_autocast_gives_finite_losses_and_maps() -> None:
    model = tiny_model()
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([0, 7])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model.training_losses(make_batch(x, y))
        _, maps = model.model.localize(x, y)[:2]
    assert all(torch.isfinite(v) and v.dtype == torch.float32 for v in losses.values())
    assert maps.dtype == torch.float32 and torch.isfinite(maps).all()


def test_registered_by_name() -> None:
    assert isinstance(get_model("danet", num_classes=8, num_maps=2, head_width=[8, 8]), DANet)


def test_cli_fit_and_test_log_per_level_accuracy(tmp_path: Path) -> None:
    extra = ["--model.init_args.head_width", "[16, 16]", "--model.init_args.num_maps", "2",
             "--model.init_args.union_box_threshold", "0.2"]
    run_cli(["fit", *tiny_cli_args(CONFIG, str(tmp_path / "fit"), *extra)])
    checkpoint = sorted((tmp_path / "fit").rglob("*.ckpt"))[-1]
    cli = run_cli(
        ["test", *tiny_cli_args(CONFIG, str(tmp_path / "test"), *extra), "--ckpt_path", str(checkpoint)]
    )
    logged = cli.trainer.callback_metrics
    for key in (
        "test/level0_top1",
        "test/level0_top4",
        "test/level1_top1",
        "test/level1_top5",
        "test/maxboxacc_v2",
        "test/top1_loc",
        "test/cls_top1",
        "test/top1_loc_union_levels",
        "test/top5_loc_union_levels",
    ):
        assert key in logged, key
    assert logged["test/top1_loc_union_levels"] <= logged["test/top5_loc_union_levels"]
    assert logged["test/level1_top1"] == pytest.approx(float(logged["test/cls_top1"]))


def write_hierarchy(path: Path, num_classes: int) -> Path:
    """A two-level hierarchy file: ``num_classes`` classes in two groups (the format of hierarchy/data/README.md)."""
    lines = ["level,name,parent", "group,small,", "group,large,"]
    lines += [f"class,c{c},{'small' if c < num_classes // 2 else 'large'}" for c in range(num_classes)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_hierarchy_file_by_path_and_its_class_count_check(tmp_path: Path) -> None:
    path = write_hierarchy(tmp_path / "five.csv", 5)
    model = tiny_model(hierarchy=str(path), num_classes=5)
    assert model.hierarchy.level_sizes == (2, 5) and model.hierarchy.class_names[0] == ("small", "large")
    with pytest.raises(HierarchyError) as err:
        tiny_model(hierarchy=str(path), num_classes=8)
    message = str(err.value)
    assert f"hierarchy {str(path)!r} has 5 classes at its finest level 'class'" in message
    assert "num_classes (the data's class count, linked into model.init_args.num_classes) is 8" in message
    assert "hierarchy/data/README.md" in message and "\n" not in message


def test_cli_class_count_mismatch_is_one_line_with_status_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # the check: the synthetic hierarchy has 8 classes, the data 5
    args = tiny_cli_args(CONFIG, str(tmp_path / "five"), "--data.dataset.num_classes", "5")
    assert main(["fit", *args, "--trainer.fast_dev_run", "true"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1, errors
    assert "has 8 classes at its finest level 'class'" in errors[0] and "is 5" in errors[0]
    assert "Namespace(" not in errors[0] and "Expected a" not in errors[0]
    # a hierarchy file with the data's 5 classes is accepted by path and trains
    path = write_hierarchy(tmp_path / "five.csv", 5)
    extra = ["--model.init_args.hierarchy", str(path), "--model.init_args.head_width", "[16, 16]"]
    cli = run_cli(["fit", *args, *extra, "--model.init_args.num_maps", "2", "--trainer.fast_dev_run", "true"])
    assert cli.model.hierarchy.level_sizes == (2, 5) and cli.model.num_classes == 5


def test_vgg_pooling_acol_with_the_official_units_is_vgg_da_p() -> None:
    # vgg_DA_p.py: 3x3/s2 pools 1-3, 3x3/s1 pools after conv4 and conv5; heads on pool3, conv4 with its
    # stride-1 pool, conv5 before its pool: every level at stride 8
    model = DANet(num_classes=200, hierarchy="cub", backbone="vgg16", pretrained=False, large_feature_map=True,
                  vgg_pooling="acol", backbone_units=["pool3", "conv4_inserted", "conv5"], num_maps=2,
                  head_width=8)
    units = model.model.backbone.units
    assert [(units[p].kernel_size, units[p].stride) for p in ("pool1", "pool2", "pool3")] == [(3, 2)] * 3
    assert units["conv4_inserted"].stride == 1 and units["conv5_inserted"].stride == 1
    with torch.no_grad():
        out = model.model(torch.rand(1, 3, 64, 64))
    assert [tuple(m.shape[-2:]) for m in out.level_maps] == [(8, 8)] * 3
    default = DANet(num_classes=200, hierarchy="cub", backbone="vgg16", pretrained=False, num_maps=2, head_width=8)
    assert default.model.backbone.units["pool1"].kernel_size == 2


def test_ranked_maps_fuse_each_levels_own_ith_class() -> None:
    net = tiny_model().model.eval()
    with torch.no_grad():
        images = torch.rand(3, 3, 32, 32)
        out = net(images)
        extras = net.localize(images).extras
    batch = torch.arange(3)
    for rank in (0, 1):
        own = [m[batch, logits.topk(2, dim=1).indices[:, rank]] for m, logits in zip(out.level_maps, out.level_logits)]
        torch.testing.assert_close(extras["ranked_maps"][:, rank], fuse_level_maps(own))
    assert torch.equal(extras["ranked_classes"], out.logits.topk(extras["ranked_maps"].shape[1], dim=1).indices)
    # the coarse level has 4 classes: rank 4 repeats its last (4th) class
    assert [len(m[0]) for m in out.level_logits] == [4, 8] and extras["ranked_maps"].shape[1] == 5
    last = [m[batch, logits.topk(min(5, logits.shape[1]), dim=1).indices[:, -1]]
            for m, logits in zip(out.level_maps, out.level_logits)]
    torch.testing.assert_close(extras["ranked_maps"][:, 4], fuse_level_maps(last))


def test_independent_level_union_loc_by_hand() -> None:
    # 2 ranks, 6x6 maps; GT box (1, 1, 3, 3); rank 0's map covers it exactly, rank 1's covers the right edge
    exact, edge = np.zeros((6, 6)), np.zeros((6, 6))
    exact[1:4, 1:4] = 1.0
    edge[:, 5] = 1.0
    maps = np.stack([np.stack([exact, edge]), np.stack([edge, exact])])  # [2 images, 2 ranks, 6, 6]
    boxes = [np.array([[1, 1, 3, 3]]), np.array([[1, 1, 3, 3]])]
    metric = IndependentLevelUnionLoc(0.5)
    # image 0: rank 0 is the label and its box is exact -> top-1 and top-5 hit
    # image 1: rank 0 is the label but its map misses; rank 1 hits the box but is another class -> no hit
    metric.update(maps, torch.tensor([[2, 0], [1, 0]]), torch.tensor([2, 1]), boxes, (6, 6))
    assert {k: float(v) for k, v in metric.compute().items()} == {"top1_loc_union_levels": 50.0,
                                                                  "top5_loc_union_levels": 50.0}
    metric.update(maps[1:], torch.tensor([[3, 1]]), torch.tensor([1]), boxes[1:], (6, 6))  # label at rank 1, hits
    assert {k: float(v) for k, v in metric.compute().items()} == {"top1_loc_union_levels": 100 / 3,
                                                                  "top5_loc_union_levels": 200 / 3}


def test_ten_crop_ranks_every_level_on_the_crops_and_logs_the_official_metric() -> None:
    from wsol_lightning.data import Synthetic, WSOLDataModule
    from wsol_lightning.models.base import crop_averaged_scores

    data = WSOLDataModule(Synthetic(image_size=32, train_size=8, val_size=8, test_size=8), resize_size=36,
                          crop_size=32, batch_size=4, num_workers=0, ten_crop=True)
    model = tiny_model(union_box_threshold=0.3)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    (metrics,) = trainer.test(model, datamodule=data, verbose=False)
    for name in ("top1_loc_union_levels_ten_crop", "top5_loc_union_levels_ten_crop", "top1_loc_union_levels"):
        assert f"test/{name}" in metrics, name
    batch = next(iter(data.test_dataloader()))
    model.eval()
    with torch.no_grad():
        out = model.model.localize(batch.image, batch.label)
        crops = model.model(batch.ten_crop_images.flatten(0, 1))
        extras = model.evaluation_extras(batch, out, model.ten_crop_outputs(batch))
        fine = crop_averaged_scores(crops.level_logits[-1], 4)
        coarse = crop_averaged_scores(crops.level_logits[0], 4)
        levels = model.model(batch.image)
    assert torch.equal(extras["ranked_classes_ten_crop"], fine.topk(5, dim=1).indices)
    first = [levels.level_maps[0][torch.arange(4), coarse.argmax(1)], levels.level_maps[1][torch.arange(4), fine.argmax(1)]]
    torch.testing.assert_close(extras["ranked_maps_ten_crop"][:, 0], fuse_level_maps(first))
