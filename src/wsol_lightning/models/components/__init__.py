"""Building blocks shared by every method: backbones, heads, the network contract."""

from wsol_lightning.models.components.backbones import (
    BACKBONES,
    Backbone,
    PretrainedWeightsNotFoundError,
    as_backbone,
    build_backbone,
)
from wsol_lightning.models.components.heads import (
    CAMClassifier,
    build_cam_neck,
    gather_class_maps,
    global_average,
)
from wsol_lightning.models.components.label_loss import LabelLoss, label_loss
from wsol_lightning.models.components.network import (
    ClassMapNetwork,
    LocalizationNetwork,
    LocalizationOutput,
    top1_classes,
)

__all__ = [
    "BACKBONES",
    "Backbone",
    "CAMClassifier",
    "ClassMapNetwork",
    "LabelLoss",
    "LocalizationNetwork",
    "LocalizationOutput",
    "PretrainedWeightsNotFoundError",
    "as_backbone",
    "build_backbone",
    "build_cam_neck",
    "gather_class_maps",
    "global_average",
    "label_loss",
    "top1_classes",
]
