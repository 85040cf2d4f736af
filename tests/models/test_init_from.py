"""``init_from``: a network initialized from another run's tensors where name and shape match."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from wsol_lightning.errors import CheckpointError
from wsol_lightning.models import CAM, I2C
from wsol_lightning.models.components.init_from import load_matching_weights


def _trained_cam(num_classes: int = 5) -> CAM:
    torch.manual_seed(0)
    model = CAM(num_classes=num_classes, backbone="resnet18")
    with torch.no_grad():
        for tensor in model.model.parameters():
            tensor.add_(torch.randn_like(tensor))  # anything a fresh init would not give
    return model


def _lightning_checkpoint(model: CAM, path: Path) -> Path:
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, path)
    return path


def test_a_lightning_checkpoint_loads_every_matching_tensor_and_reports_the_rest(tmp_path: Path) -> None:
    source = _trained_cam(num_classes=5)
    checkpoint = _lightning_checkpoint(source, tmp_path / "cam.ckpt")
    target = CAM(num_classes=3, backbone="resnet18")  # another class count: the classifier cannot come over
    fresh_classifier = target.model.classifier.fc.weight.clone()
    transfer = load_matching_weights(target.model, checkpoint)
    ours, theirs = target.model.state_dict(), source.model.state_dict()
    assert "backbone.units.stem.0.weight" in transfer.loaded
    for name in transfer.loaded:
        assert torch.equal(ours[name], theirs[name]), name
    assert {name for name, _, _ in transfer.mismatched} == {"classifier.fc.weight", "classifier.fc.bias"}
    assert torch.equal(target.model.classifier.fc.weight, fresh_classifier)
    assert transfer.new == [] and transfer.unused == []
    assert len(transfer.loaded) + len(transfer.mismatched) == len(ours)
    report = transfer.report().splitlines()
    assert report[0].startswith(f"init_from {checkpoint}: {len(transfer.loaded)} tensors loaded, 2 kept")
    assert "  kept      classifier.fc.weight: network [3, 512], file [5, 512]" in report
    assert len(report) == 1 + len(ours)


def test_a_network_state_dict_gives_the_same_logits(tmp_path: Path) -> None:
    source = _trained_cam().eval()
    path = tmp_path / "network.pt"
    torch.save(source.model.state_dict(), path)
    target = CAM(num_classes=5, backbone="resnet18").eval()
    load_matching_weights(target.model, path)
    images = torch.rand(2, 3, 64, 64)
    assert torch.equal(target(images), source(images))


def test_cam_into_i2c_is_the_papers_second_stage(tmp_path: Path) -> None:
    """The backbone of a CAM run initializes I2C; I2C's own head stays new (I2C note: stage 2)."""
    checkpoint = _lightning_checkpoint(_trained_cam(), tmp_path / "cam.ckpt")
    model = I2C(num_classes=5, backbone="resnet18", init_from=str(checkpoint))
    before = {k: v.clone() for k, v in model.model.state_dict().items()}
    model.setup("fit")
    after = model.model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert "backbone.units.stem.0.weight" in changed
    assert changed and all(k.startswith("backbone.") for k in changed)
    stem = model.model.state_dict()["backbone.units.stem.0.weight"]
    stem.zero_()  # as if trained further
    model.setup("test")  # only a fit loads the file
    assert not model.model.state_dict()["backbone.units.stem.0.weight"].any()


def test_unusable_files_are_one_checkpoint_error_naming_the_file(tmp_path: Path) -> None:
    network = CAM(num_classes=3, backbone="resnet18").model
    with pytest.raises(CheckpointError, match="missing.ckpt is not a file"):
        load_matching_weights(network, tmp_path / "missing.ckpt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="cannot read .*garbage.pt"):
        load_matching_weights(network, garbage)
    unrelated = tmp_path / "unrelated.pt"
    torch.save({"encoder.weight": torch.zeros(2)}, unrelated)
    with pytest.raises(CheckpointError, match="no tensor of .*unrelated.pt matches"):
        load_matching_weights(network, unrelated)
