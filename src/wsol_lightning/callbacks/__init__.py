"""Callbacks: CAM visualisation, the prediction writer and the W&B comparison report."""

from wsol_lightning.callbacks.cam_visualizer import CAMVisualizer
from wsol_lightning.callbacks.prediction_writer import WSOLPredictionWriter
from wsol_lightning.callbacks.wandb_report import WandbConfigCallback, WandbReport

__all__ = ["CAMVisualizer", "WandbConfigCallback", "WandbReport", "WSOLPredictionWriter"]
