"""Callbacks: CAM visualisation and the prediction writer."""

from wsol_lightning.callbacks.cam_visualizer import CAMVisualizer
from wsol_lightning.callbacks.prediction_writer import WSOLPredictionWriter

__all__ = ["CAMVisualizer", "WSOLPredictionWriter"]
