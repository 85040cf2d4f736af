"""CutMix LightningModule: the CAM network trained on CutMix batches."""

from __future__ import annotations

from typing import Any

import torch

from wsol_lightning.data.batch import WSOLBatch
from wsol_lightning.models.cam import CAM
from wsol_lightning.models.components.augment import cutmix, step_generator
from wsol_lightning.models.components.options import require
from wsol_lightning.models.cutmix.loss import cutmix_cross_entropy
from wsol_lightning.models.search_space import LR, unit


class CutMix(CAM):
    """CutMix (Yun et al., ICCV 2019): paste a partner's box, mix the labels by area.

    With probability ``apply_prob`` per training batch a box of a permuted partner image is pasted into
    every image and the loss is ``lam CE(y_a) + (1 - lam) CE(y_b)`` with ``lam`` the unpasted
    share of the image (Eq. 1; :func:`~wsol_lightning.models.components.augment.cutmix`);
    otherwise plain cross-entropy. GT boxes are untouched (the loss is image-level). Evaluation:
    no mixing, the map is the plain CAM. The draws come from a generator seeded from the global RNG
    at every step, offset by the DDP rank.

    Args:
        beta: ``lam ~ Beta(beta, beta)`` (paper and wsolevaluation: 1.0); 0 disables CutMix.
        apply_prob: probability that a batch is mixed (wsolevaluation's ``cutmix_prob``, default 1.0).
        **kwargs: the shared options of :class:`~wsol_lightning.models.base.WSOLModule`.
    """

    supports_multilabel = False  # the mixed loss is a softmax CE of two single labels

    SEARCH_SPACE = (LR, unit("apply_prob", "mix probability (wsolevaluation: U[0, 1])"),
                    unit("beta", "Beta(beta, beta) size prior (wsolevaluation: U[0, 2])", high=2.0))

    def __init__(self, beta: float = 1.0, apply_prob: float = 1.0, **kwargs: Any) -> None:
        require(beta >= 0, "beta", ">= 0 (0 disables CutMix)", beta)
        require(0.0 <= apply_prob <= 1.0, "apply_prob", "in [0, 1]", apply_prob)
        super().__init__(**kwargs)

    def training_losses(self, batch: WSOLBatch) -> dict[str, torch.Tensor]:
        hp = self.hparams
        mixed = cutmix(batch.image, batch.label, hp.beta, hp.apply_prob, step_generator(self.global_rank))
        logits = self.model(mixed.images).logits
        return {"ce": cutmix_cross_entropy(logits, mixed.labels_a, mixed.labels_b, mixed.lam)}
