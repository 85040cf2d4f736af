"""``PlainProgress``: progress as plain lines, for logs, CI and batch jobs (the CLI uses it off a terminal).

A line every ``every_n_steps`` training steps (epoch, step, the running loss, steps per second) and
one per validation with its metrics, flushed at once, so ``tail -f`` on a job's log shows where the
run is. On a terminal the CLI shows Rich's progress bar instead.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.utilities import rank_zero_only

#: Metrics shown on a validation line (those logged).
SHOWN = ("cls_top1", "cls_exact_match", "maxboxacc_v2", "gt_known_loc", "top1_loc", "pxap")


class PlainProgress(pl.Callback):
    """Prints plain progress lines (see the module docstring).

    Args:
        every_n_steps: training steps between two lines.
    """

    def __init__(self, every_n_steps: int = 50) -> None:
        self.every_n_steps = every_n_steps
        self._started = time.monotonic()
        self._steps_at_start = 0

    @staticmethod
    def _print(line: str) -> None:
        print(line, file=sys.stdout, flush=True)

    @rank_zero_only
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._started, self._steps_at_start = time.monotonic(), trainer.global_step
        total = trainer.max_steps if trainer.max_steps > 0 else trainer.num_training_batches * (trainer.max_epochs or 1)
        self._print(f"fit: {type(pl_module).__name__}, {total} steps, root {trainer.default_root_dir}")

    @rank_zero_only
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if self.every_n_steps <= 0 or step % self.every_n_steps:
            return
        loss = trainer.callback_metrics.get("train/loss")
        rate = (step - self._steps_at_start) / max(time.monotonic() - self._started, 1e-9)
        shown = f" loss {float(loss):.4f}" if loss is not None else ""
        self._print(
            f"epoch {trainer.current_epoch} step {step} (batch {batch_idx + 1}/{trainer.num_training_batches})"
            f"{shown} {rate:.2f} steps/s"
        )

    @rank_zero_only
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        values = [f"{name} {float(metrics[f'val/{name}']):.4g}" for name in SHOWN if f"val/{name}" in metrics]
        self._print(f"epoch {trainer.current_epoch} step {trainer.global_step} val: " + ", ".join(values))

    @rank_zero_only
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        minutes = (time.monotonic() - self._started) / 60
        self._print(f"fit done: {trainer.global_step} steps in {minutes:.1f} min")
