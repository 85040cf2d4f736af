"""SPA LightningModule: CE + Restricted Activation loss in training, SCG maps in evaluation."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from wsol_lightning.data.batch import WSOLBatch
from wsol_lightning.models.base import WSOLModule
from wsol_lightning.models.components.options import require, require_choice
from wsol_lightning.models.components.self_correlation import CorrelationMode
from wsol_lightning.models.search_space import LR, unit, weight
from wsol_lightning.models.spa.loss import restricted_activation_loss
from wsol_lightning.models.spa.torch_model import HeadName, SelfCorrelationGenerator, SPANet


class SPA(WSOLModule):
    """Structure-preserving activation (Pan et al., CVPR 2021).

    Loss ``CE(GAP(A), y) + ram_weight * L_RA`` with ``L_RA`` from epoch ``ram_start_epoch`` on;
    localization map: the SCG map (``scg=True``) or the plain CAM ``A_c`` (``scg=False``).
    Defaults are the CUB scripts of the official code (see ``models/spa/README.md``).

    Args:
        head: ``spa`` (SPA's conv3x3, conv3x3, conv1x1 head) or ``cam`` (the CAM baseline's network,
            to isolate RAM and SCG).
        head_width: channels of the ``spa`` head's 3x3 convs (paper: 1024).
        ram: use the Restricted Activation Module loss (ablation: off).
        ram_weight: ``lambda_RA`` (CUB and ILSVRC scripts: 0.5).
        ram_start_epoch: first 0-based epoch with the RAM loss (warm-up; CUB 20, ILSVRC 5).
        ram_background_threshold: ``tau_bg`` on the normalized class-probability variance
            (CUB 0.1, ILSVRC 0.4).
        ram_foreground_gap: ``g``, object positions have variance ``> tau_bg + g`` (CUB 0.2, ILSVRC 0.1).
        scg: evaluate SCG maps instead of the CAM (ablation: off).
        scg_mode: ``combined`` (SPA's HSC = max(SC1, w_so H)), ``first_order`` or ``high_order`` only.
        backbone_units: backbone units whose self-correlations SCG sums (``None``: the two default
            blocks of the backbone; one name for the one-block ablation).
        scg_first_order_threshold: ``theta_fo`` (CUB 0.1, ILSVRC 0.2).
        scg_second_order_threshold: ``theta_so`` in units of ``1/N`` (CUB 0.5, ILSVRC 0.2).
        scg_second_order_weight: ``w_so`` (CUB 2, ILSVRC 1).
        scg_order: order of the high-order correlation (2).
        foreground_threshold: SCG's ``theta_fg``, object seeds where the normalized CAM is ``>=`` it (0.1).
        background_threshold: SCG's ``theta_bg``, background seeds where it is ``<=`` it (0.05).
        scg_chunk_size: images per batched ``N x N`` computation (memory bound).
        scg_image_affinity_weight: ``w`` mixing the input image's colour/position affinity into the
            feature self-correlation, ``SC <- (1 - w) SC / n_blocks + w colnorm(A)`` with the
            bilateral kernel ``A_ij = exp(-|I_i - I_j|^2 / 2 sigma_c^2 - |p_i - p_j|^2 / 2 sigma_p^2)``
            of the mean input colours ``I`` and centres ``p`` of the feature cells (0: off, SPA's SCG).
        scg_image_colour_sigma: ``sigma_c``, in units of the normalized input (ImageNet std: ~57 of 255).
        scg_image_position_sigma: ``sigma_p``, in fractions of the image side.
        scg_cross_image: cross-image SCG (off): the object seeds of a same-class partner image,
            correlated with the image's positions by the image-to-partner HSC, join the image's own
            seeds. The partner is the batch's most confident other image predicted as the map's
            class (itself when there is none: then the map is SPA's); evaluation batches are not
            class-paired, so maps depend on the batch and the model cannot be exported.
        **kwargs: the shared options of :class:`~wsol_lightning.models.base.WSOLModule` (SPA's own
            union-box protocol: ``union_box_threshold``).
    """

    SEARCH_SPACE = (LR, weight("ram_weight", 0.05, 2.0, "lambda_RA"),
                    unit("ram_background_threshold", "tau_bg (CUB 0.1, ILSVRC 0.4)", 0.05, 0.5),
                    unit("ram_foreground_gap", "g (CUB 0.2, ILSVRC 0.1)", 0.05, 0.4),
                    unit("scg_first_order_threshold", "theta_fo (CUB 0.1, ILSVRC 0.2)", 0.05, 0.5),
                    unit("scg_second_order_threshold", "theta_so x 1/N (CUB 0.5, ILSVRC 0.2)", 0.1, 1.0))

    def __init__(
        self,
        head: HeadName = "spa",
        head_width: int = 1024,
        ram: bool = True,
        ram_weight: float = 0.5,
        ram_start_epoch: int = 20,
        ram_background_threshold: float = 0.1,
        ram_foreground_gap: float = 0.2,
        scg: bool = True,
        scg_mode: CorrelationMode = "combined",
        backbone_units: list[str] | None = None,
        scg_first_order_threshold: float = 0.1,
        scg_second_order_threshold: float = 0.5,
        scg_second_order_weight: float = 2.0,
        scg_order: int = 2,
        foreground_threshold: float = 0.1,
        background_threshold: float = 0.05,
        scg_chunk_size: int = 16,
        scg_image_affinity_weight: float = 0.0,
        scg_image_colour_sigma: float = 0.5,
        scg_image_position_sigma: float = 0.5,
        scg_cross_image: bool = False,
        **kwargs: Any,
    ) -> None:
        _check_arguments(
            ram_weight=ram_weight,
            ram_start_epoch=ram_start_epoch,
            ram_background_threshold=ram_background_threshold,
            ram_foreground_gap=ram_foreground_gap,
            scg_mode=scg_mode,
            scg_order=scg_order,
            scg_chunk_size=scg_chunk_size,
        )
        super().__init__(**kwargs)

    def build_model(self) -> SPANet:
        hp = self.hparams
        generator = SelfCorrelationGenerator(
            first_order_threshold=hp.scg_first_order_threshold,
            second_order_threshold=hp.scg_second_order_threshold,
            second_order_weight=hp.scg_second_order_weight,
            order=hp.scg_order,
            mode=hp.scg_mode,
            object_threshold=hp.foreground_threshold,
            background_threshold=hp.background_threshold,
            chunk_size=hp.scg_chunk_size,
            image_affinity_weight=hp.scg_image_affinity_weight,
            image_colour_sigma=hp.scg_image_colour_sigma,
            image_position_sigma=hp.scg_image_position_sigma,
            cross_image=hp.scg_cross_image,
        )
        return SPANet(
            self.build_backbone(), hp.num_classes, hp.head, hp.backbone_units, generator, use_scg=hp.scg, head_width=hp.head_width
        )

    def ram_active(self) -> bool:
        """Whether the RAM loss is on in the current epoch (after the warm-up)."""
        return bool(self.hparams.ram) and self.current_epoch >= self.hparams.ram_start_epoch

    def training_losses(self, batch: WSOLBatch) -> dict[str, torch.Tensor]:
        hp = self.hparams
        labels = batch.label
        out = self.model(batch.image)
        losses = {"ce": F.cross_entropy(out.logits.float(), labels)}
        if self.ram_active():
            ram = restricted_activation_loss(
                out.class_maps, labels, hp.ram_background_threshold, hp.ram_foreground_gap
            )
            losses["ram"] = hp.ram_weight * ram
        elif hp.ram:
            losses["ram"] = torch.zeros((), device=out.logits.device)
        return losses


def _check_arguments(
    ram_weight: float,
    ram_start_epoch: int,
    ram_background_threshold: float,
    ram_foreground_gap: float,
    scg_mode: str,
    scg_order: int,
    scg_chunk_size: int,
) -> None:
    """Clear errors naming the bad key (the generator checks the seed thresholds)."""
    require(ram_weight >= 0, "ram_weight", ">= 0", ram_weight)
    require(ram_start_epoch >= 0, "ram_start_epoch", ">= 0", ram_start_epoch)
    require(0.0 <= ram_background_threshold <= 1.0, "ram_background_threshold", "in [0, 1]", ram_background_threshold)
    require(ram_foreground_gap >= 0, "ram_foreground_gap", ">= 0", ram_foreground_gap)
    require_choice("scg_mode", scg_mode, ("combined", "first_order", "high_order"))
    require(scg_order >= 1, "scg_order", ">= 1", scg_order)
    require(scg_chunk_size >= 1, "scg_chunk_size", ">= 1", scg_chunk_size)
