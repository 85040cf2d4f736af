"""`test` on 2 DDP processes gives exactly the metrics of 1 process (every image counted once).

Evaluation batches hold one image so the forward pass is bit-identical however the images are
sharded (CPU convolutions may round differently for different batch compositions), and every
process uses one thread (the depthwise convolutions of EfficientNet pick different kernels, which
round differently, for different thread counts; DDP on CPU divides the threads among processes).

Run as subprocesses of the CLI: Lightning's ddp inside a multi-test pytest run re-executes pytest.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

from helpers import tiny_cli_args

from wsol_lightning.cli import run_cli


def run_test(tmp_path: Path, ckpt: Path, devices: int) -> dict[str, float]:
    out = tmp_path / f"devices{devices}"
    args = [
        "test", *tiny_cli_args("experiments/cam.yaml", str(out)),
        "--data.dataset.test_size", "15", "--data.batch_size", "4", "--data.eval_batch_size", "1",
        "--trainer.accelerator", "cpu", "--trainer.devices", str(devices),
        "--trainer.strategy", "ddp" if devices > 1 else "auto",
        "--trainer.logger", "pytorch_lightning.loggers.CSVLogger", "--trainer.logger.init_args.save_dir", str(out),
        "--ckpt_path", str(ckpt),
    ]
    env = {**os.environ, "PYTHONPATH": "src", "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "wsol_lightning", *args], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader(next(out.rglob("metrics.csv")).open()))
    return {k: float(v) for row in rows for k, v in row.items() if k.startswith("test/") and v != ""}


def test_two_process_test_equals_one_process(tmp_path: Path) -> None:
    fit_dir = tmp_path / "fit"
    run_cli(["fit", *tiny_cli_args("experiments/cam.yaml", str(fit_dir))])
    ckpt = next(fit_dir.rglob("*.ckpt"))
    single = run_test(tmp_path, ckpt, devices=1)
    double = run_test(tmp_path, ckpt, devices=2)
    assert "test/maxboxacc_v2" in single and "test/top1_loc" in single
    assert single == double
