"""``WSOLModule``: the base LightningModule every method inherits.

A method implements three things: :meth:`WSOLModule.build_model` (its pure-torch network),
:meth:`WSOLModule.training_losses` (its paper's losses) and, when its localization map is not the
plain CAM of its classifier, :meth:`WSOLModule.localization_maps`. Everything else is shared so
every method is measured identically:

* evaluation (val/test): classification top-1/top-5; the GT-class map resized to the evaluated
  image with the reference's float64 bicubic (:func:`wsol_lightning.metrics.resize_cam`), fed to
  MaxBoxAccV2, GT-known Loc, Top-1 Loc, Top-5 Loc (and PxAP where masks exist). Top-1 Loc counts
  an image when its top-1 class is right *and* the box of that class's map hits; when the top-1
  class is right it *is* the GT class, so the GT-class map is the predicted class's map and one
  map per image serves every metric (the same holds for Top-5 Loc).
* the CAM threshold chosen on validation (GT-known's optimum) is kept in the ``cam_threshold``
  buffer, so it travels in checkpoints to ``predict``.
* where some images have no object (MRI's tumour-free slices), ``pxap_with_object``: PxAP over the
  images with an object only, next to ``pxap`` over all.
* on datasets that know the discriminative part (synthetic), the part-focus diagnostics of
  :mod:`wsol_lightning.diagnostics` are logged too (``part_peak_share``, ``gt_box_coverage``); on
  those that know the skull (synthetic MRI), the tumour-class map's skull share
  (``skull_cam_share``, ``skull_cam_share_no_tumour``).
* multi-label targets (``multilabel``, the batch's ``multi_hot``) for the methods that support them.
* optimizer: SGD (Nesterov) or Adam with the papers' two learning-rate groups: pretrained
  backbone at ``lr``, new layers (and units the backbone marks, e.g. ResNet's layer4 as in
  wsolevaluation) at ``lr * head_lr_multiplier``; optional step decay.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MultilabelExactMatch

from wsol_lightning.data.batch import unpad_boxes
from wsol_lightning.data.datasets.mri import TUMOUR_CLASS
from wsol_lightning.metrics.diagnostics import PartFocus, SkullShare
from wsol_lightning.cam import resize_cam, threshold_hits
from wsol_lightning.metrics import GTKnownLoc, MaxBoxAccV2, PxAP, TopOneLoc
from wsol_lightning.models.components.label_loss import label_loss


class WSOLModule(pl.LightningModule):
    """Shared evaluation, optimizer and logging for WSOL methods.

    Args:
        num_classes: number of classes (linked from the datamodule by the CLI).
        backbone: ``vgg16``, ``resnet50``, ``inception_v3`` or ``resnet18`` (CPU runs).
        pretrained: load torchvision ImageNet weights (must be cached locally).
        large_feature_map: 28x28 instead of 14x14 maps at 224 px (wsolevaluation option).
        optimizer: ``sgd`` (momentum, Nesterov, as the papers) or ``adam``.
        lr: learning rate of the pretrained backbone.
        head_lr_multiplier: learning-rate factor of the new layers (papers: 10).
        bias_lr_multiplier: extra learning-rate factor of bias parameters in both groups (the
            original ACoL, SPA, DANet and I2C code: 2, i.e. backbone biases 2x and head biases
            20x the base rate; wsolevaluation: 1).
        weight_decay: L2 weight decay.
        momentum: SGD momentum.
        lr_decay_epochs: multiply the learning rates by ``lr_decay_factor`` every this many epochs
            (an int), or at these epochs (a list, e.g. ``[10, 15]``); ``None``: constant rate.
        lr_decay_factor: step-decay factor.
        cam_curve_interval: CAM threshold step of the box metrics (wsolevaluation: 0.01 in its
            CLI, 0.001 in its training code).
        iou_thresholds: IoU thresholds (percent) averaged by MaxBoxAccV2.
        multi_contour: MaxBoxAccV2 boxes from every contour (V2) or the largest only.
        multilabel: multi-hot targets (the batch's ``multi_hot``; linked from the datamodule by the
            CLI, e.g. ``data.mri_multilabel``): the classification loss is the multilabel soft margin
            (mean sigmoid BCE over classes) instead of softmax CE, classification accuracy is the exact
            match of ``sigmoid(logits) > 0.5`` (``cls_exact_match``), Top-1 Loc counts the evaluated
            class right when its logit is > 0, ``predict`` probabilities are sigmoids. The map is
            still the one of ``label``. Only methods with ``supports_multilabel`` accept it.
    """

    #: Whether the method's losses read multi-hot targets (``multilabel``).
    supports_multilabel: ClassVar[bool] = False

    def __init__(
        self,
        num_classes: int = 8,
        backbone: str = "resnet18",
        pretrained: bool = False,
        large_feature_map: bool = False,
        optimizer: Literal["sgd", "adam"] = "sgd",
        lr: float = 0.01,
        head_lr_multiplier: float = 10.0,
        bias_lr_multiplier: float = 1.0,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        lr_decay_epochs: int | list[int] | None = None,
        lr_decay_factor: float = 0.1,
        cam_curve_interval: float = 0.01,
        iou_thresholds: tuple[int, ...] = (30, 50, 70),
        multi_contour: bool = True,
        multilabel: bool = False,
    ) -> None:
        super().__init__()
        if bias_lr_multiplier <= 0:
            raise ValueError(f"bias_lr_multiplier must be positive, got {bias_lr_multiplier}")
        if multilabel and not self.supports_multilabel:
            raise ValueError(
                f"multilabel: true (data.mri_multilabel) is not supported by {type(self).__name__}; "
                "use a method whose losses read multi-hot targets (CAM, HaS, MCIS)"
            )
        self.save_hyperparameters()
        self.num_classes = num_classes
        self.model = self.build_model()
        self.register_buffer("cam_threshold", torch.tensor(float("nan"), dtype=torch.float64))
        self.val_metrics = self._build_metrics()
        self.test_metrics = self._build_metrics()
        self.val_pxap = PxAP(cam_curve_interval)
        self.test_pxap = PxAP(cam_curve_interval)
        self.val_pxap_with_object = PxAP(cam_curve_interval)
        self.test_pxap_with_object = PxAP(cam_curve_interval)
        self.val_accuracy = self._build_accuracy()
        self.test_accuracy = self._build_accuracy()
        self.val_part_focus = PartFocus()
        self.test_part_focus = PartFocus()
        self.val_skull_share = SkullShare()
        self.test_skull_share = SkullShare()
        self._box_accuracy_curves: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # -- what a method implements ---------------------------------------------------------
    def build_model(self) -> nn.Module:
        """Return the method's pure-torch network (read settings from ``self.hparams``)."""
        raise NotImplementedError

    def training_losses(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Return the method's losses for a training batch; the total is their sum.

        Each entry is logged as ``train/<name>``; weights belong inside the entries.
        """
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Classification logits ``[B, C]``."""
        return self.model(images).logits

    def localization_maps(self, images: torch.Tensor, classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B, C]`` and the raw localization map of ``classes[b]`` for image ``b`` ``[B, h, w]``.

        The default is the CAM of a network whose output has ``logits`` and ``features`` and which
        offers ``class_maps(features, classes)``.
        """
        out = self.model(images)
        return out.logits, self.model.class_maps(out.features, classes)

    # -- metrics --------------------------------------------------------------------------
    def _build_metrics(self) -> MetricCollection:
        hp = self.hparams
        return MetricCollection(
            {
                "maxboxacc_v2": MaxBoxAccV2(
                    iou_thresholds=tuple(hp.iou_thresholds),
                    cam_curve_interval=hp.cam_curve_interval,
                    multi_contour=hp.multi_contour,
                ),
                "gt_known_loc": GTKnownLoc(cam_curve_interval=hp.cam_curve_interval),
                "top1_loc": TopOneLoc(cam_curve_interval=hp.cam_curve_interval),
                "top5_loc": TopOneLoc(cam_curve_interval=hp.cam_curve_interval),
            },
            compute_groups=False,
        )

    def _build_accuracy(self) -> MetricCollection:
        if self.hparams.multilabel:
            return MetricCollection({"cls_exact_match": MultilabelExactMatch(self.num_classes)})
        top5 = min(5, self.num_classes)
        return MetricCollection(
            {
                "cls_top1": MulticlassAccuracy(self.num_classes, top_k=1, average="micro"),
                f"cls_top{top5}": MulticlassAccuracy(self.num_classes, top_k=top5, average="micro"),
            }
        )

    # -- targets --------------------------------------------------------------------------
    def _check_targets(self, batch: dict[str, Any]) -> None:
        """The batch has multi-hot targets iff the model is multi-label (else a clear error)."""
        if self.hparams.multilabel and "multi_hot" not in batch:
            raise ValueError(
                "multilabel: true but the batch has no 'multi_hot' targets (set data.mri_multilabel: true)"
            )
        if not self.hparams.multilabel and "multi_hot" in batch:
            raise ValueError(
                "the batch has multi-hot targets (data.mri_multilabel: true) but the model has "
                "multilabel: false"
            )

    def class_targets(self, batch: dict[str, Any]) -> torch.Tensor:
        """Multi-hot float targets ``[B, C]``: the batch's ``multi_hot``, or the one-hot ``label``."""
        if self.hparams.multilabel:
            return batch["multi_hot"].float()
        return F.one_hot(batch["label"], self.num_classes).float()

    def classification_loss(self, logits: torch.Tensor, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``{"ce": softmax CE on label}``, or with ``multilabel`` ``{"mlsm": multilabel soft margin}``.

        The multilabel soft margin on ``multi_hot`` is MCIS's single-image term (Eq. 7, ``L_s``).
        """
        if self.hparams.multilabel:
            return {"mlsm": label_loss(logits, batch["multi_hot"], "mlsm")}
        return {"ce": F.cross_entropy(logits, batch["label"])}

    # -- training -------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        self._check_targets(batch)
        losses = self.training_losses(batch)
        total = torch.stack(list(losses.values())).sum()
        batch_size = batch["image"].shape[0]
        for name, value in losses.items():
            self.log(f"train/{name}", value.detach(), batch_size=batch_size)
        self.log("train/loss", total.detach(), prog_bar=True, batch_size=batch_size)
        return total

    # -- evaluation -----------------------------------------------------------------------
    def current_cam_threshold(self) -> float:
        """The CAM threshold chosen on validation (0.5 before the first validation epoch)."""
        value = float(self.cam_threshold)
        return 0.5 if value != value else value

    @torch.no_grad()
    def evaluation_maps(self, batch: dict[str, Any]) -> tuple[torch.Tensor, np.ndarray]:
        """Logits and GT-class maps resized to the evaluated image size (float64 numpy ``[B, H, W]``)."""
        return self._resized_maps(batch["image"], batch["label"])

    def _resized_maps(self, images: torch.Tensor, classes: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        logits, maps = self.localization_maps(images, classes)
        height, width = images.shape[-2:]
        resized = resize_cam(maps.detach().float().cpu().numpy().astype(np.float64), (height, width))
        return logits, resized

    @torch.no_grad()
    def tumour_class_maps(self, batch: dict[str, Any], gt_class_maps: torch.Tensor) -> torch.Tensor:
        """Resized maps of the tumour class on every slice ``[B, H, W]`` (the skull diagnostic's maps).

        Tumour slices reuse their GT-class maps; the others are evaluated once more for the tumour class.
        """
        maps = gt_class_maps.clone()
        others = (batch["label"] != TUMOUR_CLASS).nonzero().flatten()
        if len(others):
            classes = torch.full_like(batch["label"][others], TUMOUR_CLASS)
            maps[others.cpu()] = torch.from_numpy(self._resized_maps(batch["image"][others], classes)[1])
        return maps

    def _stage_metrics(
        self, stage: str
    ) -> tuple[MetricCollection, MetricCollection, tuple[PxAP, PxAP], PartFocus, SkullShare]:
        """Box metrics, accuracy, PxAP (all images, images with an object), part focus, skull share."""
        if stage == "val":
            pxaps = (self.val_pxap, self.val_pxap_with_object)
            return self.val_metrics, self.val_accuracy, pxaps, self.val_part_focus, self.val_skull_share
        pxaps = (self.test_pxap, self.test_pxap_with_object)
        return self.test_metrics, self.test_accuracy, pxaps, self.test_part_focus, self.test_skull_share

    def _evaluation_step(self, batch: dict[str, Any], stage: str) -> None:
        self._check_targets(batch)
        metrics, accuracy, (pxap, pxap_with_object), part_focus, skull_share = self._stage_metrics(stage)
        labels = batch["label"]
        logits, cams = self.evaluation_maps(batch)
        cams_t = torch.from_numpy(cams)
        boxes = [b.cpu() for b in unpad_boxes(batch["boxes"], batch["num_boxes"])]
        top5 = logits.topk(min(5, logits.shape[1]), dim=1).indices
        if self.hparams.multilabel:
            accuracy.update(torch.sigmoid(logits.float()), batch["multi_hot"].int())
            correct1 = (logits.gather(1, labels[:, None]).squeeze(1) > 0).cpu()
        else:
            accuracy.update(logits, labels)
            correct1 = (top5[:, 0] == labels).cpu()
        correct5 = (top5 == labels[:, None]).any(dim=1).cpu()
        # Box metrics are defined on images with an object (an MRI slice without tumour has no box).
        boxed = (batch["num_boxes"] > 0).cpu()
        if boxed.any():
            keep = boxed.nonzero().flatten()
            box_cams, box_gt = cams_t[keep], [boxes[i] for i in keep.tolist()]
            metrics["maxboxacc_v2"].update(box_cams, box_gt)
            # GT-known, Top-1 and Top-5 Loc score the same maps with the same v1 settings: one box
            # kernel run feeds all three (benchmarks/evaluation_step.py).
            gt_known: GTKnownLoc = metrics["gt_known_loc"]
            v1_hits = threshold_hits(box_cams, box_gt, gt_known.thresholds, (50,), gt_known.multi_contour)
            gt_known.update_from_hits(v1_hits)
            metrics["top1_loc"].update_from_hits(v1_hits[:, 0, :], correct1[keep])
            metrics["top5_loc"].update_from_hits(v1_hits[:, 0, :], correct5[keep])
            self._has_boxes = True
        if "mask" in batch:
            pxap.update(cams_t, batch["mask"].cpu())
            self._has_masks = True
            if boxed.any():
                pxap_with_object.update(cams_t[boxed], batch["mask"].cpu()[boxed])
            self._has_objectless = getattr(self, "_has_objectless", False) or not bool(boxed.all())
        if "part_mask" in batch:
            part_focus.update(cams_t, batch["part_mask"].cpu(), boxes, self.current_cam_threshold())
            self._has_parts = True
        if "skull_mask" in batch:
            tumour_maps = self.tumour_class_maps(batch, cams_t)
            skull_share.update(tumour_maps, batch["skull_mask"].cpu(), (labels == TUMOUR_CLASS).cpu())
            self._has_skulls = True

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def _any_rank(self, flag: bool) -> bool:
        """``flag`` OR-ed over DDP ranks (every rank must take the same metric branches)."""
        total = self.trainer.strategy.reduce(torch.tensor(float(flag), device=self.device), reduce_op="sum")
        return bool(total > 0)

    def _evaluation_epoch_end(self, stage: str) -> dict[str, torch.Tensor]:
        metrics, accuracy, (pxap, pxap_with_object), part_focus, skull_share = self._stage_metrics(stage)
        values = {f"{stage}/{k}": v for k, v in accuracy.compute().items()}
        has_boxes, has_masks, has_parts, has_skulls, has_objectless = (
            self._any_rank(getattr(self, flag, False))
            for flag in ("_has_boxes", "_has_masks", "_has_parts", "_has_skulls", "_has_objectless")
        )
        if has_boxes:
            values.update({f"{stage}/{k}": v for k, v in metrics.compute().items()})
            box_metric: MaxBoxAccV2 = metrics["maxboxacc_v2"]
            self._box_accuracy_curves[stage] = box_metric.box_accuracy_curve()
            for iou, (acc, _threshold) in box_metric.compute_per_iou().items():
                values[f"{stage}/maxboxacc_iou{iou}"] = torch.as_tensor(acc)
        if has_masks:
            values[f"{stage}/pxap"] = pxap.compute()
            if has_objectless and has_boxes:
                values[f"{stage}/pxap_with_object"] = pxap_with_object.compute()
        if has_parts:
            values.update({f"{stage}/{k}": v for k, v in part_focus.compute().items()})
        if has_skulls:
            values.update({f"{stage}/{k}": v for k, v in skull_share.compute().items()})
        if stage == "val" and not self.trainer.sanity_checking and has_boxes:
            self.cam_threshold.fill_(float(metrics["gt_known_loc"].best_threshold()))
        values = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in values.items()}
        shown = {f"{stage}/{k}" for k in ("maxboxacc_v2", "top1_loc", "cls_top1", "cls_exact_match")}
        self.log_dict({k: v for k, v in values.items() if k in shown}, prog_bar=True)
        self.log_dict({k: v for k, v in values.items() if k not in shown})
        metrics.reset()
        accuracy.reset()
        pxap.reset()
        pxap_with_object.reset()
        part_focus.reset()
        skull_share.reset()
        self._has_masks = self._has_parts = self._has_boxes = self._has_skulls = self._has_objectless = False
        return values

    def box_accuracy_curve(self, stage: Literal["val", "test"]) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
        """BoxAcc versus CAM threshold of the last ``stage`` evaluation with boxes.

        Returns:
            ``(thresholds [K], box_acc [len(iou_thresholds), K] percent, iou_thresholds)``.

        Raises:
            LookupError: no ``stage`` evaluation with boxes has finished yet.
        """
        if stage not in self._box_accuracy_curves:
            raise LookupError(f"no {stage} evaluation with boxes has finished yet")
        thresholds, curve = self._box_accuracy_curves[stage]
        return thresholds, curve, tuple(self.hparams.iou_thresholds)

    def on_validation_epoch_end(self) -> None:
        self._evaluation_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._evaluation_epoch_end("test")

    # -- prediction -----------------------------------------------------------------------
    @torch.no_grad()
    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        """Top-1 class, its score, every class's probability and the top-1 class's map.

        The map is the raw localization map resized to the image size (not normalized), as the
        evaluation feeds it to the metrics. Probabilities are softmaxes, or sigmoids with ``multilabel``.
        """
        images = batch["image"]
        logits = self(images)
        classes = logits.argmax(dim=1)
        _, maps = self.localization_maps(images, classes)
        resized = resize_cam(maps.detach().float().cpu().numpy().astype(np.float64), tuple(images.shape[-2:]))
        scores = logits.float()
        probabilities = torch.sigmoid(scores) if self.hparams.multilabel else F.softmax(scores, dim=1)
        return {
            "image_id": batch["image_id"],
            "class": classes.cpu(),
            "score": probabilities.gather(1, classes[:, None]).squeeze(1).cpu(),
            "probabilities": probabilities.cpu(),
            "cam": torch.from_numpy(resized),
        }

    # -- optimization ---------------------------------------------------------------------
    def parameter_groups(self) -> list[dict[str, Any]]:
        """Backbone parameters at ``lr``; new layers and head-lr backbone units at the multiplier.

        With ``bias_lr_multiplier != 1`` each group is split into weights and biases, the biases at
        the group's rate times the multiplier.
        """
        hp = self.hparams
        backbone = getattr(self.model, "backbone", None)
        base_names: set[str] = set()
        if backbone is not None:
            head_units = backbone.head_lr_parameter_names()
            base_names = {
                f"backbone.{n}" for n, _ in backbone.named_parameters() if n not in head_units and "_inserted" not in n
            }
        base, head = [], []
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                (base if name in base_names else head).append(param)
        groups = [
            {"params": base, "lr": hp.lr, "name": "backbone"},
            {"params": head, "lr": hp.lr * hp.head_lr_multiplier, "name": "head"},
        ]
        if hp.bias_lr_multiplier != 1.0:
            bias_ids = {id(p) for name, p in self.model.named_parameters() if name.endswith(".bias")}
            groups = [
                {"params": [p for p in g["params"] if (id(p) in bias_ids) == is_bias],
                 "lr": g["lr"] * (hp.bias_lr_multiplier if is_bias else 1.0),
                 "name": f"{g['name']}_bias" if is_bias else g["name"]}
                for g in groups
                for is_bias in (False, True)
            ]
        return [g for g in groups if g["params"]]

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        groups = self.parameter_groups()
        if hp.optimizer == "sgd":
            optimizer = torch.optim.SGD(groups, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay, nesterov=True)
        else:
            optimizer = torch.optim.Adam(groups, lr=hp.lr, weight_decay=hp.weight_decay)
        if not hp.lr_decay_epochs:
            return optimizer
        if isinstance(hp.lr_decay_epochs, int):
            scheduler = torch.optim.lr_scheduler.StepLR(optimizer, hp.lr_decay_epochs, gamma=hp.lr_decay_factor)
        else:
            milestones = sorted(hp.lr_decay_epochs)
            scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=hp.lr_decay_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
