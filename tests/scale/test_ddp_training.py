"""``fit`` under ``strategy=ddp`` on 2 CPU processes (gloo) for every method config.

Run as subprocesses of the CLI: Lightning's ddp inside a multi-test pytest run re-executes pytest.
Each run trains two steps per process and validates once, so every method's losses, gradient
all-reduce (an unused parameter fails DDP's reducer), running state (I2C's centroid bank) and
random draws (ADL, ICL, HaS, CutMix) go through the real DDP machinery.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import tiny_cli_args

from wsol_lightning.models import available_models

CONFIGS = sorted(Path("experiments").glob("*.yaml"))
# MCIS's contrastive branch gets no gradient before ``contrastive_start_epoch`` and on batches whose
# pairs share every label, so DDP must look for unused parameters (README.md, "Multi-GPU and multi-node").
STRATEGY = {"mcis": "ddp_find_unused_parameters_true"}
# The tiny per-rank batch of 8 holds 4 pairs: MCIS's 4 different-class pairs would leave no same-class one.
EXTRA_ARGS = {"mcis": ["--data.different_class_pairs", "1"]}


def run_ddp_fit(config: Path, root: Path) -> None:
    """Fit ``config`` on 2 CPU DDP processes; assert it exits 0 and writes a checkpoint."""
    args = [
        "fit", *tiny_cli_args(str(config), str(root)),
        "--trainer.strategy", STRATEGY.get(config.stem, "ddp"), "--trainer.devices", "2",
        "--trainer.accelerator", "cpu", *EXTRA_ARGS.get(config.stem, []),
    ]
    env = {**os.environ, "PYTHONPATH": "src", "WANDB_MODE": "disabled"}
    result = subprocess.run([sys.executable, "-m", "wsol_lightning", *args], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"{config}: {result.stderr[-3000:]}"
    assert list(root.rglob("*.ckpt")), f"{config}: no checkpoint under {root}"


def test_every_registered_method_has_a_config() -> None:
    """The slow DDP sweep runs experiments/<name>.yaml, so every registered method needs one."""
    assert set(available_models()) <= {path.stem for path in CONFIGS}


def test_i2c_fits_under_ddp(tmp_path: Path) -> None:
    """Default-run DDP coverage: pair sampler, centroid bank all-reduce and DDP gradient sync."""
    run_ddp_fit(Path("experiments/i2c.yaml"), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("config", [c for c in CONFIGS if c.stem != "i2c"], ids=lambda c: c.stem)
def test_method_fits_under_ddp(config: Path, tmp_path: Path) -> None:
    run_ddp_fit(config, tmp_path)
