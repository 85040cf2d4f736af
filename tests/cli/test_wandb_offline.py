from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import TINY_DATA

from wsol_lightning.callbacks.run_summary import read_summary
from wsol_lightning.cli import configure_wandb_mode

# The record file's framing (LevelDB log blocks), to check what W&B wrote; the package reads runs through
# summary.json, never this format.
_WANDB_MAGIC = b":W&B"
_WANDB_HEADER = 7  # magic, 2-byte format id, version byte
_BLOCK = 32768  # the LevelDB log format the .wandb record file uses: 32 KiB blocks of chunks
_CHUNK_HEADER = 7  # crc32c (4), length (2, little endian), type (1)
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def wandb_record_payloads(path: Path) -> Iterator[bytes]:
    """The serialized records of a ``run-*.wandb`` file (a partial last record is skipped)."""
    data = path.read_bytes()
    if not data.startswith(_WANDB_MAGIC):
        raise ValueError(f"{path} is not a W&B record file (no {_WANDB_MAGIC!r} header)")
    position, pieces = _WANDB_HEADER, []
    while position + _CHUNK_HEADER <= len(data):
        left_in_block = _BLOCK - position % _BLOCK
        if left_in_block < _CHUNK_HEADER:
            position += left_in_block
            continue
        length = int.from_bytes(data[position + 4:position + 6], "little")
        kind = data[position + 6]
        start, position = position + _CHUNK_HEADER, position + _CHUNK_HEADER + length
        if kind == 0 or position > len(data):  # block padding, or a record still being written
            position = start - _CHUNK_HEADER + left_in_block
            if position > len(data) or kind != 0:
                return
            continue
        if kind == _FULL:
            yield data[start:position]
        elif kind == _FIRST:
            pieces = [data[start:position]]
        elif kind == _MIDDLE:
            pieces.append(data[start:position])
        elif kind == _LAST:
            yield b"".join([*pieces, data[start:position]])

#: ``wsol fit ...`` followed by ``trainer.test`` on the fitted model, in one process (one W&B run).
FIT_THEN_TEST = (
    "import sys; from wsol_lightning.cli import run_cli; cli = run_cli(sys.argv[1:]); "
    "cli.trainer.test(cli.model, datamodule=cli.datamodule)"
)


def _run_record(run: Path) -> tuple[list[str], str, dict[str, object]]:
    """Tags, group and config updates of an offline run's record file."""
    from wandb.proto import wandb_internal_pb2

    tags: list[str] = []
    group, config = "", {}
    for payload in wandb_record_payloads(next(run.glob("run-*.wandb"))):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        if record.WhichOneof("record_type") == "run":
            tags, group = list(record.run.tags), record.run.run_group
        if record.WhichOneof("record_type") == "config":
            config.update({item.key: json.loads(item.value_json) for item in record.config.update})
    return tags, group, config


def test_offline_run_leaves_a_run_directory_with_metrics_and_images(tmp_path: Path) -> None:
    """A run as a user starts it (a separate process, no API key, no network) logs offline.

    It also carries what ``wsol compare`` and the W&B workspace need: tags and group from the
    config, the resolved config, BoxAcc-vs-threshold curves, galleries and a test summary row.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path), WANDB_DIR=str(tmp_path), PYTHONPATH="src")
    args = [
        "fit", "--config", "experiments/cam.yaml",
        "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
        "--trainer.log_every_n_steps", "1",
        "--trainer.logger.init_args.tags", "[smoke]",
        "--trainer.default_root_dir", str(tmp_path),
        "--trainer.logger.init_args.save_dir", str(tmp_path),
        "--trainer.callbacks", "[]",
        "--trainer.callbacks+=wsol_lightning.callbacks.CAMVisualizer",
        "--trainer.callbacks.init_args.num_images", "3",
        "--trainer.enable_progress_bar", "false",
        *TINY_DATA,
    ]
    result = subprocess.run([sys.executable, "-c", FIT_THEN_TEST, *args], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    run = runs[0]
    records = next(run.glob("run-*.wandb")).read_bytes()  # the run's history records
    keys = set(re.findall(rb"(?:val|train)/[a-z0-9_]+", records))
    assert {b"val/maxboxacc_v2", b"val/gt_known_loc", b"val/top1_loc", b"train/loss"} <= keys
    assert len(list(run.rglob("media/images/**/*.png"))) == 3
    assert len(sorted(tmp_path.rglob("cam_images/epoch_000/*.png"))) == 3

    tags, group, config = _run_record(run)
    assert tags == ["smoke", "cam", "efficientnet_lite0", "synthetic"] and group == "cam"
    assert (config["method"], config["backbone"], config["dataset"]) == ("cam", "efficientnet_lite0", "synthetic")
    assert config["cli"]["model"]["init_args"]["lr"] == 0.005  # the resolved config, not just hparams
    tables = {p.name.split("_")[0] + "/" + p.parent.name: json.loads(p.read_text())
              for p in run.rglob("media/table/*/*.table.json")}
    for stage in ("val", "test"):
        curve = tables[f"box/{stage}"]  # box_acc_curve: (threshold, "IoU d%", BoxAcc) rows
        assert {row[1] for row in curve["data"]} == {"IoU 30%", "IoU 50%", "IoU 70%"}
        assert len(curve["data"]) == 3 * 100 and all(0 <= row[2] <= 100 for row in curve["data"])
        gallery = tables[f"gallery/{stage}"]
        assert gallery["columns"] == ["image", "label", "gt_boxes", "pred_box", "iou"]
        assert len(gallery["data"]) == 8 and all(0 <= row[4] <= 1 for row in gallery["data"])
    summary = tables["summary/test"]
    assert summary["data"][0][:3] == ["cam", "efficientnet_lite0", "synthetic"]
    maxboxacc = summary["data"][0][summary["columns"].index("test/maxboxacc_v2")]

    summary = read_summary(tmp_path)  # what `wsol compare` reads back
    assert (summary["run"]["method"], summary["run"]["backbone"], summary["run"]["dataset"]) == (
        "cam", "efficientnet_lite0", "synthetic")
    assert summary["run"]["wandb_id"] == run.name.rsplit("-", 1)[-1]
    assert abs(summary["test"]["metrics"]["test/maxboxacc_v2"] - maxboxacc) < 1e-6


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
