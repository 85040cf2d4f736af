"""Callbacks: checkpoints that survive interrupts, plain progress, the run summary, CAM pictures, W&B."""

from wsol_lightning.callbacks.cam_visualizer import CAMVisualizer
from wsol_lightning.callbacks.checkpoint import ResumableCheckpoint
from wsol_lightning.callbacks.prediction_writer import WSOLPredictionWriter
from wsol_lightning.callbacks.progress import PlainProgress
from wsol_lightning.callbacks.run_summary import RunSummary
from wsol_lightning.callbacks.wandb_report import WandbConfigCallback, WandbReport

__all__ = [
    "CAMVisualizer",
    "PlainProgress",
    "ResumableCheckpoint",
    "RunSummary",
    "WSOLPredictionWriter",
    "WandbConfigCallback",
    "WandbReport",
]
