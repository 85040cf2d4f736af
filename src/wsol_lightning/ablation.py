"""Ablation runs: train one configuration briefly, choose its CAM threshold, test it; tabulate the runs.

Shared by the ablation notebooks (``notebooks/ablation_*.py``). One run is exactly the evaluation
the CLI does: ``fit`` for ``train_steps`` optimizer steps, ``validate`` once (the GT-known optimum
becomes the model's ``cam_threshold``, used at test by the ``*_at_val_threshold`` metrics and the
part-focus diagnostics, and by the CAM visualizer's box), then ``test``. Every run starts from the
same seed, so configurations whose parameters have the same shapes start from the same weights and
see the same batches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pytorch_lightning as pl
from matplotlib.figure import Figure

from wsol_lightning.data import WSOLDataModule
from wsol_lightning.models.base import WSOLModule
from wsol_lightning.plots import comparison_figure

#: Table columns of an ablation: logged test metric -> (column title, factor to percent).
ABLATION_COLUMNS: dict[str, tuple[str, float]] = {
    "test/maxboxacc_v2": ("MaxBoxAccV2", 1.0),
    "test/gt_known_loc": ("GT-known Loc", 1.0),
    "test/top1_loc": ("Top-1 Loc", 1.0),
    "test/cls_top1": ("cls top-1", 100.0),
    "test/part_peak_share": ("peak on part", 1.0),
    "test/gt_box_coverage": ("GT box covered", 1.0),
}


@dataclass
class AblationRun:
    """One trained and tested configuration."""

    model: WSOLModule  # trained, in eval mode, its ``cam_threshold`` chosen on validation
    metrics: dict[str, float]  # every ``test/*`` value the model logged
    fit_seconds: float


def fit_and_test(
    build_model: Callable[[], WSOLModule],
    datamodule: WSOLDataModule,
    train_steps: int,
    seed: int = 0,
    accelerator: str = "auto",
) -> AblationRun:
    """Seed, build the model, train ``train_steps`` steps, validate (CAM threshold), test.

    Args:
        build_model: returns the untrained model (called after seeding, so the init is seeded).
        datamodule: the data; its train split feeds ``fit``, val chooses the threshold, test scores.
        train_steps: optimizer steps (``>= 1``); epochs repeat the train split as needed.
        seed: ``pl.seed_everything`` seed of the run.
        accelerator: Lightning accelerator (``auto``: a GPU when there is one).
    """
    if train_steps < 1:
        raise ValueError(f"train_steps must be >= 1, got {train_steps}")
    pl.seed_everything(seed, verbose=False)
    model = build_model()
    trainer = pl.Trainer(
        max_steps=train_steps, max_epochs=-1, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        accelerator=accelerator, devices=1,
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    fit_seconds = time.perf_counter() - start
    return AblationRun(model, validate_and_test(model, datamodule, accelerator), fit_seconds)


def validate_and_test(
    model: WSOLModule, datamodule: WSOLDataModule, accelerator: str = "auto"
) -> dict[str, float]:
    """Choose ``model``'s CAM threshold on the val split, then return its ``test/*`` metrics.

    Also evaluates a trained model under other inference settings (e.g. SPA's SCG modes: a new
    model with the same weights, ``load_state_dict``). Leaves the model in eval mode.
    """
    evaluator = pl.Trainer(
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        accelerator=accelerator, devices=1,
    )
    evaluator.validate(model, datamodule=datamodule, verbose=False)
    (metrics,) = evaluator.test(model, datamodule=datamodule, verbose=False)
    model.eval()
    return {k: float(v) for k, v in metrics.items() if k.startswith("test/")}


def ablation_rows(
    runs: Mapping[str, AblationRun],
    columns: Mapping[str, tuple[str, float]] = ABLATION_COLUMNS,
    label: str = "setting",
) -> list[dict[str, object]]:
    """One row per run: ``{label: name, title: metric * factor, ...}`` (``NaN`` where not logged).

    The rows feed :func:`wsol_lightning.compare.markdown_table` and :func:`ablation_figure`.
    """
    rows: list[dict[str, object]] = []
    for name, run in runs.items():
        values = {title: run.metrics.get(key, math.nan) * factor for key, (title, factor) in columns.items()}
        rows.append({label: name, **values})
    return rows


def ablation_figure(rows: Sequence[Mapping[str, object]], title: str, label: str = "setting") -> Figure:
    """Grouped bars of :func:`ablation_rows`: one group per metric, one bar per setting."""
    metric_names = [k for k in rows[0] if k != label]
    values = np.array([[row[m] for m in metric_names] for row in rows], dtype=float)
    figure = comparison_figure([str(row[label]) for row in rows], metric_names, values)
    figure.axes[0].set_title(title)
    return figure
