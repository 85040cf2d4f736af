"""``wsol compare``: a method x metric table (markdown and CSV) and a bar chart PNG of finished runs.

Runs come from folders (searched recursively) holding W&B offline runs (``offline-run-*/run-*.wandb``,
read record by record; the run's ``files/wandb-summary.json`` when the record file is absent) or
Lightning ``CSVLogger`` logs (``metrics.csv``, with the ``config.yaml`` the CLI saves beside it),
or, with ``--project``, from the W&B API (online)::

    wsol compare runs/cam runs/acol --output reports/synthetic
    wsol compare --project my-team/wsol-lightning --output reports/paper

Each run is named ``method-backbone-dataset`` (from the config the CLI logged; otherwise the
folder name). A metric's value is its last logged value; ``test/`` metrics are used when any run
has them, else ``val/``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from wsol_lightning.callbacks.wandb_report import identity_from_config

#: Metrics shown by default, in this order, when a run logged them.
DEFAULT_METRICS = ("maxboxacc_v2", "gt_known_loc", "top1_loc", "top5_loc", "pxap", "cls_top1")

_WANDB_MAGIC = b":W&B"
_WANDB_HEADER = 7  # magic, 2-byte format id, version byte
_BLOCK = 32768  # the LevelDB log format the .wandb record file uses: 32 KiB blocks of chunks
_CHUNK_HEADER = 7  # crc32c (4), length (2, little endian), type (1)
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class RunResult:
    """One run's identity and last metric values."""

    method: str
    backbone: str
    dataset: str
    metrics: dict[str, float] = field(default_factory=dict)
    source: str = ""

    @property
    def label(self) -> str:
        return f"{self.method}-{self.backbone}-{self.dataset}"


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


def _item_value(item: Any) -> Any:
    if item.value_json:
        return json.loads(item.value_json)
    has_typed_value = any(oneof.name == "value" for oneof in item.DESCRIPTOR.oneofs)  # HistoryItem only
    kind = item.WhichOneof("value") if has_typed_value else None
    return getattr(item, kind) if kind else None


def _item_key(item: Any) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v) for k, v in values.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def _identity(config: dict[str, Any], fallback_method: str) -> dict[str, str]:
    """From the keys the CLI logs (``method``...), a CLI config (``model``...), else hyper-parameters."""
    if {"method", "backbone", "dataset"} <= config.keys():
        return {k: str(config[k]) for k in ("method", "backbone", "dataset")}
    if "model" in config:
        return identity_from_config(config)
    return {"method": fallback_method, "backbone": str(config.get("backbone", "?")), "dataset": "?"}


def load_wandb_offline_run(run_dir: Path) -> RunResult:
    """A W&B offline run folder (``offline-run-*``): its config identity and last metrics."""
    from wandb.proto import wandb_internal_pb2

    record_files = sorted(run_dir.glob("run-*.wandb"))
    config: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    fallback_method = run_dir.name
    if record_files:
        for payload in wandb_record_payloads(record_files[0]):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(payload)
            kind = record.WhichOneof("record_type")
            if kind == "run":
                fallback_method = record.run.run_group or record.run.display_name or fallback_method
                config.update({_item_key(i): _item_value(i) for i in record.run.config.update})
            elif kind == "config":
                config.update({_item_key(i): _item_value(i) for i in record.config.update})
            elif kind == "history":
                metrics.update({_item_key(i): _item_value(i) for i in record.history.item})
            elif kind == "summary":
                metrics.update({_item_key(i): _item_value(i) for i in record.summary.update})
    elif (run_dir / "files" / "wandb-summary.json").is_file():
        metrics = json.loads((run_dir / "files" / "wandb-summary.json").read_text())
        config_file = run_dir / "files" / "config.yaml"
        if config_file.is_file():
            raw = yaml.safe_load(config_file.read_text()) or {}
            config = {k: v.get("value") if isinstance(v, dict) else v for k, v in raw.items()}
    else:
        raise FileNotFoundError(f"{run_dir}: neither run-*.wandb nor files/wandb-summary.json")
    return RunResult(**_identity(config, fallback_method), metrics=_numbers(metrics), source=str(run_dir))


def load_csv_run(metrics_csv: Path) -> RunResult:
    """A ``CSVLogger`` run: last value of each column of ``metrics.csv``, identity from ``config.yaml``."""
    last: dict[str, float] = {}
    with metrics_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            last.update({k: float(v) for k, v in row.items() if k and v not in (None, "")})
    config: dict[str, Any] = {}
    for folder in (metrics_csv.parent, *metrics_csv.parents[:3]):
        if (folder / "config.yaml").is_file():
            config = yaml.safe_load((folder / "config.yaml").read_text()) or {}
            break
    log_folder = metrics_csv.parent
    fallback = log_folder.parent.name if log_folder.name.startswith("version_") else log_folder.name
    return RunResult(**_identity(config, fallback), metrics=_numbers(last), source=str(metrics_csv))


def discover_runs(paths: Sequence[str | Path]) -> list[RunResult]:
    """Every W&B offline run and CSV log under ``paths`` (folders searched recursively)."""
    runs: list[RunResult] = []
    for path in map(Path, paths):
        if not path.exists():
            raise FileNotFoundError(f"run folder not found: {path}")
        found = False
        wandb_dirs = {p.parent for p in path.rglob("run-*.wandb")}
        wandb_dirs |= {p.parent.parent for p in path.rglob("files/wandb-summary.json")}
        if path.name.startswith(("offline-run-", "run-")) and path.is_dir():
            wandb_dirs.add(path)
        for run_dir in sorted(d for d in wandb_dirs if d.name.startswith(("offline-run-", "run-"))):
            runs.append(load_wandb_offline_run(run_dir))
            found = True
        csv_files = [path] if path.name == "metrics.csv" else sorted(path.rglob("metrics.csv"))
        for metrics_csv in csv_files:
            runs.append(load_csv_run(metrics_csv))
            found = True
        if not found:
            raise FileNotFoundError(
                f"{path}: no W&B run (offline-run-*/run-*.wandb) and no metrics.csv inside"
            )
    return runs


def load_api_runs(project: str) -> list[RunResult]:
    """The runs of a W&B project (``entity/project``) through the public API (needs the network)."""
    import wandb

    runs = []
    for run in wandb.Api().runs(project):
        config = dict(run.config)
        identity = _identity(config, run.name)
        runs.append(RunResult(**identity, metrics=_numbers(dict(run.summary)), source=run.url))
    return runs


def choose_metrics(runs: Sequence[RunResult], names: Sequence[str] | None = None) -> list[str]:
    """The metric columns: ``names`` as given, else :data:`DEFAULT_METRICS` under ``test/`` (or ``val/``)."""
    if names:
        return list(names)
    logged = {key for run in runs for key in run.metrics}
    stage = "test" if any(key.startswith("test/") for key in logged) else "val"
    return [f"{stage}/{name}" for name in DEFAULT_METRICS if f"{stage}/{name}" in logged]


def comparison_rows(runs: Sequence[RunResult], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One row per run: method, backbone, dataset and each metric (``NaN`` when the run lacks it)."""
    return [
        {"method": r.method, "backbone": r.backbone, "dataset": r.dataset,
         **{m: r.metrics.get(m, math.nan) for m in metrics}}
        for r in runs
    ]


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """A GitHub markdown table of ``rows`` (floats with two decimals, missing as ``-``)."""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [
            ("-" if math.isnan(v) else f"{v:.2f}") if isinstance(v, float) else str(v) for v in row.values()
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_comparison(
    runs: Sequence[RunResult], output: str | Path, metrics: Sequence[str] | None = None
) -> dict[str, Path]:
    """Write ``comparison.md``, ``.csv`` and ``.png`` under ``output``; returns their paths."""
    from wsol_lightning.plots import comparison_figure, save_figure

    if not runs:
        raise ValueError("no runs to compare")
    columns = choose_metrics(runs, metrics)
    if not columns:
        raise ValueError(f"the runs logged none of the metrics {', '.join(DEFAULT_METRICS)}; pass --metrics")
    rows = comparison_rows(runs, columns)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": output / "comparison.md", "csv": output / "comparison.csv",
             "png": output / "comparison.png"}
    paths["markdown"].write_text(markdown_table(rows))
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    values = np.array([[row[m] for m in columns] for row in rows], dtype=float)
    save_figure(comparison_figure([r.label for r in runs], columns, values), paths["png"])
    return paths


def main(argv: Sequence[str] | None = None) -> dict[str, Path]:
    """``wsol compare`` entry point."""
    parser = argparse.ArgumentParser(
        prog="wsol compare", description="Method x metric table (markdown, CSV) and bar chart (PNG) of runs."
    )
    parser.add_argument("runs", nargs="*", help="run folders (searched recursively): W&B offline, CSVLogger")
    parser.add_argument("--project", help="also read the runs of this W&B project (entity/project; online)")
    parser.add_argument("--metrics", nargs="+", help="metric keys (default: main test/ metrics, else val/)")
    parser.add_argument("--output", default="comparison", help="output folder (default: ./comparison)")
    args = parser.parse_args(argv)
    if not args.runs and not args.project:
        parser.error("give run folders, --project, or both")
    try:
        runs = discover_runs(args.runs)
        if args.project:
            runs += load_api_runs(args.project)
        paths = write_comparison(runs, args.output, args.metrics)
    except (FileNotFoundError, ValueError) as err:
        parser.exit(2, f"wsol compare: error: {err}\n")
    print(paths["markdown"].read_text(), end="")
    print("written: " + ", ".join(str(p) for p in paths.values()))
    return paths
