"""``ResumableCheckpoint``: a ``last.ckpt`` that survives Ctrl-C, kills and crashes, written atomically.

``last.ckpt`` (under ``<trainer.default_root_dir>/checkpoints`` unless ``dirpath`` says otherwise) is
written at the end of every training epoch and every ``every_n_train_steps`` steps, each time to a
temporary file renamed over the previous one, so a kill during the write leaves the previous
checkpoint usable. ``--ckpt_path last`` resumes from it with the optimizer, scheduler, model buffers
(the I2C centroid bank, the validation CAM threshold), the random states and the position in the
training order (:meth:`wsol_lightning.data.WSOLDataModule.state_dict`), so the resumed fit ends where
an uninterrupted one would.

Ctrl-C (SIGINT) during ``fit`` stops at the end of the running step: the checkpoint is written and
the command exits with status 130. A second Ctrl-C interrupts at once.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

#: Steps between two ``last.ckpt`` writes: about a minute of CPU training at the synthetic configs.
DEFAULT_EVERY_N_TRAIN_STEPS = 100


class ResumableCheckpoint(ModelCheckpoint):
    """``last.ckpt`` at every epoch end and every ``every_n_train_steps`` steps, atomically (module docstring).

    Args:
        dirpath: folder of ``last.ckpt`` (default: ``<trainer.default_root_dir>/checkpoints``).
        every_n_train_steps: steps between two writes (0: epoch ends only).
        kwargs: further ``ModelCheckpoint`` options (e.g. ``monitor`` and ``save_top_k`` to keep the
            best checkpoints as well).
    """

    def __init__(
        self, dirpath: str | None = None, every_n_train_steps: int = DEFAULT_EVERY_N_TRAIN_STEPS, **kwargs: Any
    ) -> None:
        kwargs.setdefault("save_top_k", 0)
        super().__init__(
            dirpath=dirpath, save_last=True, every_n_train_steps=every_n_train_steps or None, **kwargs
        )
        self.interrupted = False
        self._previous_handler: Any = None

    # -- where -----------------------------------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = str(Path(trainer.default_root_dir) / "checkpoints")
        super().setup(trainer, pl_module, stage)

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        """Write to a temporary file, then rename it over ``filepath`` (atomic on one file system)."""
        temporary = f"{filepath}.tmp"
        super()._save_checkpoint(trainer, temporary)
        if trainer.is_global_zero:
            os.replace(temporary, filepath)
        trainer.strategy.barrier("resumable_checkpoint")
        self._last_global_step_saved = trainer.global_step

    # -- when ------------------------------------------------------------------------------
    def _save_last_now(self, trainer: pl.Trainer) -> None:
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Runs after the epoch's validation, so the checkpoint also holds the threshold it chose."""
        super().on_train_epoch_end(trainer, pl_module)
        if not self._should_skip_saving_checkpoint(trainer):
            self._save_last_now(trainer)

    # -- Ctrl-C ------------------------------------------------------------------------------
    def _on_interrupt(self, signum: int, frame: FrameType | None) -> None:
        self.interrupted = True
        signal.signal(signal.SIGINT, self._previous_handler or signal.default_int_handler)
        print("\nInterrupted: saving last.ckpt at the end of this step (Ctrl-C again to stop at once)", flush=True)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.interrupted = False
        try:
            self._previous_handler = signal.signal(signal.SIGINT, self._on_interrupt)
        except ValueError:  # not the main thread (e.g. a notebook worker): keep the default behaviour
            self._previous_handler = None

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        interrupted = self.interrupted
        if trainer.world_size > 1:
            interrupted = trainer.strategy.reduce_boolean_decision(interrupted, all=False)
        if interrupted:
            self.interrupted = True
            if self._last_global_step_saved != trainer.global_step:
                self._save_last_now(trainer)
            trainer.should_stop = True

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._previous_handler is not None and signal.getsignal(signal.SIGINT) == self._on_interrupt:
            signal.signal(signal.SIGINT, self._previous_handler)
