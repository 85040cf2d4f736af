"""``wsol compare``: finished runs side by side (markdown, CSV and a chart), one row per run or per config.

Runs are the folders holding a ``summary.json`` (every CLI run writes one,
:class:`~wsol_lightning.callbacks.RunSummary`), searched recursively under the given paths, or with
``--project`` the runs of a W&B project (online, through W&B's own API)::

    wsol compare runs/cam runs/acol --output reports/synthetic
    wsol compare runs/benchmark --group --output reports/seeds     # mean +- std over seeds
    wsol compare --project my-team/wsol-lightning --output reports/paper

A row is a run: its name, id, date, method, backbone, dataset, seed and its metrics, test metrics
when the run was tested, else the last validation's (the ``stage`` column says which). Every metric
column is in percent (classification accuracies, logged as fractions, are scaled) and the header
says so. ``--group`` puts the runs of one method, backbone, dataset and configuration (the
``config.yaml`` the CLI saved, without the seed and the output folders) in one row: mean +- std and
the number of runs.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from wsol_lightning.callbacks.run_summary import SUMMARY_NAME, read_summary
from wsol_lightning.errors import UserError
from wsol_lightning.stats import summarize

#: Metrics shown by default, in this order, when a run logged them.
DEFAULT_METRICS = ("maxboxacc_v2", "gt_known_loc", "top1_loc", "top5_loc", "pxap", "cls_top1")
#: Metrics logged as fractions (shown in percent).
FRACTION_PREFIXES = ("cls_", "level")
#: Config keys that differ between runs of one configuration (left out of its fingerprint).
VOLATILE_KEYS = ("seed_everything", "ckpt_path")
VOLATILE_TRAINER_KEYS = ("default_root_dir", "logger", "callbacks")


@dataclass
class Run:
    """One finished run: identity, the stage its metrics come from, metrics in percent."""

    name: str
    run_id: str
    date: str
    method: str
    backbone: str
    dataset: str
    seed: int
    stage: str
    metrics: dict[str, float] = field(default_factory=dict)
    config: str = ""
    folder: str = ""


def percent(name: str, value: float) -> float:
    """A metric value in percent (fractions are scaled)."""
    return value * 100.0 if name.startswith(FRACTION_PREFIXES) else value


def config_fingerprint(folder: Path) -> str:
    """A short digest of the run's ``config.yaml`` without seed and output folders ("" without one)."""
    path = folder / "config.yaml"
    if not path.is_file():
        return ""
    config = yaml.safe_load(path.read_text()) or {}
    for key in VOLATILE_KEYS:
        config.pop(key, None)
    for key in VOLATILE_TRAINER_KEYS:
        (config.get("trainer") or {}).pop(key, None)
    return hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:8]


def run_from_summary(folder: Path) -> Run | None:
    """The :class:`Run` of a folder's ``summary.json`` (``None`` when it has no metrics yet)."""
    summary = read_summary(folder)
    stage = next((s for s in ("test", "validate", "fit") if summary.get(s, {}).get("metrics")), None)
    if stage is None:
        return None
    run = summary.get("run", {})
    prefix = "test/" if stage == "test" else "val/"
    metrics = {
        key.removeprefix(prefix): percent(key.removeprefix(prefix), value)
        for key, value in summary[stage]["metrics"].items()
        if key.startswith(prefix)
    }
    return Run(
        name=str(run.get("name", folder.name)), run_id=str(run.get("id", "")),
        date=str(summary[stage].get("finished", run.get("created", ""))), method=str(run.get("method", "?")),
        backbone=str(run.get("backbone", "?")), dataset=str(run.get("dataset", "?")),
        seed=int(run.get("seed", -1)), stage=stage, metrics=metrics, config=config_fingerprint(folder),
        folder=str(folder),
    )


def discover_runs(paths: Sequence[str | Path]) -> list[Run]:
    """Every run with metrics under ``paths``, in the order found (sorted within a path).

    Raises:
        UserError: a path does not exist or holds no finished run.
    """
    runs: list[Run] = []
    for path in map(Path, paths):
        if not path.exists():
            raise UserError(f"{path}: no such folder")
        found = [run_from_summary(p.parent) for p in sorted(path.rglob(SUMMARY_NAME))]
        found = [r for r in found if r is not None]
        if not found:
            raise UserError(
                f"{path}: no finished run below it (a run folder holds the {SUMMARY_NAME} that wsol fit/test write)"
            )
        runs += found
    return runs


def load_api_runs(project: str) -> list[Run]:
    """The finished runs of a W&B project through W&B's API (needs network and credentials)."""
    import wandb

    runs = []
    for api_run in wandb.Api().runs(project):
        summary = {k: v for k, v in api_run.summary.items() if isinstance(v, (int, float))}
        stage = "test" if any(k.startswith("test/") for k in summary) else "fit"
        prefix = "test/" if stage == "test" else "val/"
        config = api_run.config or {}
        runs.append(Run(
            name=api_run.name, run_id=api_run.id, date=str(api_run.created_at), method=str(config.get("method", "?")),
            backbone=str(config.get("backbone", "?")), dataset=str(config.get("dataset", "?")),
            seed=int((config.get("cli") or {}).get("seed_everything", -1)), stage=stage,
            metrics={k.removeprefix(prefix): percent(k.removeprefix(prefix), float(v))
                     for k, v in summary.items() if k.startswith(prefix)},
        ))
    return runs


def choose_metrics(runs: Sequence[Run], names: Sequence[str] | None = None) -> list[str]:
    """``names``, or the default metrics any run has (then its other MaxBoxAcc columns)."""
    if names:
        return list(names)
    present = {m for r in runs for m in r.metrics}
    return [m for m in DEFAULT_METRICS if m in present]


def run_rows(runs: Sequence[Run], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One row per run."""
    rows = []
    for r in runs:
        row: dict[str, Any] = {"name": r.name, "id": r.run_id, "date": r.date[:19], "method": r.method,
                               "backbone": r.backbone, "dataset": r.dataset, "seed": r.seed, "stage": r.stage}
        row.update({f"{m} (%)": r.metrics.get(m) for m in metrics})
        rows.append(row)
    return rows


def grouped_rows(runs: Sequence[Run], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One row per (method, backbone, dataset, config): ``mean +- std`` over its runs and their count."""
    groups: dict[tuple, list[Run]] = {}
    for r in runs:
        groups.setdefault((r.method, r.backbone, r.dataset, r.config, r.stage), []).append(r)
    rows = []
    for (method, backbone, dataset, config, stage), members in groups.items():
        row: dict[str, Any] = {"method": method, "backbone": backbone, "dataset": dataset, "config": config,
                               "stage": stage, "runs": len(members),
                               "seeds": " ".join(str(m.seed) for m in sorted(members, key=lambda m: m.seed))}
        for m in metrics:
            values = [r.metrics[m] for r in members if m in r.metrics]
            row[f"{m} (%)"] = summarize(values) if values else None
        rows.append(row)
    return rows


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if hasattr(value, "mean"):
        return f"{value.mean:.2f} ± {value.std:.2f}" if value.n > 1 else f"{value.mean:.2f}"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_comparison(rows: Sequence[dict[str, Any]], metrics: Sequence[str], output: Path) -> dict[str, Path]:
    """``comparison.md``, ``comparison.csv`` and ``comparison.png`` (one bar per row and metric) under ``output``."""
    from wsol_lightning.plots import comparison_figure, save_figure

    output.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": output / "comparison.md", "csv": output / "comparison.csv", "png": output / "comparison.png"}
    paths["markdown"].write_text(markdown_table(rows))
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)
    labels = [
        f"{r['name']} ({r['id']})" if "name" in r else f"{r['method']}-{r['backbone']}-{r['dataset']} x{r['runs']}"
        for r in rows
    ]
    values = np.array([[getattr(r[f"{m} (%)"], "mean", r[f"{m} (%)"]) if r[f"{m} (%)"] is not None else np.nan
                        for m in metrics] for r in rows], dtype=float)
    save_figure(comparison_figure(labels, [f"{m} (%)" for m in metrics], values), paths["png"])
    return paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsol compare",
        description="Compare finished runs: one row per run (or per configuration with --group), "
        "metrics in percent; writes comparison.md, comparison.csv and comparison.png.",
    )
    parser.add_argument("runs", nargs="*", help="run folders (searched recursively for summary.json)")
    parser.add_argument("--project", default=None, help="a W&B project (entity/project) instead of folders")
    parser.add_argument("--metrics", nargs="+", default=None,
                        help=f"metric names without the stage prefix (default: those of {', '.join(DEFAULT_METRICS)} "
                        "the runs logged)")
    parser.add_argument("--group", action="store_true",
                        help="one row per method, backbone, dataset and configuration: mean +- std over its runs")
    parser.add_argument("--output", default="reports/comparison", help="folder of the three files")
    return parser


def main(args: Sequence[str] | None = None) -> int:
    """``wsol compare`` entry point; a user error is one line on stderr and exit status 2."""
    parser = build_parser()
    options = parser.parse_args(args)
    try:
        if not options.runs and not options.project:
            raise UserError("give run folders or --project")
        runs = load_api_runs(options.project) if options.project else discover_runs(options.runs)
    except UserError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    metrics = choose_metrics(runs, options.metrics)
    rows = grouped_rows(runs, metrics) if options.group else run_rows(runs, metrics)
    paths = write_comparison(rows, metrics, Path(options.output))
    print(markdown_table(rows), end="")
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0
