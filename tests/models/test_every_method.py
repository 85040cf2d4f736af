"""Every registered method, end to end at tiny size: fit -> validate -> test -> predict -> export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import tiny_cli_args

from wsol_lightning.cli import run_cli
from wsol_lightning.export import export_model, load_module
from wsol_lightning.models import available_models

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
