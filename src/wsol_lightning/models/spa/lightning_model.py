"""SPA LightningModule: CE + Restricted Activation loss in training, SCG maps in evaluation."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from wsol_lightning.models.base import WSOLModule
from wsol_lightning.models.components.self_correlation import CorrelationMode
from wsol_lightning.metrics.localization import UnionBoxGTKnownLoc
from wsol_lightning.models.spa.loss import restricted_activation_loss
from wsol_lightning.models.spa.torch_model import HeadName, SelfCorrelationGenerator, SPANet


class SPA(WSOLModule):
    """Structure-preserving activation (Pan et al., CVPR 2021).

    Loss ``CE(GAP(A), y) + ram_weight * L_RA`` with ``L_RA`` from epoch ``ram_start_epoch`` on;
    localization map: the SCG map (``scg=True``) or the plain CAM ``A_c`` (``scg=False``).
    Defaults are the CUB scripts of the official code (see ``models/spa/README.md``).

    Args:
        head: ``spa`` (SPA's conv3x3-1024, conv3x3-1024, conv1x1 head) or ``cam`` (the CAM
            baseline's network, to isolate RAM and SCG).
        ram: use the Restricted Activation Module loss (ablation: off).
        ram_weight: ``lambda_RA`` (CUB and ILSVRC scripts: 0.5).
        ram_start_epoch: first 0-based epoch with the RAM loss (warm-up; CUB 20, ILSVRC 5).
        ram_background_threshold: ``tau_bg`` on the normalized class-probability variance
            (CUB 0.1, ILSVRC 0.4).
        ram_foreground_gap: ``g``, object positions have variance ``> tau_bg + g`` (CUB 0.2, ILSVRC 0.1).
        scg: evaluate SCG maps instead of the CAM (ablation: off).
        scg_mode: ``combined`` (SPA's HSC = max(SC1, w_so H)), ``first_order`` or ``high_order`` only.
        scg_taps: backbone units whose self-correlations are summed (``None``: the two default
            blocks of the backbone; one name for the one-block ablation).
        scg_first_order_threshold: ``theta_fo`` (CUB 0.1, ILSVRC 0.2).
        scg_second_order_threshold: ``theta_so`` in units of ``1/N`` (CUB 0.5, ILSVRC 0.2).
        scg_second_order_weight: ``w_so`` (CUB 2, ILSVRC 1).
        scg_order: order of the high-order correlation (2).
        scg_object_threshold: ``theta_fg``, object seeds where the normalized CAM is ``>=`` it (0.1).
        scg_background_threshold: ``theta_bg``, background seeds where it is ``<=`` it (0.05).
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
        union_box_diagnostic: also log ``<stage>/gt_known_loc_union``, GT-known Loc with SPA's own
            "all pixels above the threshold" box rule (the official metrics keep the contour rule).
        **kwargs: the shared options of :class:`~wsol_lightning.models.base.WSOLModule`.
    """

    def __init__(
        self,
        head: HeadName = "spa",
        ram: bool = True,
        ram_weight: float = 0.5,
        ram_start_epoch: int = 20,
        ram_background_threshold: float = 0.1,
        ram_foreground_gap: float = 0.2,
        scg: bool = True,
        scg_mode: CorrelationMode = "combined",
        scg_taps: list[str] | None = None,
        scg_first_order_threshold: float = 0.1,
        scg_second_order_threshold: float = 0.5,
        scg_second_order_weight: float = 2.0,
        scg_order: int = 2,
        scg_object_threshold: float = 0.1,
        scg_background_threshold: float = 0.05,
        scg_chunk_size: int = 16,
        scg_image_affinity_weight: float = 0.0,
        scg_image_colour_sigma: float = 0.5,
        scg_image_position_sigma: float = 0.5,
        scg_cross_image: bool = False,
        union_box_diagnostic: bool = False,
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
        interval = self.hparams.cam_curve_interval
        self.val_union_loc = UnionBoxGTKnownLoc(interval) if union_box_diagnostic else None
        self.test_union_loc = UnionBoxGTKnownLoc(interval) if union_box_diagnostic else None
        self._union_loc: UnionBoxGTKnownLoc | None = None

    def build_model(self) -> SPANet:
        hp = self.hparams
        generator = SelfCorrelationGenerator(
            first_order_threshold=hp.scg_first_order_threshold,
            second_order_threshold=hp.scg_second_order_threshold,
            second_order_weight=hp.scg_second_order_weight,
            order=hp.scg_order,
            mode=hp.scg_mode,
            object_threshold=hp.scg_object_threshold,
            background_threshold=hp.scg_background_threshold,
            chunk_size=hp.scg_chunk_size,
            image_affinity_weight=hp.scg_image_affinity_weight,
            image_colour_sigma=hp.scg_image_colour_sigma,
            image_position_sigma=hp.scg_image_position_sigma,
            cross_image=hp.scg_cross_image,
        )
        return SPANet(
            hp.backbone, hp.num_classes, hp.pretrained, hp.large_feature_map, hp.head, hp.scg_taps, generator
        )

    def ram_active(self) -> bool:
        """Whether the RAM loss is on in the current epoch (after the warm-up)."""
        return bool(self.hparams.ram) and self.current_epoch >= self.hparams.ram_start_epoch

    def training_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        hp = self.hparams
        labels = batch["label"]
        out = self.model(batch["image"])
        losses = {"ce": F.cross_entropy(out.logits.float(), labels)}
        if self.ram_active():
            ram = restricted_activation_loss(
                out.class_maps, labels, hp.ram_background_threshold, hp.ram_foreground_gap
            )
            losses["ram"] = hp.ram_weight * ram
        elif hp.ram:
            losses["ram"] = torch.zeros((), device=out.logits.device)
        return losses

    def localization_maps(
        self, images: torch.Tensor, classes: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and the SCG map (``scg=True``) or raw CAM of ``classes[b]``, ``[B, h, w]``."""
        return self.model.localization_maps(images, classes, use_scg=self.hparams.scg)

    # -- SPA's own box rule (diagnostic) ----------------------------------------------------
    @torch.no_grad()
    def evaluation_maps(self, batch: dict[str, Any]) -> tuple[torch.Tensor, np.ndarray]:
        logits, maps = super().evaluation_maps(batch)
        if self._union_loc is not None:
            self._union_loc.update(torch.from_numpy(maps), batch["boxes"], batch["num_boxes"])
        return logits, maps

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._union_loc = self.val_union_loc
        super().validation_step(batch, batch_idx)
        self._union_loc = None

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._union_loc = self.test_union_loc
        super().test_step(batch, batch_idx)
        self._union_loc = None

    def _log_union_loc(self, stage: str, metric: UnionBoxGTKnownLoc | None) -> None:
        if metric is None:
            return
        self.log(f"{stage}/gt_known_loc_union", metric.compute().float())
        self.log(f"{stage}/union_box_threshold", float(metric.best_threshold()))
        metric.reset()

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self._log_union_loc("val", self.val_union_loc)

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self._log_union_loc("test", self.test_union_loc)


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
    if ram_weight < 0:
        raise ValueError(f"ram_weight must be >= 0, got {ram_weight}")
    if ram_start_epoch < 0:
        raise ValueError(f"ram_start_epoch must be >= 0, got {ram_start_epoch}")
    if not 0.0 <= ram_background_threshold <= 1.0:
        raise ValueError(f"ram_background_threshold must be in [0, 1], got {ram_background_threshold}")
    if ram_foreground_gap < 0:
        raise ValueError(f"ram_foreground_gap must be >= 0, got {ram_foreground_gap}")
    if scg_mode not in ("combined", "first_order", "high_order"):
        raise ValueError(f"scg_mode must be 'combined', 'first_order' or 'high_order', got {scg_mode!r}")
    if scg_order < 1:
        raise ValueError(f"scg_order must be >= 1, got {scg_order}")
    if scg_chunk_size < 1:
        raise ValueError(f"scg_chunk_size must be >= 1, got {scg_chunk_size}")
