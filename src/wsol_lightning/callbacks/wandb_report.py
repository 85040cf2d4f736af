"""What a W&B run carries for comparing methods: resolved config, box-accuracy curves, gallery, summary.

* :class:`WandbConfigCallback` (the CLI's ``save_config_callback``): besides ``config.yaml`` in
  the log folder, the full resolved config goes into the W&B run config with ``method``,
  ``backbone`` and ``dataset`` at the top level (the CLI also puts them in the run's tags and
  group: :func:`tag_wandb_logger_config`).
* :class:`WandbReport` (added by the CLI whenever the logger is a ``WandbLogger``): the per-IoU
  BoxAcc vs CAM threshold line plot after every validation and test, a gallery table (CAM
  overlay with GT boxes in green and the predicted box in red, IoU) at the end of ``fit`` and
  ``test``, and one summary row (method, backbone, dataset, test metrics) at the end of ``test``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytorch_lightning as pl
import yaml
from jsonargparse import Namespace
from pytorch_lightning.cli import SaveConfigCallback
from pytorch_lightning.loggers import WandbLogger
from pytorch_lightning.utilities import rank_zero_only

from wsol_lightning.callbacks.cam_visualizer import CAMVisualizer, _wandb_boxes
from wsol_lightning.cam import box_iou


def run_identity(model_class: str, backbone: str, dataset: str) -> dict[str, str]:
    """``{"method", "backbone", "dataset"}`` of a run; ``model_class`` may be a class path (``...ACoL``)."""
    method = model_class.rsplit(".", 1)[-1].lower()
    return {"method": method, "backbone": str(backbone), "dataset": str(dataset)}


def dataset_name(dataset: Any) -> str:
    """The short name of a ``data.dataset`` value: a spec, its ``{"class_path": ...}`` form, or a name."""
    if isinstance(dataset, dict):
        dataset = str(dataset.get("class_path", "unknown")).rsplit(".", 1)[-1]
    elif not isinstance(dataset, str):
        return str(getattr(dataset, "name", "unknown"))
    return {"syntheticmri": "synthetic_mri"}.get(dataset.lower(), dataset.lower())


def identity_from_config(config: dict[str, Any] | Namespace) -> dict[str, str]:
    """A CLI config's run identity (``model.class_path``, ``model.init_args.backbone``, ``data.dataset``)."""
    plain = config.as_dict() if isinstance(config, Namespace) else config
    model = plain.get("model") or {}
    return run_identity(
        model.get("class_path", "unknown"),
        (model.get("init_args") or {}).get("backbone", "unknown"),
        dataset_name((plain.get("data") or {}).get("dataset", "unknown")),
    )


def tag_wandb_logger_config(config: Namespace) -> None:
    """Add method/backbone/dataset to the tags of every ``WandbLogger`` in a parsed CLI config (in place).

    The group defaults to the method; a group set in the config is kept. ``config`` is one
    subcommand's parsed config (``trainer.logger`` one class spec or a list of them).
    """
    identity = identity_from_config(config)
    loggers = config.get("trainer.logger")
    for logger in loggers if isinstance(loggers, list) else [loggers]:
        if not isinstance(logger, Namespace) or not str(logger.get("class_path", "")).endswith("WandbLogger"):
            continue
        tags = list(logger.get("init_args.tags") or [])
        logger["init_args.tags"] = tags + [value for value in identity.values() if value not in tags]
        if not logger.get("init_args.group"):
            logger["init_args.group"] = identity["method"]


class WandbConfigCallback(SaveConfigCallback):
    """Saves ``config.yaml`` as LightningCLI does and logs the resolved config to W&B runs (rank zero)."""

    def save_config(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        wandb_loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if not wandb_loggers:
            return
        resolved = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in wandb_loggers:
            logger.experiment.config.update(
                {**identity_from_config(resolved), "cli": resolved}, allow_val_change=True
            )


def best_iou(predicted: np.ndarray, gt_boxes: np.ndarray) -> float:
    """The highest IoU between any predicted box and any GT box (inclusive pixel boxes); 0 without GT."""
    predicted, gt_boxes = np.asarray(predicted).reshape(-1, 4), np.asarray(gt_boxes).reshape(-1, 4)
    if not len(gt_boxes):
        return 0.0
    return float(box_iou(predicted[:, None], gt_boxes[None]).max())


class WandbReport(pl.Callback):
    """Logs the comparison material of a run to its ``WandbLogger`` (nothing without one).

    Args:
        gallery_images: images in the gallery table (the first of the split; 0 turns it off).
        curves: log the BoxAcc vs CAM threshold line plot after each validation and test.
    """

    def __init__(self, gallery_images: int = 8, curves: bool = True) -> None:
        self.gallery_images = gallery_images
        self.curves = curves

    @staticmethod
    def _loggers(trainer: pl.Trainer) -> list[WandbLogger]:
        return [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]

    def _log(self, trainer: pl.Trainer, entries: dict[str, Any]) -> None:
        for logger in self._loggers(trainer):
            logger.experiment.log({**entries, "trainer/global_step": trainer.global_step})

    def _log_curve(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        import wandb

        if not self.curves or not hasattr(pl_module, "box_accuracy_curve"):
            return
        try:
            thresholds, curve, ious = pl_module.box_accuracy_curve(stage)
        except LookupError:  # no boxes in this split (e.g. MRI slices without tumour only)
            return
        plot = wandb.plot.line_series(
            xs=thresholds.tolist(), ys=curve.tolist(), keys=[f"IoU {iou}%" for iou in ious],
            title=f"{stage}: BoxAcc vs CAM threshold", xname="CAM threshold",
        )
        self._log(trainer, {f"{stage}/box_acc_curve": plot})

    def gallery_table(self, pl_module: pl.LightningModule, dataset: Any) -> Any:
        """A ``wandb.Table``: image (CAM overlay, GT and predicted boxes), label, boxes and IoU."""
        import wandb

        pictures, annotations = CAMVisualizer(num_images=self.gallery_images).render(pl_module, dataset)
        table = wandb.Table(columns=["image", "label", "gt_boxes", "pred_box", "iou"])
        for picture, annotation in zip(pictures, annotations):
            table.add_data(
                wandb.Image(picture, boxes=_wandb_boxes(annotation)),
                annotation["label"],
                np.asarray(annotation["gt"]).reshape(-1, 4).tolist(),
                np.asarray(annotation["pred"]).reshape(-1, 4).tolist(),
                best_iou(annotation["pred"], annotation["gt"]),
            )
        return table

    def _log_gallery(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        datamodule = trainer.datamodule
        if not self.gallery_images or datamodule is None or not hasattr(datamodule, "get_dataset"):
            return
        was_training = pl_module.training
        pl_module.eval()
        table = self.gallery_table(pl_module, datamodule.get_dataset(stage))
        pl_module.train(was_training)
        self._log(trainer, {f"{stage}/gallery": table})

    @staticmethod
    def summary_row(trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        """Method, backbone, dataset and every ``test/`` metric of the last test (floats)."""
        datamodule = trainer.datamodule
        identity = run_identity(
            type(pl_module).__name__,
            getattr(pl_module.hparams, "backbone", "unknown"),
            dataset_name(getattr(datamodule, "dataset", "unknown")),
        )
        metrics = {
            key: float(value)
            for key, value in sorted(trainer.callback_metrics.items())
            if key.startswith("test/")
        }
        return {**identity, **metrics}

    @rank_zero_only
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and self._loggers(trainer):
            self._log_curve(trainer, pl_module, "val")

    @rank_zero_only
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._loggers(trainer):
            self._log_gallery(trainer, pl_module, "val")

    @rank_zero_only
    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import wandb

        if not self._loggers(trainer):
            return
        self._log_curve(trainer, pl_module, "test")
        self._log_gallery(trainer, pl_module, "test")
        row = self.summary_row(trainer, pl_module)
        self._log(trainer, {"test/summary": wandb.Table(columns=list(row), data=[list(row.values())])})
        for logger in self._loggers(trainer):
            logger.experiment.summary.update(row)
