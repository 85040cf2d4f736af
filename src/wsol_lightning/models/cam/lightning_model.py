"""CAM baseline LightningModule."""

from __future__ import annotations

from typing import Any

import torch

from wsol_lightning.data.batch import WSOLBatch
from wsol_lightning.models.base import WSOLModule
from wsol_lightning.models.cam.torch_model import CAMNet


class CAM(WSOLModule):
    """Class activation mapping (Zhou et al., CVPR 2016): cross-entropy only; the map is the CAM.

    With ``multilabel`` (e.g. an MRI dataset's ``multilabel``: head + tumour) the loss is the multilabel
    soft margin on the multi-hot targets instead (:meth:`WSOLModule.classification_loss`).

    Args:
        pretrained_classifier: start the classifier from the pretrained backbone's own ImageNet
            classifier (1000 classes; wsolevaluation keeps it for ILSVRC ResNet50, and it makes the
            untrained ImageNet CAM of ``experiments/imagenet_cam.yaml``).
        **kwargs: the shared options of :class:`~wsol_lightning.models.base.WSOLModule`.
    """

    supports_multilabel = True

    def __init__(self, pretrained_classifier: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)

    def build_model(self) -> CAMNet:
        return CAMNet(**self.network_options(CAMNet))

    def training_losses(self, batch: WSOLBatch) -> dict[str, torch.Tensor]:
        return self.classification_loss(self.model(batch.image).logits, batch)
