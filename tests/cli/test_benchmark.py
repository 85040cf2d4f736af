"""``wsol benchmark``: the runner, its statistics, the report, resume and failures (as a user runs it)."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import TINY_DATA

from wsol_lightning.benchmark import METRICS, RunResult, aggregate, markdown_report, run_commands, verdict

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Two steps, then the epoch ends, so validation chooses the CAM threshold the test reports at.
TINY_RUN = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
            "--trainer.logger", "false", "--trainer.callbacks", "[]", *TINY_DATA,
            "--data.dataset.image_size", "32", "--data.resize_size", "36", "--data.crop_size", "32"]


def benchmark(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "wsol"), "benchmark", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900, env={**os.environ, "WANDB_MODE": "disabled"})


def result(method: str, seed: int, **metrics: float) -> RunResult:
    return RunResult(method=method, seed=seed, status="ok", command=[], folder="", metrics=metrics)


def test_paired_difference_is_per_seed_with_a_t_interval() -> None:
    results = [result("cam", 0, maxboxacc_v2=50.0), result("cam", 1, maxboxacc_v2=60.0), result("cam", 2, maxboxacc_v2=70.0),
               result("acol", 0, maxboxacc_v2=52.0), result("acol", 1, maxboxacc_v2=63.0),
               result("acol", 2, maxboxacc_v2=73.0)]
    cam, acol = aggregate(results)
    assert cam.method == "cam" and cam.differences["maxboxacc_v2"] is None
    assert acol.summaries["maxboxacc_v2"].mean == pytest.approx(62.6666667)
    difference = acol.differences["maxboxacc_v2"]
    # Differences 2, 3, 3: mean 8/3, sd 0.57735, t(0.975, 2) = 4.302653 -> half width 1.43426.
    assert difference.n == 3 and difference.mean == pytest.approx(8 / 3)
    assert (difference.low, difference.high) == pytest.approx((8 / 3 - 1.43426, 8 / 3 + 1.43426), abs=1e-4)
    # The unpaired spread (sd 10 per method) would not exclude 0; the paired one does.
    assert verdict(METRICS[0], difference) == "better"


def test_only_seeds_both_methods_finished_are_paired() -> None:
    results = [result("cam", 0, pxap=10.0), result("cam", 1, pxap=20.0), result("spa", 1, pxap=25.0),
               result("spa", 2, pxap=99.0), RunResult("spa", 0, "failed", [], "", reason="boom")]
    _, spa = aggregate(results)
    assert spa.seeds == [1, 2] and spa.summaries["pxap"].n == 2
    assert spa.differences["pxap"].n == 1 and spa.differences["pxap"].mean == 5.0
    assert verdict(METRICS[0], spa.differences["pxap"]) == ""  # one pair: no interval, no verdict
    assert math.isinf(spa.differences["pxap"].high)


def test_a_cell_on_fewer_seeds_than_its_row_says_so() -> None:
    cam = [result("cam", s, pxap=10.0 + s, maxboxacc_v2=30.0 + s) for s in range(3)]
    spa = [result("spa", 0, pxap=12.0, maxboxacc_v2=33.0), result("spa", 1, pxap=14.0, maxboxacc_v2=34.0),
           result("spa", 2, maxboxacc_v2=35.0)]  # seed 2 has no PxAP
    markdown = markdown_report(aggregate(cam + spa), [], "cam", "# t")
    means = next(line for line in markdown.splitlines() if line.startswith("| spa | 3 |"))
    assert "34.00 ± 1.00 |" in means and "13.00 ± 1.41 (n=2) |" in means
    difference = next(line for line in markdown.splitlines() if line.startswith("| spa | +"))
    cells = difference.split("|")  # method, MaxBoxAccV2, GT-known, Top-1, PxAP, ...
    assert cells[2].strip() == "+3.00 [+3.00, +3.00] ▲" and cells[5].strip().endswith("(n=2)")


def test_wandb_group_and_name_only_when_the_config_logs_to_wandb(tmp_path: Path) -> None:
    fit, test = run_commands(REPO / "experiments/cam.yaml", 3, tmp_path, ["--x", "1"], group="g", name="cam-seed3")
    assert fit[:1] == ["fit"] and test[:1] == ["test"]
    assert fit[fit.index("--trainer.logger.init_args.group") + 1] == "g" and "--seed_everything" in fit
    assert test[-2:] == ["--ckpt_path", str(tmp_path / "checkpoints" / "last.ckpt")]
    fit, _ = run_commands(REPO / "experiments/cam.yaml", 3, tmp_path, ["--trainer.logger", "false"], group="g")
    assert "--trainer.logger.init_args.group" not in fit


def test_benchmark_writes_the_four_files_resumes_and_lists_failures(tmp_path: Path) -> None:
    output, configs = tmp_path / "report", tmp_path / "configs"
    shutil.copytree(REPO / "experiments", configs, ignore=shutil.ignore_patterns("paper", "backbone"))
    first = benchmark("--methods", "cam", "adl", "--seeds", "0", "1", "--output", str(output),
                      "--configs", str(configs), "--", *TINY_RUN)
    assert first.returncode == 0, first.stderr[-3000:]
    for suffix in ("md", "csv", "json", "png"):
        assert (output / f"benchmark.{suffix}").stat().st_size > 0
    report = json.loads((output / "benchmark.json").read_text())
    assert {(r["method"], r["seed"], r["status"]) for r in report["runs"]} == {
        ("cam", 0, "ok"), ("cam", 1, "ok"), ("adl", 0, "ok"), ("adl", 1, "ok")}
    rows = {(r["method"], r["metric"]): r for r in csv.DictReader((output / "benchmark.csv").open())}
    adl = rows["adl", "maxboxacc_v2"]
    assert adl["n"] == "2" and float(adl["std"]) >= 0 and adl["diff_n"] == "2"
    seeds = {r["seed"]: r["metrics"]["maxboxacc_v2"] for r in report["runs"] if r["method"] == "adl"}
    cam = {r["seed"]: r["metrics"]["maxboxacc_v2"] for r in report["runs"] if r["method"] == "cam"}
    assert float(adl["diff_mean"]) == pytest.approx(((seeds[0] - cam[0]) + (seeds[1] - cam[1])) / 2)
    assert "top1_loc_at_val_threshold" in report["runs"][0]["metrics"]  # threshold chosen on val
    markdown = (output / "benchmark.md").read_text()
    assert "| adl | 2 |" in markdown and "Δ to CAM" in markdown and "95% interval" in markdown

    # A failing method is listed with its reason; the finished runs are reused, not trained again.
    # An interrupted run (no result.json; its checkpoint from before the kill) is trained afresh
    # and tested from its own last.ckpt, not the stale one.
    interrupted = output / "runs" / "cam" / "seed1"
    (interrupted / "result.json").unlink()
    (interrupted / "checkpoints" / "last.ckpt").write_bytes(b"a checkpoint from before the kill")
    (configs / "broken.yaml").write_text((configs / "cam.yaml").read_text().replace("lr: 0.005", "lr: fast"))
    stamp = (output / "runs" / "cam" / "seed0" / "result.json").stat().st_mtime_ns
    second = benchmark("--methods", "cam", "broken", "--seeds", "0", "1", "--output", str(output),
                       "--configs", str(configs), "--", *TINY_RUN)
    assert second.returncode == 1, second.stderr[-3000:]
    assert "cam seed 0: finished earlier, reused" in second.stdout
    assert (output / "runs" / "cam" / "seed0" / "result.json").stat().st_mtime_ns == stamp
    assert "cam seed 1: ok" in second.stdout
    assert json.loads((interrupted / "result.json").read_text())["metrics"]["maxboxacc_v2"] == cam[1]
    assert sorted(p.name for p in (interrupted / "checkpoints").iterdir()) == ["last.ckpt"]
    markdown = (output / "benchmark.md").read_text()
    assert "Failed runs (2)" in markdown and "broken seed 0: fit exited with status 2" in markdown and "lr" in markdown


def test_unknown_method_is_one_line_and_status_2(tmp_path: Path) -> None:
    result = benchmark("--methods", "cam", "nosuch", "--seeds", "0", "--output", str(tmp_path))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "nosuch" in line and "experiments/<method>.yaml" in line
