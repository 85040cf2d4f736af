"""HaS LightningModule: the CAM network trained on images with random grid patches hidden."""

from __future__ import annotations

from typing import Any

import torch

from wsol_lightning.data.batch import WSOLBatch
from wsol_lightning.models.cam import CAM
from wsol_lightning.models.components.augment import hide_patches, step_generator
from wsol_lightning.models.components.options import require
from wsol_lightning.models.search_space import LR, Param, unit


class HaS(CAM):
    """Hide-and-Seek (Singh & Lee, ICCV 2017): hide random patches of the training image.

    Each training image is cut into ``grid_size``-pixel patches; each patch is replaced by ``fill``
    with probability ``apply_prob`` (§3.1), and the CAM network is trained with cross-entropy on the
    result (the multilabel soft margin with ``multilabel``). At evaluation nothing is hidden and the
    map is the plain CAM (the base's default).
    The draws come from a generator seeded from the global RNG at every step (reproducible under
    ``seed_everything``), offset by the DDP rank so ranks hide different patches.

    Args:
        grid_size: patch side ``S`` in pixels (wsolevaluation's ``has_grid_size``, default 4; the
            paper uses 16-56 px at 224). 0 disables hiding (then HaS is CAM).
        apply_prob: the hide probability ``p`` that a patch is hidden (paper and wsolevaluation: 0.5).
        fill: value of hidden pixels in the backbone's normalized input, every channel. 0 = the
            backbone's mean colour, which the paper prescribes so that the expected first-layer
            activation at training matches the evaluation's (§3.2).
        **kwargs: the shared options of :class:`~wsol_lightning.models.base.WSOLModule`.
    """

    SEARCH_SPACE = (LR, Param("grid_size", "categorical", choices=(8, 16, 32, 48, 64), note="patch side in px"),
                    unit("apply_prob", "hide probability (wsolevaluation: U[0, 1])"))

    def __init__(self, grid_size: int = 4, apply_prob: float = 0.5, fill: float = 0.0, **kwargs: Any) -> None:
        require(grid_size >= 0, "grid_size", ">= 0 (0 disables hiding)", grid_size)
        require(0.0 <= apply_prob <= 1.0, "apply_prob", "in [0, 1]", apply_prob)
        super().__init__(**kwargs)

    def training_losses(self, batch: WSOLBatch) -> dict[str, torch.Tensor]:
        hp = self.hparams
        backbone = self.model.backbone
        fill = torch.tensor(backbone.mean) + hp.fill * torch.tensor(backbone.std)  # in the [0, 1] input
        images = hide_patches(batch.image, hp.grid_size, hp.apply_prob, fill, step_generator(self.global_rank))
        return self.classification_loss(self.model(images).logits.float(), batch)
