"""``RunSummary``: every run leaves ``<trainer.default_root_dir>/summary.json`` with its identity and metrics.

The file is what ``wsol compare`` and ``wsol benchmark`` read (any logger, W&B or not)::

    {"run": {"id", "name", "created", "method", "backbone", "dataset", "seed"},
     "fit": {"finished", "steps", "seconds", "metrics": {"val/...": ...}},
     "validate" / "test" / "predict": {"finished", "metrics": {...}}}

A later command on the same folder (``wsol test`` after ``wsol fit``) adds its stage to the file and
keeps the run's id. Written by rank 0, atomically.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only

SUMMARY_NAME = "summary.json"


def read_summary(folder: str | Path) -> dict[str, Any]:
    """The summary of the run in ``folder`` (empty when there is none)."""
    path = Path(folder) / SUMMARY_NAME
    return json.loads(path.read_text()) if path.is_file() else {}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunSummary(pl.Callback):
    """Writes the run's ``summary.json`` at the end of every stage (module docstring)."""

    def __init__(self) -> None:
        self._started = time.monotonic()

    def _identity(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        datamodule = trainer.datamodule
        dataset = getattr(datamodule, "dataset", None)
        wandb = next((logger for logger in trainer.loggers if isinstance(logger, WandbLogger)), None)
        return {
            "name": getattr(wandb, "name", None) or Path(trainer.default_root_dir).name,
            "method": type(pl_module).__name__.lower(),
            "backbone": str(pl_module.hparams.get("backbone", "unknown")),
            "dataset": getattr(dataset, "name", "unknown"),
            "seed": int(os.environ.get("PL_GLOBAL_SEED", -1)),
            "wandb_id": getattr(wandb, "version", None) if wandb is not None else None,
        }

    @rank_zero_only
    def _write(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str, extra: dict[str, Any]) -> None:
        folder = Path(trainer.default_root_dir)
        summary = read_summary(folder)
        run = summary.setdefault("run", {"id": uuid.uuid4().hex[:8], "created": _now()})
        run.update(self._identity(trainer, pl_module))
        prefix = {"fit": "val/", "validate": "val/", "test": "test/"}.get(stage)
        metrics = {
            key: float(value)
            for key, value in sorted(trainer.callback_metrics.items())
            if prefix and key.startswith(prefix) and value.numel() == 1
        }
        summary[stage] = {"finished": _now(), "metrics": metrics, **extra}
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f"{SUMMARY_NAME}.tmp"
        temporary.write_text(json.dumps(summary, indent=1))
        os.replace(temporary, folder / SUMMARY_NAME)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started = time.monotonic()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seconds = round(time.monotonic() - self._started, 1)
        self._write(trainer, pl_module, "fit", {"steps": trainer.global_step, "seconds": seconds})

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "validate":
            self._write(trainer, pl_module, "validate", {})

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write(trainer, pl_module, "test", {})
