"""``WSOLModule``: the base LightningModule every method inherits.

A method is its pure-torch network (a :class:`~wsol_lightning.models.components.LocalizationNetwork`
whose ``localize(images, classes)`` gives logits and the method's own map), its paper's losses
(:meth:`WSOLModule.training_losses`) and, when it logs more than the shared metrics,
:meth:`WSOLModule.configure_metrics`. Everything else is shared, so every method is measured
identically:

* evaluation (val/test): an :class:`~wsol_lightning.metrics.Evaluator` per stage holds the
  metrics the data allows (classification accuracy; MaxBoxAccV2, GT-known, Top-1 and Top-5 Loc
  on images with boxes; PxAP on masks; the part and skull diagnostics on the synthetic sets).
  The map of the GT class is resized to the evaluated image with the reference's float64
  bicubic and scored; Top-1 Loc counts an image when its top-1 class is right *and* the box of
  that class's map hits; when the top-1 class is right it *is* the GT class, so one map per image
  serves every metric. The metric updates overlap the next batch's forward (``evaluation_overlap``).
* the CAM threshold chosen on validation (GT-known's optimum) is kept in the ``cam_threshold``
  buffer, so it travels in checkpoints to ``predict``; at test, GT-known and Top-1 Loc are also
  logged at that threshold (``*_at_val_threshold``, the classic protocol).
* SPA's and DANet's union-box Top-1/Top-5/GT-known Loc at a fixed threshold, next to those
  (``union_box_threshold``).
* multi-label targets (``multilabel``, the batch's ``multi_hot``) for the methods that support them.
* optimizer: SGD (Nesterov) or Adam with the papers' two learning-rate groups: pretrained
  backbone at ``lr``, new layers (and units the backbone marks, e.g. ResNet's layer4 as in
  wsolevaluation) at ``lr * head_lr_multiplier``; optional step decay.
"""

from __future__ import annotations

import inspect
import math
import random
from typing import Any, ClassVar, Literal

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from lightning_utilities.core.apply_func import apply_to_collection
from pytorch_lightning.utilities import rank_zero_info
from torch import nn
from torchmetrics import Metric

from wsol_lightning.cam import resize_cam
from wsol_lightning.data.batch import OPTIONAL_MAP_FIELDS, WSOLBatch
from wsol_lightning.errors import ConfigError
from wsol_lightning.metrics import GTKnownLoc, MaxBoxAccV2, PxAP, TopKLoc, UnionBoxLoc
from wsol_lightning.metrics.diagnostics import PartFocus, SkullShare
from wsol_lightning.metrics.evaluator import ClassificationAccuracy, EvaluationStep, Evaluator
from wsol_lightning.models.components.backbones import Backbone, build_backbone
from wsol_lightning.models.components.init_from import load_matching_weights
from wsol_lightning.models.components.label_loss import label_loss
from wsol_lightning.models.components.network import LocalizationNetwork, LocalizationOutput
from wsol_lightning.models.components.options import require
from wsol_lightning.models.search_space import LR, Param

STAGES = ("val", "test")
#: Metrics shown in the progress bar.
PROGRESS_BAR_METRICS = ("maxboxacc_v2", "top1_loc", "cls_top1", "cls_exact_match")


def _to_cpu_numpy64(maps: torch.Tensor) -> np.ndarray:
    return maps.detach().float().cpu().numpy().astype(np.float64)


def crop_averaged_scores(logits: torch.Tensor, num_images: int) -> torch.Tensor:
    """Softmax of each crop's logits ``[B * N, C]`` (image-major), averaged over each image's ``N`` crops:
    ``[B, C]`` (SPA_CVPR2021 ``exper/val_spa.py`` L241-244, DANet ``exper/val_hierarchy.py`` L143-157)."""
    return logits.float().softmax(dim=1).view(num_images, -1, logits.shape[1]).mean(dim=1)


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
        head_lr_prefixes: instead of "new layers and marked backbone units", the network parameters
            whose names start with one of these train at the multiplied rate, all others at ``lr``
            (wsolevaluation's name-pattern groups: ACoL/SPG-ResNet50 ``[backbone.units.layer4]``,
            their new heads at 1x; SPG-VGG16 adds the pretrained ``backbone.units.conv4``/``conv5``).
            Each prefix must match a parameter.
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
            CLI, e.g. an MRI dataset's ``multilabel``): the classification loss is the multilabel soft
            margin (mean sigmoid BCE over classes) instead of softmax CE, classification accuracy is
            the exact match of ``sigmoid(logits) > 0.5`` (``cls_exact_match``), Top-1 Loc counts the
            evaluated class right when its logit is > 0, ``predict`` probabilities are sigmoids. The
            map is still the one of ``label``. Only methods with ``supports_multilabel`` accept it.
        evaluation_overlap: run the metric updates of a batch on a worker thread while the next
            batch's forward runs (identical values; ``false``: in the evaluation step).
        initial_cam_threshold: the CAM threshold of ``predict`` boxes until a validation chooses one
            (``None``: 0.5; ``experiments/imagenet_cam.yaml``: 0.2, the classic CAM value).
        union_box_threshold: also log SPA's and DANet's own protocol at this fixed threshold of the
            normalized map: ``*/top1_loc_union``, ``*/top5_loc_union``, ``*/gt_known_loc_union``, the
            tight box around every pixel ``>=`` it with IoU ``> 0.5`` (:class:`~wsol_lightning.metrics.UnionBoxLoc`);
            ``None``: off. SPA's CUB script evaluates 0.1, 0.25, 0.3, 0.35, DANet's 0.05-0.3.
        init_from: a Lightning checkpoint or a saved state dict whose tensors initialize the network
            where name and shape match, when a fit starts (a resumed fit's ``--ckpt_path`` still wins);
            each tensor is reported as loaded, kept or new. I2C's second stage: a trained CAM's
            checkpoint (:func:`~wsol_lightning.models.components.init_from.load_matching_weights`).
        channels_last: keep the network's 4-D weights and the batches' images in channels-last
            (NHWC) memory: the same values up to float rounding (so a seeded run's numbers move),
            faster training steps (BENCHMARKS.md, "Memory format") and the layout tensor cores use.
            Off by default so that the published tables rerun to the same numbers.
    """

    #: Whether the method's losses read multi-hot targets (``multilabel``).
    supports_multilabel: ClassVar[bool] = False
    #: The hyperparameters ``wsol tune`` searches (:mod:`~wsol_lightning.models.search_space`).
    SEARCH_SPACE: ClassVar[tuple[Param, ...]] = (LR,)

    def __init__(
        self,
        num_classes: int = 8,
        backbone: str = "resnet18",
        pretrained: bool = False,
        large_feature_map: bool = False,
        optimizer: Literal["sgd", "adam"] = "sgd",
        lr: float = 0.01,
        head_lr_multiplier: float = 10.0,
        head_lr_prefixes: list[str] | None = None,
        bias_lr_multiplier: float = 1.0,
        weight_decay: float = 1e-4,
        momentum: float = 0.9,
        lr_decay_epochs: int | list[int] | None = None,
        lr_decay_factor: float = 0.1,
        cam_curve_interval: float = 0.01,
        iou_thresholds: tuple[int, ...] = (30, 50, 70),
        multi_contour: bool = True,
        multilabel: bool = False,
        evaluation_overlap: bool = True,
        initial_cam_threshold: float | None = None,
        union_box_threshold: float | None = None,
        init_from: str | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        require(bias_lr_multiplier > 0, "bias_lr_multiplier", "positive", bias_lr_multiplier)
        if union_box_threshold is not None:
            require(0.0 <= union_box_threshold <= 1.0, "union_box_threshold", "in [0, 1]", union_box_threshold)
        if multilabel and not self.supports_multilabel:
            raise ConfigError(
                f"multilabel: true (an MRI dataset's multilabel) is not supported by {type(self).__name__}; "
                "use a method whose losses read multi-hot targets (CAM, HaS, MCIS)"
            )
        self.save_hyperparameters()
        self.num_classes = num_classes
        self.model: LocalizationNetwork = self.build_model()
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        if head_lr_prefixes:
            names = [name for name, _ in self.model.named_parameters()]
            modules = ", ".join(sorted({name.rsplit(".", 2)[0] for name in names})[:6])
            for prefix in head_lr_prefixes:
                require(any(name.startswith(prefix) for name in names), "head_lr_prefixes",
                        f"prefixes of the network's parameter names ({modules}, ...)", prefix)
        initial = float("nan") if initial_cam_threshold is None else initial_cam_threshold
        self.register_buffer("cam_threshold", torch.tensor(initial, dtype=torch.float64))
        self.evaluators = nn.ModuleDict()
        self._box_accuracy_curves: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # -- what a method implements ---------------------------------------------------------
    def build_model(self) -> LocalizationNetwork:
        """Return the method's pure-torch network (read settings from ``self.hparams``)."""
        raise NotImplementedError

    def build_backbone(self) -> Backbone:
        """The backbone of ``backbone``, ``pretrained`` and ``large_feature_map``."""
        hp = self.hparams
        return build_backbone(hp.backbone, hp.pretrained, hp.large_feature_map)

    def network_options(self, network: type[nn.Module]) -> dict[str, Any]:
        """The hyperparameters ``network``'s constructor takes by name, ``backbone`` built.

        The LightningModule's signature documents every switch once; the network takes the same
        names, so ``build_model`` is ``return Net(**self.network_options(Net))``.
        """
        names = inspect.signature(network).parameters
        options = {name: self.hparams[name] for name in names if name in self.hparams}
        if "backbone" in names:
            options["backbone"] = self.build_backbone()
        return options

    def training_losses(self, batch: WSOLBatch) -> dict[str, torch.Tensor]:
        """Return the method's losses for a training batch; the total is their sum.

        Each entry is logged as ``train/<name>``; weights belong inside the entries.
        """
        raise NotImplementedError

    def configure_metrics(self) -> dict[str, Metric]:
        """Metrics the method logs besides the shared ones (each an :class:`~wsol_lightning.metrics.EvaluationMetric`)."""
        return {}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Classification logits ``[B, C]`` of ``[0, 1]`` RGB images."""
        return self.model(images).logits

    # -- metrics --------------------------------------------------------------------------
    def evaluation_metrics(self, class_names: list[str] | None = None) -> dict[str, Metric]:
        """The shared metrics plus :meth:`configure_metrics` (the evaluator keeps those the data allows)."""
        hp = self.hparams
        interval = hp.cam_curve_interval
        metrics: dict[str, Metric] = {
            "accuracy": ClassificationAccuracy(self.num_classes, hp.multilabel),
            "maxboxacc_v2": MaxBoxAccV2(hp.iou_thresholds, interval, hp.multi_contour),
            "gt_known_loc": GTKnownLoc(interval),
            "top1_loc": TopKLoc(1, interval),
            "top5_loc": TopKLoc(5, interval),
            "pxap": PxAP(interval),
            "pxap_with_object": PxAP(interval, objects_only=True),
            "part_focus": PartFocus(),
        }
        if not hp.multilabel:  # kept by the evaluator only when the data provides ten_crop
            metrics["accuracy_ten_crop"] = ClassificationAccuracy(self.num_classes, ten_crop=True)
        if hp.union_box_threshold is not None:
            metrics["union_box_loc"] = UnionBoxLoc(hp.union_box_threshold)
            metrics["union_box_loc_ten_crop"] = UnionBoxLoc(hp.union_box_threshold, ten_crop=True)
        if class_names and "tumour" in class_names:
            metrics["skull_share"] = SkullShare(class_names.index("tumour"))
        metrics.update(self.configure_metrics())
        return metrics

    def build_evaluators(self, fields: set[str], class_names: list[str] | None = None) -> None:
        """One :class:`~wsol_lightning.metrics.Evaluator` per stage for data providing ``fields``."""
        for stage in STAGES:
            evaluator = Evaluator(self.evaluation_metrics(class_names), fields, self.hparams.evaluation_overlap)
            self.evaluators[stage] = evaluator.to(self.device)

    def setup(self, stage: str) -> None:
        """Build the evaluators for the datamodule's dataset; at fit, load ``init_from``."""
        if stage == "fit" and self.hparams.init_from is not None:
            rank_zero_info(load_matching_weights(self.model, self.hparams.init_from).report())
        if stage == "predict":
            return
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is not None and hasattr(datamodule, "provided_fields"):
            self.build_evaluators(set(datamodule.provided_fields), datamodule.class_names())

    def teardown(self, stage: str) -> None:
        """Stop the evaluators' worker threads at the end of fit/validate/test."""
        for evaluator in self.evaluators.values():
            evaluator.close()

    def _evaluator(self, stage: str, batch: WSOLBatch) -> Evaluator:
        """The stage's evaluator; without a datamodule declaring its fields, the first batch's fields."""
        if stage not in self.evaluators:
            fields = {"boxes"} | {f for f in OPTIONAL_MAP_FIELDS if batch.has(f)}
            if batch.has("ten_crop_images"):
                fields.add("ten_crop")
            if bool((batch.num_boxes == 0).any()):
                fields.add("images_without_object")
            self.build_evaluators(fields)
        return self.evaluators[stage]

    # -- checkpoints ----------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep the random states, so a resumed fit draws what the uninterrupted one would have."""
        name, keys, position, has_gauss, gauss = np.random.get_state()
        checkpoint["rng_states"] = {  # tensors and plain values: loadable with weights_only
            "torch": torch.get_rng_state(),
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(gauss)],
            "python": random.getstate(),
            **({"cuda": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {}),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Resuming a fit restores the random states of the checkpoint (every rank gets rank 0's)."""
        states = checkpoint.get("rng_states")
        if states is None or self._trainer is None or self.trainer.state.fn != "fit":
            return
        torch.set_rng_state(states["torch"])
        name, keys, position, has_gauss, gauss = states["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
        random.setstate(states["python"])
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])

    # -- targets --------------------------------------------------------------------------
    def _check_targets(self, batch: WSOLBatch) -> None:
        """The batch has multi-hot targets iff the model is multi-label (else a clear error)."""
        if self.hparams.multilabel and batch.multi_hot is None:
            raise ConfigError(
                "multilabel: true but the batch has no 'multi_hot' targets (set the MRI dataset's multilabel: true)"
            )
        if not self.hparams.multilabel and batch.multi_hot is not None:
            raise ConfigError(
                "the batch has multi-hot targets (the dataset's multilabel: true) but the model has multilabel: false"
            )

    def class_targets(self, batch: WSOLBatch) -> torch.Tensor:
        """Multi-hot float targets ``[B, C]``: the batch's ``multi_hot``, or the one-hot ``label``."""
        if self.hparams.multilabel:
            return batch.multi_hot.float()
        return F.one_hot(batch.label, self.num_classes).float()

    def classification_loss(self, logits: torch.Tensor, batch: WSOLBatch) -> dict[str, torch.Tensor]:
        """``{"ce": softmax CE on label}``, or with ``multilabel`` ``{"mlsm": multilabel soft margin}``.

        The multilabel soft margin on ``multi_hot`` is MCIS's single-image term (Eq. 7, ``L_s``).
        """
        if self.hparams.multilabel:
            return {"mlsm": label_loss(logits, batch.multi_hot, "mlsm")}
        return {"ce": F.cross_entropy(logits, batch.label)}

    # -- training -------------------------------------------------------------------------
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """With ``channels_last``, the images in the network's memory format."""
        if self.hparams.channels_last and isinstance(batch, WSOLBatch):
            batch.image = batch.image.contiguous(memory_format=torch.channels_last)
        return batch

    def training_step(self, batch: WSOLBatch, batch_idx: int) -> torch.Tensor:
        self._check_targets(batch)
        losses = self.training_losses(batch)
        total = torch.stack(list(losses.values())).sum()
        batch_size = len(batch)
        for name, value in losses.items():
            self.log(f"train/{name}", value.detach(), batch_size=batch_size)
        self.log("train/loss", total.detach(), prog_bar=True, batch_size=batch_size)
        return total

    # -- evaluation -----------------------------------------------------------------------
    def current_cam_threshold(self) -> float:
        """The CAM threshold chosen on validation (before the first validation epoch:
        ``initial_cam_threshold``, else 0.5)."""
        value = float(self.cam_threshold)
        return 0.5 if math.isnan(value) else value

    def cam_threshold_source(self) -> Literal["validation", "initial_cam_threshold", "default"]:
        """Where :meth:`current_cam_threshold` comes from."""
        value = float(self.cam_threshold)
        if math.isnan(value):
            return "default"
        return "initial_cam_threshold" if value == self.hparams.initial_cam_threshold else "validation"

    @torch.no_grad()
    def evaluation_maps(self, batch: WSOLBatch) -> tuple[torch.Tensor, np.ndarray]:
        """Logits and the GT-class maps resized to the evaluated image size (float64 numpy ``[B, H, W]``)."""
        out = self.model.localize(batch.image, batch.label)
        return out.logits, resize_cam(_to_cpu_numpy64(out.maps), tuple(batch.image.shape[-2:]))

    @torch.no_grad()
    def maps_of_class(self, batch: WSOLBatch, out: LocalizationOutput, index: int) -> np.ndarray:
        """Raw maps of class ``index`` for every image (images of that class reuse their evaluated map)."""
        maps = out.maps.clone()
        others = (batch.label != index).nonzero().flatten()
        if len(others):
            classes = torch.full_like(batch.label[others], index)
            maps[others] = self.model.localize(batch.image[others], classes).maps.to(maps.dtype)
        return _to_cpu_numpy64(maps)

    @torch.no_grad()
    def _evaluation_step(self, batch: WSOLBatch, stage: str) -> None:
        self._check_targets(batch)
        out = self.model.localize(batch.image, batch.label)
        evaluator = self._evaluator(stage, batch)
        map_classes = {c for m in evaluator.metrics.values() for c in getattr(m, "map_classes", ())}
        annotations = {
            f: getattr(batch, f).cpu() for f in (*OPTIONAL_MAP_FIELDS, "multi_hot") if getattr(batch, f) is not None
        }
        crop_outputs = self.ten_crop_outputs(batch)
        ten_crop_scores = None
        if crop_outputs is not None:
            ten_crop_scores = crop_averaged_scores(torch.cat([o.logits for o in crop_outputs]), len(batch)).cpu()
        extras = self.evaluation_extras(batch, out, crop_outputs)
        evaluator.update(
            EvaluationStep(
                labels=batch.label.cpu(),
                logits=out.logits.detach().float().cpu(),
                raw_maps=_to_cpu_numpy64(out.maps),
                image_size=tuple(batch.image.shape[-2:]),
                boxes=[b.cpu().numpy() for b in batch.gt_boxes()],
                annotations=annotations,
                class_maps={c: self.maps_of_class(batch, out, c) for c in map_classes},
                extras=apply_to_collection(extras, torch.Tensor, lambda t: t.detach().float().cpu()),
                multilabel=bool(self.hparams.multilabel),
                cam_threshold=self.current_cam_threshold(),
                ten_crop_scores=ten_crop_scores,
            )
        )

    def evaluation_extras(
        self, batch: WSOLBatch, out: LocalizationOutput, crop_outputs: list[Any] | None
    ) -> dict[str, Any]:
        """The network's extra outputs an evaluation step carries (``out.extras``); a method may add what its
        metrics read, e.g. from ``crop_outputs`` (:meth:`ten_crop_outputs`; DANet's ten-crop level ranks)."""
        return dict(out.extras)

    @torch.no_grad()
    def ten_crop_outputs(self, batch: WSOLBatch) -> list[Any] | None:
        """The network's forward (no maps) on each image's ten crops, ``B`` crops per output, or ``None``."""
        if batch.ten_crop_images is None:
            return None
        crops = batch.ten_crop_images.flatten(0, 1)
        if self.hparams.channels_last:
            crops = crops.contiguous(memory_format=torch.channels_last)
        return [self.model(chunk) for chunk in crops.split(len(batch))]

    def validation_step(self, batch: WSOLBatch, batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: WSOLBatch, batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def _evaluation_epoch_end(self, stage: str) -> dict[str, torch.Tensor]:
        if stage not in self.evaluators:
            return {}
        evaluator: Evaluator = self.evaluators[stage]
        threshold = float(self.cam_threshold)
        reference = None if stage != "test" or math.isnan(threshold) else threshold
        values = evaluator.compute(reference_threshold=reference)
        if "maxboxacc_v2" in values:
            self._box_accuracy_curves[stage] = evaluator["maxboxacc_v2"].box_accuracy_curve()
        if stage == "val" and not self.trainer.sanity_checking and "gt_known_loc" in values:
            self.cam_threshold.fill_(float(evaluator["gt_known_loc"].best_threshold()))
        values = {f"{stage}/{k}": torch.as_tensor(v, dtype=torch.float32) for k, v in values.items()}
        shown = {f"{stage}/{k}" for k in PROGRESS_BAR_METRICS}
        self.log_dict({k: v for k, v in values.items() if k in shown}, prog_bar=True)
        self.log_dict({k: v for k, v in values.items() if k not in shown})
        evaluator.reset()
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
    def predict_step(self, batch: WSOLBatch, batch_idx: int) -> dict[str, Any]:
        """Top-1 class, its score, every class's probability and the top-1 class's map.

        The map is the raw localization map resized to the image size (not normalized), as the
        evaluation feeds it to the metrics. Probabilities are softmaxes, or sigmoids with ``multilabel``.
        """
        out = self.model.localize(batch.image)
        resized = resize_cam(_to_cpu_numpy64(out.maps), tuple(batch.image.shape[-2:]))
        scores = out.logits.float()
        probabilities = torch.sigmoid(scores) if self.hparams.multilabel else F.softmax(scores, dim=1)
        return {
            "image_id": batch.image_id,
            "class": out.classes.cpu(),
            "score": probabilities.gather(1, out.classes[:, None]).squeeze(1).cpu(),
            "probabilities": probabilities.cpu(),
            "cam": torch.from_numpy(resized),
        }

    # -- optimization ---------------------------------------------------------------------
    def parameter_groups(self) -> list[dict[str, Any]]:
        """Backbone parameters at ``lr``; new layers and head-lr backbone units (or ``head_lr_prefixes``) at the multiplier.

        With ``bias_lr_multiplier != 1`` each group is split into weights and biases, the biases at
        the group's rate times the multiplier.
        """
        hp = self.hparams
        backbone = getattr(self.model, "backbone", None)
        base_names: set[str] = set()
        if hp.head_lr_prefixes is not None:
            prefixes = tuple(hp.head_lr_prefixes)
            base_names = {n for n, _ in self.model.named_parameters() if not n.startswith(prefixes)}
        elif backbone is not None:
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
