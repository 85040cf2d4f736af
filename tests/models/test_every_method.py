"""Every registered method, end to end at tiny size: fit -> validate -> test -> predict -> export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import make_batch, tiny_cli_args

from wsol_lightning.cli import run_cli
from wsol_lightning.export import export_model, load_module
from wsol_lightning.models import available_models, get_model

SMALL = ["--data.dataset.image_size", "32", "--data.resize_size", "36", "--data.crop_size", "32"]
#: What a method's synthetic config needs at batch size 8 (MCIS pairs 4 different-class pairs in 32).
EXTRA = {"mcis": ["--data.different_class_pairs", "1"]}


@pytest.mark.parametrize("method", available_models())
def test_fit_validate_test_predict_export(method: str, tmp_path: Path) -> None:
    config = f"experiments/{method}.yaml"
    args = lambda root: tiny_cli_args(config, str(tmp_path / root), *SMALL, *EXTRA.get(method, []))  # noqa: E731
    run_cli(["fit", *args("fit")])
    checkpoint = sorted((tmp_path / "fit").rglob("*.ckpt"))[-1]

    validated = run_cli(["validate", *args("validate"), "--ckpt_path", str(checkpoint)])
    assert 0.0 <= float(validated.trainer.callback_metrics["val/maxboxacc_v2"]) <= 100.0

    tested = run_cli(["test", *args("test"), "--ckpt_path", str(checkpoint), "--trainer.limit_test_batches", "1"])
    metrics = tested.trainer.callback_metrics
    for name in ("cls_top1", "maxboxacc_v2", "gt_known_loc", "top1_loc", "pxap", "gt_known_loc_at_val_threshold"):
        assert 0.0 <= float(metrics[f"test/{name}"]) <= 100.0, name

    predicted = run_cli(["predict", *args("predict"), "--ckpt_path", str(checkpoint),
                         "--trainer.limit_predict_batches", "1", "--return_predictions", "true"])
    outputs = predicted.trainer.predict_loop.predictions[0]
    assert outputs["cam"].shape == (8, 32, 32) and outputs["probabilities"].shape == (8, 8)

    exported = export_model(checkpoint, "torchscript", tmp_path / f"{method}.pt")
    module, _ = load_module(checkpoint)
    images = torch.rand(2, 3, 32, 32)
    logits, maps = torch.jit.load(str(exported))(images)
    with torch.no_grad():
        reference_logits, reference_maps = module.model.localize_all_classes(images)
        top = module.model.localize(images)
    torch.testing.assert_close(logits, reference_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(maps, reference_maps, atol=1e-4, rtol=1e-4)
    index = torch.arange(2)
    torch.testing.assert_close(maps[index, top.classes], top.maps, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("method", available_models())
def test_channels_last_is_the_same_network(method: str) -> None:
    """``channels_last: true`` stores 4-D weights and batch images NHWC; outputs equal NCHW's (the default)."""
    modules = {}
    for channels_last in (True, False):
        torch.manual_seed(0)
        modules[channels_last] = get_model(method, backbone="resnet18", channels_last=channels_last).eval()
    weights = [p for p in modules[True].model.parameters() if p.dim() == 4]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    assert not all(p.is_contiguous(memory_format=torch.channels_last)
                   for p in modules[False].model.parameters() if p.dim() == 4)
    batch = make_batch(torch.rand(2, 3, 64, 64), torch.tensor([0, 1]))
    converted = modules[True].on_after_batch_transfer(batch, 0).image
    assert converted.is_contiguous(memory_format=torch.channels_last)
    assert get_model(method, backbone="resnet18").hparams.channels_last is False
    with torch.no_grad():
        fast = modules[True].model.localize_all_classes(converted)
        reference = modules[False].model.localize_all_classes(torch.rand(2, 3, 64, 64).copy_(converted))
    for ours, theirs in zip(fast, reference):
        torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-3)
