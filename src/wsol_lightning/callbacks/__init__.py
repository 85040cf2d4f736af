"""Callbacks: CAM visualisation."""

from wsol_lightning.callbacks.cam_visualizer import CAMVisualizer

__all__ = ["CAMVisualizer"]
