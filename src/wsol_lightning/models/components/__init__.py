"""Building blocks shared by every method: backbones, heads, CAM utilities."""

from wsol_lightning.models.components.backbones import (
    BACKBONES,
    Backbone,
    PretrainedWeightsNotFoundError,
    build_backbone,
)
from wsol_lightning.models.components.heads import CAMClassifier, build_cam_neck, gather_class_maps, global_average
from wsol_lightning.models.components.label_loss import LabelLoss, label_loss

__all__ = [
    "BACKBONES",
    "Backbone",
    "CAMClassifier",
    "LabelLoss",
    "PretrainedWeightsNotFoundError",
    "build_backbone",
    "build_cam_neck",
    "gather_class_maps",
    "global_average",
    "label_loss",
]
