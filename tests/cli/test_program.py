"""The commands as a user runs them: subprocesses, exit statuses, files on disk, one-line errors, Ctrl-C."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import tiny_cli_args

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CAM = "experiments/cam.yaml"
SMALL = ["--data.dataset.image_size", "32", "--data.resize_size", "36", "--data.crop_size", "32"]


def run(*command: str, cwd: Path = REPO, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def wsol(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return run(str(BIN / "wsol"), *args, **kwargs)


def tiny(root: Path, config: str = CAM, *extra: str) -> list[str]:
    return [*tiny_cli_args(config, str(root), *SMALL, *extra)]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cam_run")
    result = wsol("fit", *tiny(root))
    assert result.returncode == 0, result.stderr[-2000:]
    return root


def test_fit_leaves_everything_in_its_run_folder(fitted: Path) -> None:
    assert (fitted / "checkpoints" / "last.ckpt").is_file()
    assert (fitted / "config.yaml").is_file() and (fitted / "summary.json").is_file()
    assert not list(fitted.rglob("*.tmp"))  # atomic writes leave no temporary file behind


def test_test_predict_export_compare_exit_zero_and_write_their_outputs(fitted: Path, tmp_path: Path) -> None:
    checkpoint = str(fitted / "checkpoints" / "last.ckpt")
    tested = run(str(BIN / "lightning"), "test", *tiny(fitted), "--ckpt_path", checkpoint)
    assert tested.returncode == 0, tested.stderr[-2000:]
    predicted = run(sys.executable, "-m", "wsol_lightning", "predict", *tiny(tmp_path / "predict"),
                    "--ckpt_path", checkpoint, "--trainer.limit_predict_batches", "1",
                    "--output_dir", str(tmp_path / "out"))
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert (tmp_path / "out" / "detections.json").is_file() and list((tmp_path / "out" / "overlays").rglob("*.png"))
    exported = wsol("export", "--ckpt_path", checkpoint, "--format", "torchscript", "--output", str(tmp_path / "m.pt"))
    assert exported.returncode == 0 and (tmp_path / "m.pt").is_file(), exported.stderr[-2000:]
    compared = wsol("compare", str(fitted), "--output", str(tmp_path / "report"))
    assert compared.returncode == 0, compared.stderr[-2000:]
    assert "| test |" in (tmp_path / "report" / "comparison.md").read_text()


def test_i2c_second_stage_fits_from_a_cam_checkpoint(fitted: Path, tmp_path: Path) -> None:
    """I2C's two stages: its fit starts from the CAM run's tensors (``init_from``), each reported."""
    checkpoint = str(fitted / "checkpoints" / "last.ckpt")
    result = wsol("fit", *tiny(tmp_path, "experiments/i2c.yaml", "--model.init_args.init_from", checkpoint))
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    summary = re.search(rf"init_from {re.escape(checkpoint)}: (\d+) tensors loaded, (\d+) kept", output)
    assert summary and int(summary[1]) > 100, output[-3000:]  # the whole Lite0 backbone
    assert re.search(r"^  loaded +backbone\.", output, re.M) and re.search(r"^  new +", output, re.M)


def _one_line_error(result: subprocess.CompletedProcess, *expected: str) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    for text in expected:
        assert text in lines[0], lines[0]


def test_user_errors_are_one_line_and_status_2(fitted: Path, tmp_path: Path) -> None:
    checkpoint = str(fitted / "checkpoints" / "last.ckpt")
    missing_root = tmp_path / "CUB_200_2011"
    _one_line_error(wsol("fit", "--config", CAM, "--data.dataset", "CUB", "--data.dataset.root", str(missing_root)),
                    str(missing_root))
    _one_line_error(wsol("fit", "--config", CAM, "--model.init_args.backbone", "resnet50",
                         "--model.init_args.pretrained", "true", env={"TORCH_HOME": str(tmp_path / "th")}),
                    "resnet50", str(tmp_path / "th"))
    _one_line_error(wsol("fit", "--config", CAM, "--model.init_args.backbone", "resnet9"), "resnet9")
    _one_line_error(wsol("fit", *tiny(tmp_path / "i2c"), "--model.init_args.init_from", str(tmp_path / "cam.ckpt")),
                    "init_from", str(tmp_path / "cam.ckpt"))
    _one_line_error(wsol("fit", "--config", CAM, "--data.batch_size", "0"), "data.batch_size")
    _one_line_error(wsol("fit", "--config", CAM, "--model.init_args.lr_typo", "0.1"), "lr_typo")
    _one_line_error(wsol("test", "--config", CAM, "--ckpt_path", str(tmp_path / "nope.ckpt")), "nope.ckpt")
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(Path(checkpoint).read_bytes()[:5000])
    _one_line_error(wsol("test", "--config", CAM, "--ckpt_path", str(corrupt)), "corrupt.ckpt", "not a readable")
    # a CAM checkpoint given with the ACoL config: both names, and the flag that allows it
    _one_line_error(wsol("test", "--config", "experiments/acol.yaml", "--ckpt_path", checkpoint), "CAM", "ACoL",
                    "--allow_model_mismatch")


def test_ctrl_c_saves_last_ckpt_and_resume_ends_where_an_uninterrupted_fit_ends(tmp_path: Path) -> None:
    def command(root: Path, *extra: str) -> list[str]:
        return [str(BIN / "wsol"), "fit", *tiny(root), "--trainer.limit_train_batches", "1.0",
                "--trainer.max_epochs", "2", "--data.dataset.train_size", "96",
                "--trainer.callbacks+=wsol_lightning.callbacks.ResumableCheckpoint",
                "--trainer.callbacks.every_n_train_steps", "2", *extra]

    whole = run(*command(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-2000:]
    cut = tmp_path / "cut"
    process = subprocess.Popen(command(cut), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = cut / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=240)
    saved = torch.load(checkpoint, weights_only=False)
    if process.returncode == 0:  # the fit finished before the signal arrived: nothing to resume
        pytest.skip("the tiny fit ended before Ctrl-C could interrupt it")
    assert process.returncode == 130, stderr[-2000:]
    assert 0 < saved["global_step"] < 24
    resumed = run(*command(cut, "--ckpt_path", "last"))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = torch.load(checkpoint, weights_only=False)
    reference = torch.load(tmp_path / "whole" / "checkpoints" / "last.ckpt", weights_only=False)
    assert final["global_step"] == reference["global_step"] == 24
    for key, value in reference["state_dict"].items():
        torch.testing.assert_close(final["state_dict"][key], value, rtol=0, atol=1e-6, msg=key)
    optimizer_states = zip(final["optimizer_states"][0]["state"].values(),
                           reference["optimizer_states"][0]["state"].values(), strict=True)
    for a, b in optimizer_states:  # e.g. SGD's momentum buffers
        assert a.keys() == b.keys() and a
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=name)


def readme_quick_start() -> list[str]:
    """The commands of the README's quick start block(s) that run the package."""
    section = (REPO / "README.md").read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines()
            if line.strip().startswith(("lightning ", "wsol ", "python -m wsol_lightning"))]


def test_readme_quick_start_runs_at_smoke_size(tmp_path: Path) -> None:
    """CI runs the README's quick start (WSOL_SMOKE=1: a couple of batches per command)."""
    commands = readme_quick_start()
    assert commands, "the README's quick start names no command"
    shutil.copytree(REPO / "experiments", tmp_path / "experiments")
    photos = tmp_path / "my_photos"
    photos.mkdir()
    import matplotlib

    shutil.copy(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg", photos)
    for command in commands:
        program, *args = command.split()
        executable = [str(BIN / program)] if program in ("lightning", "wsol") else [sys.executable]
        result = run(*executable, *args, cwd=tmp_path, env={"WSOL_SMOKE": "1", "WANDB_MODE": "disabled"}, timeout=600)
        assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
