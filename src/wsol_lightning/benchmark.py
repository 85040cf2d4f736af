"""``wsol benchmark``: every method against CAM over seeds, one command, numbers with their spread.

::

    wsol benchmark --methods cam acol adl --seeds 0 1 2 --output reports/synthetic
    wsol benchmark --methods cam adl --seeds 0 1 --output OUT -- --trainer.max_steps 5   # overrides for every run

Each ``(method, seed)`` is a run folder ``OUTPUT/runs/<method>/seed<k>`` trained by exactly
``wsol fit --config <configs>/<method>.yaml --seed_everything k ...`` and tested from its
``last.ckpt`` by ``wsol test`` (same data, budget and backbone for every seed: only the seed
differs). A run's result (its ``summary.json`` test metrics, fit time, or the reason it failed) is
stored in ``result.json`` when the run ends, so an interrupted benchmark resumes from the runs
already finished; failed and interrupted runs are trained again from an empty folder. The rest goes
on when a run fails; the failures are listed in the report and the exit status is 1.

Reported metrics are test metrics. Top-1 and GT-known Loc are those at the CAM threshold chosen on
val (the classic protocol); MaxBoxAccV2 is threshold-free by definition (its best threshold per IoU);
nothing else is chosen on test. Per method and metric the report gives mean, standard deviation
and n, and the paired difference to the reference method (CAM) over the seeds both have, with a 95%
Student-t interval; a method is called better / worse only when that interval excludes 0
(:mod:`wsol_lightning.stats`).

Writes ``benchmark.md`` (tables), ``benchmark.csv`` (one row per method and metric),
``benchmark.json`` (every run and every summary) and ``benchmark.png`` (per metric: each method's
seeds as points, its mean with the 95% interval, the reference's interval as a band). With a
``WandbLogger`` in the configs, every run is logged to W&B in one group (``--group``, default
``benchmark-<output folder name>``), offline when no credentials exist.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wsol_lightning.callbacks.run_summary import read_summary
from wsol_lightning.compare import percent
from wsol_lightning.errors import UserError
from wsol_lightning.stats import Summary, paired_difference, summarize

RESULT_NAME = "result.json"
REFERENCE = "cam"


@dataclass(frozen=True)
class Metric:
    """A reported metric: its summary key (without ``test/``), title and direction."""

    key: str
    title: str
    higher_is_better: bool | None = True  # None: a diagnostic or a cost, no better/worse verdict
    main: bool = True  # in the markdown tables and the plot (all metrics go to the CSV and JSON)


#: The metrics of the report, in order (percent; ``fit_minutes`` in minutes).
METRICS: tuple[Metric, ...] = (
    Metric("maxboxacc_v2", "MaxBoxAccV2"),
    Metric("maxboxacc_iou30", "MaxBoxAcc IoU30", main=False),
    Metric("maxboxacc_iou50", "MaxBoxAcc IoU50", main=False),
    Metric("maxboxacc_iou70", "MaxBoxAcc IoU70", main=False),
    Metric("gt_known_loc_at_val_threshold", "GT-known Loc"),
    Metric("top1_loc_at_val_threshold", "Top-1 Loc"),
    Metric("pxap", "PxAP"),
    Metric("cls_top1", "cls top-1"),
    Metric("part_peak_share", "peak on part", higher_is_better=None),
    Metric("gt_box_coverage", "GT box covered", higher_is_better=None),
    Metric("gt_known_loc", "GT-known Loc (test-optimal threshold)", main=False),
    Metric("top1_loc", "Top-1 Loc (test-optimal threshold)", main=False),
    Metric("fit_minutes", "fit (min)", higher_is_better=None),
)
CAPTION = (
    "Test split; Top-1 and GT-known Loc at the CAM threshold chosen on val; MaxBoxAccV2 is the mean over "
    "IoU 30/50/70 of the best box accuracy over thresholds (Choe et al., CVPR 2020). Cells: mean ± sample "
    "standard deviation over seeds ((n=k): a cell on fewer seeds than its row, a metric some run lacks). "
    "Δ: paired difference to {reference} over the same seeds (same data, data order and initialization of "
    "the shared parts), mean [95% interval, Student t with n-1 degrees of freedom]; "
    "▲/▼ mark an interval that excludes 0 (better/worse), = one that does not."
)


@dataclass
class RunResult:
    """One benchmark run: what ran, and its test metrics (percent) or why it failed."""

    method: str
    seed: int
    status: str  # "ok" or "failed"
    command: list[str]
    folder: str
    metrics: dict[str, float] = field(default_factory=dict)
    fit_seconds: float = math.nan
    steps: int = 0
    wall_seconds: float = 0.0  # fit and test, process start to end
    reason: str = ""
    log: str = ""

    def save(self) -> None:
        path = Path(self.folder) / RESULT_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(asdict(self), indent=1))
        os.replace(temporary, path)


def load_result(folder: Path) -> RunResult | None:
    """The stored result of a run folder (``None``: the run has not ended)."""
    path = folder / RESULT_NAME
    if not path.is_file():
        return None
    return RunResult(**json.loads(path.read_text()))


def finished_run(
    config: Path, seed: int, folder: Path, overrides: Sequence[str] = (), group: str | None = None, name: str | None = None
) -> RunResult | None:
    """The stored result of ``folder`` when it finished ok with the same ``wsol fit`` command, else None."""
    stored = load_result(folder)
    if stored is not None and stored.status == "ok" and stored.command == run_commands(
            config, seed, folder, overrides, group, name)[0]:
        return stored
    return None


def config_uses_wandb(config: Path) -> bool:
    """Whether the config's ``trainer.logger`` is a ``WandbLogger``."""
    logger = ((yaml.safe_load(config.read_text()) or {}).get("trainer") or {}).get("logger")
    loggers = logger if isinstance(logger, list) else [logger]
    return any(isinstance(item, dict) and str(item.get("class_path", "")).endswith("WandbLogger") for item in loggers)


def run_commands(
    config: Path, seed: int, folder: Path, overrides: Sequence[str] = (), group: str | None = None, name: str | None = None
) -> tuple[list[str], list[str]]:
    """The ``wsol fit`` and ``wsol test`` argument lists of one run (without the program)."""
    common = ["--config", str(config), "--seed_everything", str(seed), "--trainer.default_root_dir", str(folder)]
    if group and config_uses_wandb(config) and not any(o.startswith("--trainer.logger") for o in overrides):
        common += ["--trainer.logger.init_args.group", group, "--trainer.logger.init_args.name", name or folder.name]
    fit = ["fit", *common, *overrides]
    test = ["test", *common, *overrides, "--ckpt_path", str(folder / "checkpoints" / "last.ckpt")]
    return fit, test


def failure_reason(log: Path, returncode: int, stage: str) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    last = next((line for line in reversed(lines) if not line.startswith(("warnings.warn", "  "))), "")
    return f"{stage} exited with status {returncode}: {last[:300]}" if last else f"{stage} exited with status {returncode}"


def run(
    config: str | Path,
    seed: int,
    folder: str | Path,
    overrides: Sequence[str] = (),
    group: str | None = None,
    name: str | None = None,
    method: str | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> RunResult:
    """Train ``config`` at ``seed`` into ``folder`` with ``wsol fit``, test its ``last.ckpt`` with ``wsol test``.

    The two commands run as subprocesses of this interpreter (``python -m wsol_lightning``), their
    output in ``folder/fit.log`` and ``folder/test.log``; the result is stored in
    ``folder/result.json``. This is the one runner of the benchmark and the ablation notebooks.
    The run starts from an empty ``folder``: what an earlier attempt left there is removed first
    (beside a stale ``last.ckpt`` Lightning would write ``last-v1.ckpt``, and the test would read
    the stale one).

    Args:
        config: the run's config (e.g. ``experiments/acol.yaml``).
        seed: ``seed_everything`` of both commands.
        folder: the run folder (``trainer.default_root_dir``).
        overrides: more command-line arguments for both commands (``--trainer.max_steps 5``, ...).
        group, name: W&B group and run name, when the config logs to W&B and ``overrides`` leave the
            logger alone.
        method: the result's method name (default: the config's file name).
        on_stage: called with ``"fit"`` and ``"test"`` as each starts (progress display).
    """
    config, folder = Path(config), Path(folder)
    fit, test = run_commands(config, seed, folder, overrides, group, name)
    result = RunResult(method=method or config.stem, seed=seed, status="failed", command=fit, folder=str(folder))
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    start = time.monotonic()
    for stage, args in (("fit", fit), ("test", test)):
        if on_stage is not None:
            on_stage(stage)
        log = folder / f"{stage}.log"
        with log.open("w") as handle:
            returncode = subprocess.call([sys.executable, "-m", "wsol_lightning", *args], stdout=handle,
                                         stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        result.wall_seconds = time.monotonic() - start
        if returncode != 0:
            if returncode in (130, -2):
                raise KeyboardInterrupt
            result.reason, result.log = failure_reason(log, returncode, stage), str(log)
            result.save()
            return result
    summary = read_summary(folder)
    metrics = {key.removeprefix("test/"): percent(key.removeprefix("test/"), value)
               for key, value in summary.get("test", {}).get("metrics", {}).items()}
    fit_stage = summary.get("fit", {})
    result.fit_seconds = float(fit_stage.get("seconds", math.nan))
    result.steps = int(fit_stage.get("steps", 0))
    result.metrics = {**metrics, "fit_minutes": result.fit_seconds / 60}
    if not metrics:
        result.reason = f"test wrote no metrics to {folder / 'summary.json'}"
    else:
        result.status = "ok"
    result.save()
    return result


# -- statistics -------------------------------------------------------------------------------
@dataclass
class MethodRow:
    """One method's summaries per metric and paired differences to the reference."""

    method: str
    seeds: list[int]
    summaries: dict[str, Summary]
    differences: dict[str, Summary | None]


def aggregate(results: Iterable[RunResult], reference: str = REFERENCE) -> list[MethodRow]:
    """Per method (in first-seen order): :func:`~wsol_lightning.stats.summarize` of each metric over
    its finished seeds and :func:`~wsol_lightning.stats.paired_difference` to ``reference``."""
    by_method: dict[str, dict[int, dict[str, float]]] = {}
    for result in results:
        if result.status == "ok":
            by_method.setdefault(result.method, {})[result.seed] = result.metrics
    base = by_method.get(reference, {})
    rows = []
    for method, seeds in by_method.items():
        summaries, differences = {}, {}
        for metric in METRICS:
            values = {s: m[metric.key] for s, m in seeds.items() if metric.key in m and not math.isnan(m[metric.key])}
            if not values:
                continue
            summaries[metric.key] = summarize(list(values.values()))
            base_values = {s: m[metric.key] for s, m in base.items() if metric.key in m}
            differences[metric.key] = None if method == reference else paired_difference(values, base_values)
        rows.append(MethodRow(method, sorted(seeds), summaries, differences))
    return rows


def verdict(metric: Metric, difference: Summary | None) -> str:
    """``better``/``worse``/``no difference`` (``higher``/``lower`` for metrics without a direction)."""
    if difference is None or not difference.excludes_zero:
        return "no difference" if difference is not None and difference.n >= 2 else ""
    if metric.higher_is_better is None:
        return "higher" if difference.mean > 0 else "lower"
    return "better" if (difference.mean > 0) == metric.higher_is_better else "worse"


MARKS = {"better": "▲", "worse": "▼", "no difference": "=", "higher": "↑", "lower": "↓", "": ""}


# -- report -----------------------------------------------------------------------------------
def _fewer(summary: Summary, runs: int) -> str:
    """`` (n=k)`` when a cell rests on fewer seeds than its row's runs (a metric some run lacks)."""
    return f" (n={summary.n})" if summary.n < runs else ""


def _mean_std(summary: Summary | None, runs: int) -> str:
    if summary is None:
        return "-"
    if summary.n < 2:
        return f"{summary.mean:.2f} (one run)"
    return f"{summary.mean:.2f} ± {summary.std:.2f}{_fewer(summary, runs)}"


def _difference(metric: Metric, difference: Summary | None, pairs: int) -> str:
    if difference is None:
        return "-"
    if difference.n < 2:
        return f"{difference.mean:+.2f} (one pair)"
    return (f"{difference.mean:+.2f} [{difference.low:+.2f}, {difference.high:+.2f}] {MARKS[verdict(metric, difference)]}"
            f"{_fewer(difference, pairs)}")


def markdown_report(rows: Sequence[MethodRow], failed: Sequence[RunResult], reference: str, header: str) -> str:
    """``benchmark.md``: means ± std, paired differences to ``reference``, the failures."""
    main = [m for m in METRICS if m.main]
    lines = [header, "", CAPTION.format(reference=reference.upper()), ""]
    lines += ["| method | n | " + " | ".join(m.title for m in main) + " |", "|---|---|" + "---|" * len(main)]
    for row in rows:
        cells = [_mean_std(row.summaries.get(m.key), len(row.seeds)) for m in main]
        lines.append(f"| {row.method} | {len(row.seeds)} | " + " | ".join(cells) + " |")
    compared = [m for m in main if m.key != "fit_minutes"]
    others = [row for row in rows if row.method != reference]
    reference_seeds = next((set(row.seeds) for row in rows if row.method == reference), set())
    if others and any(row.method == reference for row in rows):
        lines += ["", f"Δ to {reference.upper()} (paired over seeds, mean [95% interval]):", ""]
        lines += ["| method | " + " | ".join(m.title for m in compared) + " |", "|---|" + "---|" * len(compared)]
        for row in others:
            pairs = len(reference_seeds & set(row.seeds))
            lines.append(f"| {row.method} | " + " | ".join(_difference(m, row.differences.get(m.key), pairs)
                                                            for m in compared) + " |")
    if failed:
        lines += ["", f"Failed runs ({len(failed)}):", ""]
        lines += [f"- {r.method} seed {r.seed}: {r.reason} (log: {r.log})" for r in failed]
    return "\n".join(lines) + "\n"


def csv_rows(rows: Sequence[MethodRow]) -> list[dict[str, Any]]:
    """One row per method and metric: n, mean, std, interval, paired difference and verdict."""
    table = []
    for row in rows:
        for metric in METRICS:
            summary = row.summaries.get(metric.key)
            if summary is None:
                continue
            difference = row.differences.get(metric.key)
            table.append({
                "method": row.method, "metric": metric.key, "n": summary.n, "mean": summary.mean, "std": summary.std,
                "low": summary.low, "high": summary.high,
                "diff_mean": difference.mean if difference else "", "diff_low": difference.low if difference else "",
                "diff_high": difference.high if difference else "", "diff_n": difference.n if difference else "",
                "verdict": verdict(metric, difference),
            })
    return table


def benchmark_figure(rows: Sequence[MethodRow], results: Sequence[RunResult], reference: str):
    """Per main metric: each method's seeds as points, its mean with the 95% interval, the reference's band."""
    import numpy as np
    from matplotlib.figure import Figure

    metrics = [m for m in METRICS if m.main]
    columns = 3
    figure = Figure(figsize=(4.2 * columns, 3.2 * math.ceil(len(metrics) / columns)))
    axes_grid = figure.subplots(math.ceil(len(metrics) / columns), columns, squeeze=False)
    names = [row.method for row in rows]
    for axes, metric in zip(axes_grid.flat, metrics):
        for x, row in enumerate(rows):
            points = [r.metrics[metric.key] for r in results
                      if r.status == "ok" and r.method == row.method and metric.key in r.metrics]
            axes.plot(x + np.linspace(-0.12, 0.12, len(points)), points, ".", color="0.6", markersize=5)
            summary = row.summaries.get(metric.key)
            if summary is None:
                continue
            low, high = (summary.low, summary.high) if summary.n > 1 else (summary.mean, summary.mean)
            axes.errorbar([x], [summary.mean], yerr=[[summary.mean - low], [high - summary.mean]], fmt="o",
                          color="C3" if row.method == reference else "C0", capsize=3)
            if row.method == reference and summary.n > 1:
                axes.axhspan(summary.low, summary.high, color="C3", alpha=0.12, label=f"{reference} 95% interval")
        axes.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        axes.set_title(metric.title, fontsize=9)
        axes.grid(alpha=0.3, axis="y")
    for axes in list(axes_grid.flat)[len(metrics):]:
        axes.set_visible(False)
    figure.tight_layout()
    return figure


def write_report(results: Sequence[RunResult], output: Path, reference: str = REFERENCE,
                 header: str = "# Benchmark") -> dict[str, Path]:
    """The four report files under ``output``; returns their paths."""
    from wsol_lightning.plots import save_figure

    rows = aggregate(results, reference)
    failed = [r for r in results if r.status != "ok"]
    output.mkdir(parents=True, exist_ok=True)
    paths = {k: output / f"benchmark.{k}" for k in ("md", "csv", "json", "png")}
    paths["md"].write_text(markdown_report(rows, failed, reference, header))
    table = csv_rows(rows)
    with paths["csv"].open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table[0]) if table else ["method", "metric"])
        writer.writeheader()
        writer.writerows(table)
    paths["json"].write_text(json.dumps({
        "reference": reference,
        "caption": CAPTION.format(reference=reference.upper()),
        "summaries": table,
        "runs": [asdict(r) for r in results],
    }, indent=1, default=float))
    save_figure(benchmark_figure(rows, results, reference), paths["png"])
    return paths


# -- command ----------------------------------------------------------------------------------
class _Progress:
    """A Rich progress bar over the runs on a terminal, plain lines otherwise."""

    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0
        self.rich = None
        if sys.stdout.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.rich = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn())
            self.task = self.rich.add_task("benchmark", total=total)
            self.rich.start()

    def stage(self, label: str, stage: str) -> None:
        if self.rich is not None:
            self.rich.update(self.task, description=f"{label}: {stage}")

    def finished(self, label: str, text: str) -> None:
        self.done += 1
        if self.rich is not None:
            self.rich.console.print(f"{label}: {text}")
            self.rich.update(self.task, advance=1)
        else:
            print(f"[{self.done}/{self.total}] {label}: {text}", flush=True)

    def stop(self) -> None:
        if self.rich is not None:
            self.rich.stop()


def run_benchmark(
    methods: Sequence[str],
    seeds: Sequence[int],
    output: Path,
    overrides: Sequence[str] = (),
    configs: Path = Path("experiments"),
    group: str | None = None,
) -> list[RunResult]:
    """Run (or reuse) every ``(method, seed)``; returns the results in method-major order."""
    missing = [m for m in methods if not (configs / f"{m}.yaml").is_file()]
    if missing:
        known = sorted(p.stem for p in configs.glob("*.yaml")) if configs.is_dir() else []
        raise UserError(f"--methods {' '.join(missing)}: no {configs}/<method>.yaml for it (found: {', '.join(known)})")
    group = group or f"benchmark-{output.resolve().name}"
    progress = _Progress(len(methods) * len(seeds))
    results = []
    try:
        for method in methods:
            for seed in seeds:
                folder = output / "runs" / method / f"seed{seed}"
                label = f"{method} seed {seed}"
                config = configs / f"{method}.yaml"
                stored = finished_run(config, seed, folder, overrides, group, f"{method}-seed{seed}")
                if stored is not None:
                    results.append(stored)
                    progress.finished(label, "finished earlier, reused")
                    continue
                start = time.monotonic()
                result = run(config, seed, folder, overrides, group, f"{method}-seed{seed}", method,
                             on_stage=lambda stage, label=label: progress.stage(label, stage))
                results.append(result)
                minutes = (time.monotonic() - start) / 60
                progress.finished(label, f"ok in {minutes:.1f} min" if result.status == "ok" else f"FAILED: {result.reason}")
    finally:
        progress.stop()
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsol benchmark",
        description="Train and test each method's experiments/<method>.yaml at each seed, then tabulate mean, std "
        "and the paired difference to CAM with a 95%% t interval (benchmark.md/.csv/.json/.png). Arguments after "
        "`--` are added to every run's fit and test command.",
    )
    parser.add_argument("--methods", nargs="+", required=True, help="method config names (experiments/<name>.yaml)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="seeds (default: 0 1 2)")
    parser.add_argument("--output", required=True, help="report folder; runs go to OUTPUT/runs/<method>/seed<k>")
    parser.add_argument("--configs", default="experiments", help="folder of the <method>.yaml configs")
    parser.add_argument("--reference", default=REFERENCE, help="method the others are compared with (default: cam)")
    parser.add_argument("--group", default=None, help="W&B group of the runs (default: benchmark-<output name>)")
    return parser


def main(args: Sequence[str] | None = None) -> int:
    """``wsol benchmark`` entry point: 0 when every run finished, 1 when some failed, 2 on a user error."""
    from wsol_lightning.cli import INTERRUPTED_STATUS, configure_wandb_mode

    argv = list(sys.argv[1:] if args is None else args)
    overrides = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = build_parser()
    options = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    configure_wandb_mode()
    output = Path(options.output)
    try:
        if options.reference not in options.methods:
            print(f"{parser.prog}: note: --reference {options.reference} is not among --methods; "
                  "no paired differences", file=sys.stderr)
        results = run_benchmark(options.methods, options.seeds, output, overrides, Path(options.configs),
                                options.group)
    except UserError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; run the same command again to resume", file=sys.stderr)
        return INTERRUPTED_STATUS
    command = " ".join(["wsol benchmark", *(argv if argv else [])])
    hours = sum(r.wall_seconds for r in results) / 3600
    header = (f"# Benchmark\n\n`{command}`\n\n{len(options.methods)} methods x {len(options.seeds)} seeds; the runs "
              f"took {hours:.2f} h of wall time (fit and test, one after another).")
    paths = write_report(results, output, options.reference, header)
    print(paths["md"].read_text(), end="")
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0 if all(r.status == "ok" for r in results) else 1
