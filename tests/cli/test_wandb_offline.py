from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TINY_DATA

from wsol_lightning.cli import configure_wandb_mode


def test_offline_run_leaves_a_run_directory_with_metrics_and_images(tmp_path: Path) -> None:
    """A run as a user starts it (a separate process, no API key, no network) logs offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path), WANDB_DIR=str(tmp_path), PYTHONPATH="src")
    args = [
        "fit", "--config", "experiments/cam.yaml",
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--trainer.log_every_n_steps", "1",
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--trainer.callbacks", "[]",
        "--trainer.callbacks+=wsol_lightning.callbacks.CAMVisualizer",
        "--trainer.callbacks.init_args.num_images", "3",
        "--trainer.enable_progress_bar", "false",
        *TINY_DATA,
    ]
    result = subprocess.run([sys.executable, "-m", "wsol_lightning", *args], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    run = runs[0]
    records = next(run.glob("run-*.wandb")).read_bytes()  # the run's history records
    keys = set(re.findall(rb"(?:val|train)/[a-z0-9_]+", records))
    assert {b"val/maxboxacc_v2", b"val/gt_known_loc", b"val/top1_loc", b"train/loss"} <= keys
    assert len(list(run.rglob("media/images/**/*.png"))) == 3
    assert len(sorted(tmp_path.rglob("cam_images/epoch_000/*.png"))) == 3


def test_no_credentials_means_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert configure_wandb_mode() == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert configure_wandb_mode() == "disabled"
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert configure_wandb_mode() == "online"
