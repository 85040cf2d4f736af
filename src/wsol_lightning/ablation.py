"""Ablation runs: train a configuration with the benchmark's runner, test it, tabulate the settings.

Shared by the notebooks (``notebooks/ablation_*.py``, ``notebooks/mri.py``). A setting is a method
config plus command-line overrides (``["--model.init_args.foreground_threshold", "0.6"]``); each
seed of it is trained and tested by :func:`wsol_lightning.benchmark.run`, i.e. exactly ``wsol fit``
then ``wsol test`` in a run folder, so an ablation row and a ``wsol benchmark`` row of the same
config and seed are the same number. Settings that change inference only (SPA's SCG modes, MCIS's
co-attention map) re-evaluate a trained checkpoint in this process (:func:`evaluate`): the val
split chooses the CAM threshold, then the test split is scored, as ``wsol test`` after ``fit`` does.

Metrics are in percent, named without the stage prefix (``maxboxacc_v2``, ``cls_top1``), as in
``benchmark.json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure

from wsol_lightning.benchmark import finished_run, run
from wsol_lightning.compare import percent
from wsol_lightning.data import WSOLDataModule
from wsol_lightning.models.base import WSOLModule
from wsol_lightning.plots import comparison_figure
from wsol_lightning.stats import Summary, summarize

#: Table columns of an ablation: metric -> column title (percent).
ABLATION_COLUMNS: dict[str, str] = {
    "maxboxacc_v2": "MaxBoxAccV2",
    "gt_known_loc_at_val_threshold": "GT-known Loc",
    "top1_loc_at_val_threshold": "Top-1 Loc",
    "cls_top1": "cls top-1",
    "part_peak_share": "peak on part",
    "gt_box_coverage": "GT box covered",
}


@dataclass
class AblationRun:
    """One trained and tested seed of a setting."""

    metrics: dict[str, float]  # test metrics in percent (no stage prefix)
    fit_seconds: float
    checkpoint: Path  # the run's last.ckpt (with the CAM threshold chosen on val)

    def load_model(self, **changes: object) -> WSOLModule:
        """The trained model in eval mode; ``changes`` override hyperparameters (inference settings)."""
        return load_model(self.checkpoint, **changes)


def load_model(checkpoint: str | Path, **changes: object) -> WSOLModule:
    """The :class:`WSOLModule` of a CLI checkpoint (its class from the checkpoint), in eval mode."""
    import importlib

    class_path = torch.load(checkpoint, map_location="cpu", weights_only=True)["hyper_parameters"]["_class_path"]
    module, name = class_path.rsplit(".", 1)
    model = getattr(importlib.import_module(module), name).load_from_checkpoint(checkpoint, map_location="cpu", **changes)
    return model.eval()


def train_and_test(
    config: str | Path, overrides: Sequence[str], folder: str | Path, seeds: Sequence[int] = (0,)
) -> list[AblationRun]:
    """Each seed of ``config`` + ``overrides`` trained and tested in ``folder/seed<k>``.

    A seed folder that finished with the same ``wsol fit`` command is reused, not retrained.

    Raises:
        RuntimeError: a run failed (the message gives the reason and its log file).
    """
    runs = []
    for seed in seeds:
        seed_folder = Path(folder) / f"seed{seed}"
        result = finished_run(Path(config), seed, seed_folder, overrides) or run(config, seed, seed_folder, overrides)
        if result.status != "ok":
            raise RuntimeError(f"{seed_folder}: {result.reason} (log: {result.log})")
        runs.append(AblationRun(result.metrics, result.fit_seconds, seed_folder / "checkpoints" / "last.ckpt"))
    return runs


def load_datamodule(config: str | Path, overrides: Sequence[str] = ()) -> WSOLDataModule:
    """The :class:`WSOLDataModule` the CLI builds from ``config`` + ``overrides`` (not set up)."""
    from wsol_lightning.cli import WSOLCLI

    cli = WSOLCLI(WSOLModule, WSOLDataModule, subclass_mode_model=True, run=False, save_config_callback=None,
                  args=["--config", str(config), *overrides, "--trainer.logger", "false"])
    return cli.datamodule


def evaluate(model: WSOLModule, datamodule: WSOLDataModule, accelerator: str = "auto") -> dict[str, float]:
    """Choose ``model``'s CAM threshold on val, then its test metrics (percent, no prefix).

    For inference-only settings of a trained model (e.g. ``load_model(checkpoint, scg_mode=...)``).
    """
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator=accelerator, devices=1)
    trainer.validate(model, datamodule=datamodule, verbose=False)
    (metrics,) = trainer.test(model, datamodule=datamodule, verbose=False)
    model.eval()
    return {k.removeprefix("test/"): percent(k.removeprefix("test/"), float(v))
            for k, v in metrics.items() if k.startswith("test/")}


def ablation_rows(
    settings: Mapping[str, Sequence[AblationRun]],
    columns: Mapping[str, str] = ABLATION_COLUMNS,
    label: str = "setting",
) -> list[dict[str, object]]:
    """One row per setting: ``{label: name, "n": seeds, title: Summary over seeds, ...}``.

    A cell is a :class:`~wsol_lightning.stats.Summary` (``mean``, ``std``, ``n``; ``None`` where no
    seed logged the metric); :func:`wsol_lightning.compare.markdown_table` shows it as
    ``mean ± std`` (one seed: the value).
    """
    rows: list[dict[str, object]] = []
    for name, runs in settings.items():
        row: dict[str, object] = {label: name, "n": len(runs)}
        for key, title in columns.items():
            values = [r.metrics[key] for r in runs if key in r.metrics and not math.isnan(r.metrics[key])]
            row[title] = summarize(values) if values else None
        rows.append(row)
    return rows


def row_means(row: Mapping[str, object], titles: Sequence[str]) -> list[float]:
    """The means of ``row``'s cells ``titles`` (NaN where empty)."""
    return [cell.mean if isinstance(cell, Summary) else math.nan for cell in (row[t] for t in titles)]


def ablation_figure(rows: Sequence[Mapping[str, object]], title: str, label: str = "setting") -> Figure:
    """Grouped bars of :func:`ablation_rows` (means over seeds): one group per metric, one bar per setting."""
    titles = [k for k in rows[0] if k not in (label, "n")]
    values = np.array([row_means(row, titles) for row in rows], dtype=float)
    figure = comparison_figure([str(row[label]) for row in rows], titles, values)
    figure.axes[0].set_title(title)
    return figure
