"""``wsol compare``: method x metric table, CSV and bar chart from run folders (no training)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml

from wsol_lightning.cli import main
from wsol_lightning.compare import wandb_record_payloads


def fake_csv_run(root: Path, model: str, backbone: str, rows: list[dict[str, str]]) -> Path:
    """A CSVLogger-like folder: ``version_0/metrics.csv`` and the ``config.yaml`` the CLI saves beside it."""
    folder = root / "lightning_logs" / "version_0"
    folder.mkdir(parents=True)
    columns = sorted({key for row in rows for key in row})
    with (folder / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    config = {"model": {"class_path": f"wsol_lightning.models.{model}", "init_args": {"backbone": backbone}},
              "data": {"dataset": "synthetic"}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return root


def test_compare_two_csv_runs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cam = fake_csv_run(tmp_path / "cam", "CAM", "resnet18", [
        {"epoch": "0", "val/maxboxacc_v2": "40.0"},
        {"epoch": "0", "test/maxboxacc_v2": "41.5", "test/top1_loc": "30.25", "test/cls_top1": "0.5"},
    ])
    acol = fake_csv_run(tmp_path / "acol", "ACoL", "vgg16", [
        {"epoch": "0", "test/maxboxacc_v2": "50.0", "test/top1_loc": "", "test/cls_top1": "0.75"},
        {"epoch": "1", "test/maxboxacc_v2": "55.0", "test/top1_loc": "35.0", "test/cls_top1": ""},
    ])
    out = tmp_path / "report"
    assert main(["compare", str(cam), str(acol), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| cam | resnet18 | synthetic | 41.50 | 30.25 | 0.50 |" in printed

    with (out / "comparison.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["method"] for r in rows] == ["cam", "acol"]
    metrics = ["test/maxboxacc_v2", "test/top1_loc", "test/cls_top1"]
    assert list(rows[0]) == ["method", "backbone", "dataset", *metrics]
    # last logged value of each metric; val/ metrics are left out once test/ exists
    assert [float(rows[1][m]) for m in metrics] == [55.0, 35.0, 0.75]
    markdown = (out / "comparison.md").read_text().splitlines()
    assert markdown[3] == "| acol | vgg16 | synthetic | 55.00 | 35.00 | 0.75 |"
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_errors_name_the_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="2"):
        main(["compare", str(tmp_path / "empty")])


def test_wandb_records_spanning_blocks_are_joined(tmp_path: Path) -> None:
    """The record file's LevelDB log framing: a record longer than a 32 KiB block is split into chunks."""
    big, small = b"a" * 40000, b"xyz"

    def chunk(kind: int, payload: bytes) -> bytes:
        return b"\0\0\0\0" + len(payload).to_bytes(2, "little") + bytes([kind]) + payload

    first_room = 32768 - 7 - 7  # after the file header and the first chunk header
    data = b":W&B\xe1\xbe\x00" + chunk(2, big[:first_room])
    data += chunk(4, big[first_room:]) + chunk(1, small)
    path = tmp_path / "run-x.wandb"
    path.write_bytes(data)
    assert list(wandb_record_payloads(path)) == [big, small]
    path.write_bytes(b"not a run")
    with pytest.raises(ValueError, match="run-x.wandb"):
        list(wandb_record_payloads(path))
