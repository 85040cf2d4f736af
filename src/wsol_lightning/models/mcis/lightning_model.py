"""MCIS LightningModule: single + co-attention + contrastive co-attention losses on image pairs."""

from __future__ import annotations

from typing import Any, Literal

import torch

from wsol_lightning.data.batch import WSOLBatch
from wsol_lightning.errors import ConfigError
from wsol_lightning.models.base import WSOLModule
from wsol_lightning.models.components import LabelLoss, label_loss
from wsol_lightning.models.components.options import require, require_choice
from wsol_lightning.models.mcis.loss import pair_targets
from wsol_lightning.models.mcis.torch_model import MCISNet
from wsol_lightning.models.search_space import LR, weight


class MCIS(WSOLModule):
    """Mining cross-image semantics (Sun et al., ECCV 2020) for localization.

    Training batches hold pairs at positions ``(2k, 2k + 1)`` (``data.pair_sampling: true``; use
    ``data.different_class_pairs`` > 0 to feed the contrastive branch, which in single-label data
    only has unique labels on different-class pairs). The loss (official code, all weights 1) is::

        L = L_s + L_co + sum_{self-pairs} (L_s + L_co) + [epoch >= contrastive_start_epoch] L_con

    where ``L_s`` classifies every image with its labels, ``L_co`` classifies both co-attended
    features of a pair with the common labels, ``L_con`` classifies the contrastive features of each
    member with its unique labels (each side's term only when some pair of the batch has a unique
    label on that side), and a self-pair is an image with its own horizontal flip / rescaled copy
    (``L_s`` and ``L_co`` over both members, same labels on both sides).
    An image's labels are the one-hot ``label``, or with ``multilabel`` (e.g. an MRI dataset's ``multilabel``,
    head + tumour) the batch's multi-hot ``multi_hot``: the paper's own multi-label setting.

    Args:
        num_extra_convs: 3x3 convs after the backbone (official: 3).
        head_width: channels of the extra convs and of the co-attention (official: 512).
        label_loss: ``mlsm`` (paper: multilabel soft margin) or ``ce`` (softmax CE over labelled rows).
        coattention_weight: weight of the co-attention losses (0 switches the branch off).
        contrastive_weight: weight of the contrastive co-attention loss (0 switches it off).
        contrastive_start_epoch: first (0-based) epoch with the contrastive loss (official: 2).
        self_pair_flip: pair each image with its horizontal flip (official: on).
        self_pair_scales: pair each image with copies rescaled by these factors (official: 0.75, 2).
        localization_map: ``single`` (evaluation default: the single-image CAM, no partner) or
            ``coattention`` (the official test script's map, :meth:`MCISNet.coattention_maps`: the
            co-attention maps of the class from the self-pairs and from up to ``num_test_partners``
            same-class partners found in the same evaluation batch, fused as its ``aggregate``).
        num_test_partners: same-class partners per image for ``coattention`` maps (official: 3).
        **kwargs: the shared options of :class:`~wsol_lightning.models.base.WSOLModule`.
    """

    supports_multilabel = True

    SEARCH_SPACE = (LR, weight("coattention_weight", 0.1, 10.0, "co-attention losses (official 1)"),
                    weight("contrastive_weight", 0.1, 10.0, "contrastive co-attention loss (official 1)"))

    def __init__(
        self,
        num_extra_convs: int = 3,
        head_width: int = 512,
        label_loss: LabelLoss = "mlsm",
        coattention_weight: float = 1.0,
        contrastive_weight: float = 1.0,
        contrastive_start_epoch: int = 2,
        self_pair_flip: bool = True,
        self_pair_scales: tuple[float, ...] = (0.75, 2.0),
        localization_map: Literal["single", "coattention"] = "single",
        num_test_partners: int = 3,
        **kwargs: Any,
    ) -> None:
        require_choice("label_loss", label_loss, ("mlsm", "ce"))
        if coattention_weight < 0 or contrastive_weight < 0:
            raise ConfigError(
                f"coattention_weight and contrastive_weight must be >= 0, got {coattention_weight}, {contrastive_weight}"
            )
        require(all(s > 0 for s in self_pair_scales), "self_pair_scales", "positive", self_pair_scales)
        require_choice("localization_map", localization_map, ("single", "coattention"))
        if localization_map == "coattention" and not (self_pair_flip or self_pair_scales or num_test_partners):
            raise ConfigError("localization_map='coattention' needs self_pair_flip, self_pair_scales or num_test_partners")
        require(num_test_partners >= 0, "num_test_partners", ">= 0", num_test_partners)
        super().__init__(**kwargs)

    def build_model(self) -> MCISNet:
        return MCISNet(**self.network_options(MCISNet))

    def training_losses(self, batch: WSOLBatch) -> dict[str, torch.Tensor]:
        hp = self.hparams
        images = batch.image
        targets = self.class_targets(batch)
        out = self.model(images)
        losses = {"single": label_loss(out.logits, targets, hp.label_loss)}
        if hp.coattention_weight == 0 and hp.contrastive_weight == 0:
            return losses
        num_pairs = images.shape[0] // 2
        m, n = torch.arange(num_pairs, device=images.device) * 2, torch.arange(num_pairs, device=images.device) * 2 + 1
        pair = self.model.pair_forward(out.features[m], out.features[n])
        common, unique_m, unique_n = pair_targets(targets[m], targets[n])
        co_logits = torch.cat([pair.coattention_logits_m, pair.coattention_logits_n])
        losses["coattention"] = hp.coattention_weight * label_loss(co_logits, torch.cat([common, common]), hp.label_loss)
        contrastive = out.logits.new_zeros((), dtype=torch.float32)
        if hp.contrastive_weight > 0 and self.current_epoch >= hp.contrastive_start_epoch:
            # each side's term only when some pair has a unique label on that side (official train.py L278-282)
            for logits, unique in ((pair.contrastive_logits_m, unique_m), (pair.contrastive_logits_n, unique_n)):
                if bool(unique.sum() > 0):
                    contrastive = contrastive + label_loss(logits, unique, hp.label_loss)
        losses["contrastive"] = hp.contrastive_weight * contrastive
        self_single, self_coattention = [], []
        for partner_images in self.model.self_pair_images(images):
            partner = self.model(partner_images)
            # both members of the self-pair, as official train.py L260: MLSM(logits2, [l_m; l_m])
            both = torch.cat([out.logits, partner.logits])
            self_single.append(label_loss(both, torch.cat([targets, targets]), hp.label_loss))
            self_pair = self.model.pair_forward(out.features, partner.features)
            self_logits = torch.cat([self_pair.coattention_logits_m, self_pair.coattention_logits_n])
            self_coattention.append(label_loss(self_logits, torch.cat([targets, targets]), hp.label_loss))
        if self_single:
            losses["self_pair_single"] = torch.stack(self_single).sum()
            losses["self_pair_coattention"] = hp.coattention_weight * torch.stack(self_coattention).sum()
        return losses
