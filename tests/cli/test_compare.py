"""``wsol compare``: one row per run (name, id, date), percent columns, grouping over seeds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from wsol_lightning.cli import main


def fake_run(folder: Path, method: str, seed: int, stages: dict[str, dict[str, float]], config: dict | None = None) -> Path:
    """A run folder as the CLI leaves it: ``summary.json`` (and ``config.yaml``)."""
    folder.mkdir(parents=True)
    summary = {"run": {"id": f"id{seed}{method}", "name": folder.name, "created": "2026-12-01T10:00:00+00:00",
                       "method": method, "backbone": "resnet18", "dataset": "synthetic", "seed": seed}}
    for stage, metrics in stages.items():
        summary[stage] = {"finished": f"2026-12-0{seed + 1}T11:00:00+00:00", "metrics": metrics}
    (folder / "summary.json").write_text(json.dumps(summary))
    config = {"seed_everything": seed, "trainer": {"default_root_dir": str(folder)}, **(config or {"model": method})}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def test_one_row_per_run_with_its_stage_and_percent_columns(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fake_run(tmp_path / "cam", "cam", 0, {"fit": {"val/maxboxacc_v2": 40.0, "val/cls_top1": 0.5},
                                          "test": {"test/maxboxacc_v2": 41.5, "test/cls_top1": 0.625}})
    fake_run(tmp_path / "acol", "acol", 0, {"fit": {"val/maxboxacc_v2": 50.0, "val/cls_top1": 0.75}})
    out = tmp_path / "report"
    assert main(["compare", str(tmp_path / "cam"), str(tmp_path / "acol"), "--output", str(out)]) == 0
    with (out / "comparison.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["name"], r["id"], r["stage"]) for r in rows] == [("cam", "id0cam", "test"), ("acol", "id0acol", "fit")]
    assert rows[0]["date"] == "2026-12-01T11:00:00"
    # fit runs show their validation metrics; every metric column in percent (fractions scaled)
    assert (rows[0]["maxboxacc_v2 (%)"], rows[0]["cls_top1 (%)"]) == ("41.50", "62.50")
    assert (rows[1]["maxboxacc_v2 (%)"], rows[1]["cls_top1 (%)"]) == ("50.00", "75.00")
    printed = capsys.readouterr().out
    assert "| name | id | date |" in printed and (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_group_gives_mean_and_std_over_the_seeds_of_one_config(tmp_path: Path) -> None:
    for seed, value in enumerate((40.0, 44.0, 42.0)):
        fake_run(tmp_path / f"cam_s{seed}", "cam", seed, {"test": {"test/maxboxacc_v2": value}})
    fake_run(tmp_path / "cam_other", "cam", 0, {"test": {"test/maxboxacc_v2": 10.0}}, config={"model": "cam", "lr": 1})
    out = tmp_path / "report"
    assert main(["compare", str(tmp_path), "--group", "--metrics", "maxboxacc_v2", "--output", str(out)]) == 0
    rows = (out / "comparison.md").read_text().splitlines()[2:]
    assert len(rows) == 2  # the seeds of one config in one row, the other config apart
    three = next(r for r in rows if "| 3 |" in r)
    assert "42.00 ± 2.00" in three and "0 1 2" in three


def test_missing_or_empty_folders_are_one_line_and_status_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["compare", str(tmp_path / "empty")]) == 2
    assert "no finished run" in capsys.readouterr().err
