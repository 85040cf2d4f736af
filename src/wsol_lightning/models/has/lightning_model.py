"""HaS LightningModule: the CAM network trained on images with random grid patches hidden."""

from __future__ import annotations

from typing import Any

import torch

from wsol_lightning.models.cam import CAM
from wsol_lightning.models.components.augment import hide_patches, step_generator


class HaS(CAM):
    """Hide-and-Seek (Singh & Lee, ICCV 2017): hide random patches of the training image.

    Each training image is cut into ``grid_size``-pixel patches; each patch is replaced by ``fill``
    with probability ``hide_prob`` (§3.1), and the CAM network is trained with cross-entropy on the
    result (the multilabel soft margin with ``multilabel``). At evaluation nothing is hidden and the
    map is the plain CAM (the base's default).
    The draws come from a generator seeded from the global RNG at every step (reproducible under
    ``seed_everything``), offset by the DDP rank so ranks hide different patches.

    Args:
        grid_size: patch side ``S`` in pixels (wsolevaluation's ``has_grid_size``, default 4; the
            paper uses 16-56 px at 224). 0 disables hiding (then HaS is CAM).
        hide_prob: probability ``p`` that a patch is hidden (paper and wsolevaluation: 0.5).
        fill: value of hidden pixels in the normalized image, every channel. 0 = the dataset mean
            colour, which the paper prescribes so that the expected first-layer activation at
            training matches the evaluation's (§3.2).
        **kwargs: the shared options of :class:`~wsol_lightning.models.base.WSOLModule`.
    """

    def __init__(self, grid_size: int = 4, hide_prob: float = 0.5, fill: float = 0.0, **kwargs: Any) -> None:
        if grid_size < 0:
            raise ValueError(f"grid_size must be >= 0 (0 disables hiding), got {grid_size}")
        if not 0.0 <= hide_prob <= 1.0:
            raise ValueError(f"hide_prob must be in [0, 1], got {hide_prob}")
        super().__init__(**kwargs)

    def training_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        hp = self.hparams
        generator = step_generator(self.global_rank)
        images = hide_patches(batch["image"], hp.grid_size, hp.hide_prob, hp.fill, generator)
        return self.classification_loss(self.model(images).logits.float(), batch)
