from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import tiny_cli_args

from wsol_lightning.cli import run_cli

CAM_CONFIG = "experiments/cam.yaml"


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cam_fit")
    run_cli(["fit", *tiny_cli_args(CAM_CONFIG, str(root))])
    ckpts = sorted(root.rglob("*.ckpt"))
    assert ckpts, "fit wrote no checkpoint"
    return ckpts[-1]


def test_fit_writes_a_checkpoint_with_the_validation_threshold(trained_checkpoint: Path) -> None:
    state = torch.load(trained_checkpoint, map_location="cpu", weights_only=False)
    threshold = float(state["state_dict"]["cam_threshold"])
    assert 0.0 <= threshold < 1.0
    assert state["hyper_parameters"]["num_classes"] == 8


@pytest.mark.parametrize("subcommand", ["validate", "test"])
def test_evaluation_logs_every_localization_metric(subcommand: str, trained_checkpoint: Path, tmp_path: Path) -> None:
    cli = run_cli([subcommand, *tiny_cli_args(CAM_CONFIG, str(tmp_path)), "--ckpt_path", str(trained_checkpoint),
                "--trainer.limit_test_batches", "2"])
    stage = "val" if subcommand == "validate" else "test"
    metrics = cli.trainer.callback_metrics
    for name in ("cls_top1", "top1_loc", "top5_loc", "gt_known_loc", "maxboxacc_v2", "maxboxacc_iou50", "pxap"):
        value = float(metrics[f"{stage}/{name}"])
        assert 0.0 <= value <= 100.0, name


def test_model_flags_win_over_the_checkpoints_hyperparameters(trained_checkpoint: Path, tmp_path: Path) -> None:
    """An inference setting given with --ckpt_path is used (Lightning alone would take the checkpoint's)."""
    args = [*tiny_cli_args(CAM_CONFIG, str(tmp_path)), "--ckpt_path", str(trained_checkpoint),
            "--trainer.limit_test_batches", "1"]
    default = run_cli(["test", *args])
    assert default.model.hparams.cam_curve_interval == 0.01 and default.model.hparams.evaluation_overlap
    changed = run_cli(["test", *args, "--model.init_args.cam_curve_interval", "0.05", "--model.evaluation_overlap=false"])
    assert changed.model.hparams.cam_curve_interval == 0.05 and not changed.model.hparams.evaluation_overlap
    assert changed.model.hparams.lr == default.model.hparams.lr  # the rest still comes from the checkpoint
    thresholds, _, _ = changed.model.box_accuracy_curve("test")
    assert len(thresholds) == 20  # the sweep really ran at the new interval


def test_predict_returns_classes_and_maps(trained_checkpoint: Path, tmp_path: Path) -> None:
    cli = run_cli(["predict", *tiny_cli_args(CAM_CONFIG, str(tmp_path)), "--ckpt_path", str(trained_checkpoint),
                "--trainer.limit_predict_batches", "1", "--return_predictions", "true"])
    outputs = cli.trainer.predict_loop.predictions
    assert outputs and outputs[0]["cam"].shape == (8, 64, 64)
    assert outputs[0]["class"].shape == (8,)


def test_num_classes_is_linked_from_the_datamodule(tmp_path: Path) -> None:
    cli = run_cli(["fit", *tiny_cli_args(CAM_CONFIG, str(tmp_path)), "--data.dataset.num_classes", "5",
                "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "0"])
    assert cli.model.num_classes == 5 and cli.model.model.classifier.fc.out_features == 5


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wsol_lightning", *args], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "PYTHONPATH": "src"})


def test_module_entry_point_help() -> None:
    result = run_module("--help")
    assert result.returncode == 0 and "fit" in result.stdout and "predict" in result.stdout


def test_unknown_dataset_name_is_one_clear_line() -> None:
    result = run_module("fit", "--config", CAM_CONFIG, "--data.dataset", "imagenet21k")
    assert result.returncode != 0
    assert "imagenet21k" in result.stderr and "Traceback" not in result.stderr


def test_wrong_config_key_is_reported_by_name() -> None:
    result = run_module("fit", "--config", CAM_CONFIG, "--model.init_args.erase_treshold", "0.5")
    assert result.returncode != 0
    assert "erase_treshold" in result.stderr and "Traceback" not in result.stderr


def test_missing_dataset_root_is_one_clear_message(tmp_path: Path) -> None:
    missing = tmp_path / "CUB_200_2011"
    result = run_module("fit", "--config", CAM_CONFIG, "--data.dataset", "CUB", "--data.dataset.root", str(missing))
    assert result.returncode == 2
    assert str(missing) in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["wsol", "lightning", "python -m wsol_lightning"])
def test_console_scripts_exit_zero_after_a_successful_fit(command: str, tmp_path: Path) -> None:
    """``sys.exit(main())`` must give status 0: an in-process ``run_cli`` cannot see the exit status."""
    bin_dir = Path(sys.executable).parent
    program = [sys.executable, "-m", "wsol_lightning"] if command.startswith("python") else [str(bin_dir / command)]
    result = subprocess.run([*program, "fit", *tiny_cli_args(CAM_CONFIG, str(tmp_path))], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "WSOLCLI object" not in result.stdout + result.stderr
    assert list(tmp_path.rglob("*.ckpt"))
