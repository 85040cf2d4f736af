from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import make_batch

from wsol_lightning.cam import minmax_normalize
from wsol_lightning.models import CAM, available_models, get_model
from wsol_lightning.models.cam import CAMNet
from wsol_lightning.models.components import BACKBONES


def test_cam_equals_class_weighted_sum_of_features() -> None:
    net = CAMNet("resnet18", num_classes=3).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = net(x)
        classes = torch.tensor([2, 0])
        maps = net.class_maps(out.features, classes)
        w = net.classifier.fc.weight
        by_hand = torch.stack([(w[c][:, None, None] * out.features[i]).sum(0) for i, c in enumerate(classes)])
        torch.testing.assert_close(maps, by_hand, rtol=1e-4, atol=1e-4)
        # GAP of the class map plus the bias is the logit (GAP and the linear layer commute)
        all_maps = net.class_maps(out.features)
        torch.testing.assert_close(all_maps.mean(dim=(2, 3)) + net.classifier.fc.bias, out.logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_shapes_and_gradients_on_every_backbone(backbone: str) -> None:
    model = CAM(num_classes=5, backbone=backbone)
    batch = make_batch(torch.randn(2, 3, 64, 64), torch.tensor([1, 4]))
    model.train()
    loss = model.training_losses(batch)["ce"]
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.model.classifier.parameters())
    model.eval()
    logits, maps = model.model.localize(batch.image, batch.label)[:2]
    assert logits.shape == (2, 5) and maps.dim() == 3 and maps.shape[0] == 2


def test_bf16_autocast_gives_finite_loss_and_maps() -> None:
    model = CAM(num_classes=4, backbone="resnet18")
    x, y = torch.randn(2, 3, 64, 64), torch.tensor([0, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.training_losses(make_batch(x, y))["ce"]
        _, maps = model.model.localize(x, y)[:2]
    assert torch.isfinite(loss) and torch.isfinite(maps.float()).all()


def test_parameter_groups_put_new_layers_and_resnet_layer4_at_the_head_rate() -> None:
    model = CAM(num_classes=4, backbone="resnet18", lr=0.01, head_lr_multiplier=10.0)
    groups = {g["name"]: g for g in model.parameter_groups()}
    assert groups["backbone"]["lr"] == 0.01 and groups["head"]["lr"] == pytest.approx(0.1)
    head_ids = {id(p) for p in groups["head"]["params"]}
    assert id(model.model.classifier.fc.weight) in head_ids
    assert id(model.model.backbone.units["layer4_0"].conv1.weight) in head_ids
    assert id(model.model.backbone.units["layer1_0"].conv1.weight) not in head_ids
    assert sum(len(g["params"]) for g in groups.values()) == len(list(model.parameters()))


def test_head_lr_prefixes_are_wsolevaluations_name_pattern_groups() -> None:
    """ACoL/SPG-ResNet50 in wsolevaluation: layer4 at 10x, the new heads at 1x (main.py L141-153)."""
    from wsol_lightning.errors import ConfigError
    from wsol_lightning.models import ACoL

    model = ACoL(num_classes=4, backbone="resnet18", lr=0.01, head_lr_prefixes=["backbone.units.layer4"])
    groups = {g["name"]: {id(p) for p in g["params"]} for g in model.parameter_groups()}
    assert id(model.model.backbone.units["layer4_1"].conv2.weight) in groups["head"]
    assert id(model.model.classifier.layers[0].weight) in groups["backbone"]
    assert id(model.model.classifier_erased.layers[4].weight) in groups["backbone"]
    head = {n for n, p in model.model.named_parameters() if id(p) in groups["head"]}
    assert head and all(n.startswith("backbone.units.layer4") for n in head)
    with pytest.raises(ConfigError, match="head_lr_prefixes must be prefixes .* got 'backbone.layer4'"):
        ACoL(num_classes=4, backbone="resnet18", head_lr_prefixes=["backbone.layer4"])


def test_minmax_normalize_constant_and_nan_maps_become_zeros() -> None:
    maps = torch.stack([torch.full((3, 3), 7.0), torch.arange(9.0).view(3, 3), torch.full((3, 3), float("nan"))])
    out = minmax_normalize(maps)
    assert torch.equal(out[0], torch.zeros(3, 3)) and torch.equal(out[2], torch.zeros(3, 3))
    assert out[1].max() == 1.0 and out[1].min() == 0.0


def test_registry() -> None:
    assert "cam" in available_models()
    assert isinstance(get_model("cam", num_classes=3), CAM)
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        get_model("nope")


def test_cross_entropy_is_the_only_loss() -> None:
    torch.manual_seed(0)
    model = CAM(num_classes=3, backbone="resnet18")
    batch = make_batch(torch.randn(2, 3, 32, 32), torch.tensor([0, 2]))
    model.eval()
    losses = model.training_losses(batch)
    assert list(losses) == ["ce"]
    torch.testing.assert_close(losses["ce"], F.cross_entropy(model(batch.image), batch.label))


@pytest.mark.parametrize(("decay", "expected_lrs"), [(2, [1.0, 1.0, 0.1, 0.1, 0.01]), ([1, 4], [1.0, 0.1, 0.1, 0.1, 0.01])])
def test_lr_decay_every_n_epochs_or_at_milestones(decay, expected_lrs) -> None:
    model = CAM(num_classes=3, lr=1.0, head_lr_multiplier=1.0, lr_decay_epochs=decay, lr_decay_factor=0.1)
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(5):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx(expected_lrs)
