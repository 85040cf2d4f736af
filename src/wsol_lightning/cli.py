"""The command line: ``wsol``, ``lightning`` and ``python -m wsol_lightning`` (one LightningCLI).

``wsol fit --config experiments/acol.yaml`` trains, ``validate``/``test`` evaluate (``--ckpt_path``),
``predict`` localizes (``--data.predict_dir DIR --output_dir OUT`` writes boxes, maps and overlays of a
folder of images), ``wsol export`` writes a TorchScript/ONNX model (:mod:`wsol_lightning.export`),
``wsol compare RUN_DIR...`` tabulates and plots runs against each other (:mod:`wsol_lightning.compare`). The model is chosen by ``class_path`` (any :class:`WSOLModule` subclass, short
names such as ``CAM`` resolve once the package is imported); the data is always
:class:`WSOLDataModule`, whose ``num_classes`` and ``multilabel`` are linked into the model.

Weights & Biases: when no API key is configured (``WANDB_API_KEY`` or a ``~/.netrc`` entry) and
``WANDB_MODE`` is unset, runs are logged offline (``wandb sync`` uploads them later), so a run never
waits for the network. With a ``WandbLogger`` every run gets method, backbone and dataset as tags
(group: the method, unless the config sets one), its resolved config in the run config and a
:class:`~wsol_lightning.callbacks.WandbReport` (curves, gallery, test summary row).
"""

from __future__ import annotations

import netrc
import os
import sys
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from pytorch_lightning import Trainer  # noqa: E402
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI  # noqa: E402
from pytorch_lightning.loggers import WandbLogger  # noqa: E402

from wsol_lightning import __version__  # noqa: E402
from wsol_lightning.callbacks import WandbConfigCallback, WandbReport, WSOLPredictionWriter  # noqa: E402
from wsol_lightning.callbacks.wandb_report import tag_wandb_logger_config  # noqa: E402
from wsol_lightning.data import WSOLDataModule  # noqa: E402
from wsol_lightning.data.errors import DatasetNotFoundError, MetadataError  # noqa: E402
from wsol_lightning.models import WSOLModule  # noqa: E402
from wsol_lightning.models.components import PretrainedWeightsNotFoundError  # noqa: E402

#: Errors caused by the user's data or configuration: printed as one message, no traceback.
USER_ERRORS = (DatasetNotFoundError, MetadataError, PretrainedWeightsNotFoundError)


def _wandb_has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc(os.path.expanduser("~/.netrc")).authenticators("api.wandb.ai")
    except (FileNotFoundError, netrc.NetrcParseError):
        return False
    return auth is not None


def configure_wandb_mode() -> str:
    """Default ``WANDB_MODE`` to ``offline`` when no credentials exist; returns the mode in force."""
    if "WANDB_MODE" not in os.environ and not _wandb_has_credentials():
        os.environ["WANDB_MODE"] = "offline"
    os.environ.setdefault("WANDB_SILENT", "true")
    return os.environ.get("WANDB_MODE", "online")


class WSOLCLI(LightningCLI):
    """LightningCLI with ``predict --output_dir``.

    The datamodule's ``num_classes`` and ``multilabel`` are linked into the model.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.multilabel", "model.init_args.multilabel", apply_on="instantiate")

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> LightningArgumentParser:
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand == "predict":
            parser.add_argument(
                "--output_dir", type=Optional[str], default=None,
                help="write boxes, maps and overlays under this folder (adds a WSOLPredictionWriter with its "
                "defaults; add the callback yourself for its other options)",
            )
        return parser

    def before_instantiate_classes(self) -> None:
        """Tag W&B runs with method/backbone/dataset (and group them by method) before the logger exists."""
        tag_wandb_logger_config(self.config[self.subcommand] if self.subcommand else self.config)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The trainer, with a :class:`WandbReport` when a ``WandbLogger`` logs and none is configured."""
        trainer = super().instantiate_trainer(**kwargs)
        has_wandb = any(isinstance(logger, WandbLogger) for logger in trainer.loggers)
        if has_wandb and not any(isinstance(c, WandbReport) for c in trainer.callbacks):
            trainer.callbacks.append(WandbReport())
        return trainer

    def before_predict(self) -> None:
        """Attach the writer for ``--output_dir``; with a writer, predictions are not also kept in memory."""
        config = self.config_init["predict"]
        if config.get("output_dir"):
            self.trainer.callbacks.append(WSOLPredictionWriter(config["output_dir"]))
        has_writer = any(isinstance(c, WSOLPredictionWriter) for c in self.trainer.callbacks)
        if has_writer and config.get("return_predictions") is None:
            config["return_predictions"] = False


def run_cli(args: list[str] | None = None) -> WSOLCLI:
    """Run a Lightning subcommand (``fit``, ``validate``, ``test``, ``predict``) and return the CLI.

    For programs and notebooks that need the trainer, model or datamodule afterwards; the console
    scripts call :func:`main`, which returns an exit status instead.
    """
    configure_wandb_mode()
    return WSOLCLI(
        WSOLModule,
        WSOLDataModule,
        subclass_mode_model=True,
        subclass_mode_data=False,
        seed_everything_default=0,
        save_config_callback=WandbConfigCallback,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={
            "prog": _program_name(args),
            "version": __version__,
            "default_env": True,
            "epilog": "Also: wsol export --help (a checkpoint as TorchScript or ONNX), "
            "wsol compare --help (a method x metric table and bar chart of runs).",
        },
        args=args,
    )


def _program_name(args: list[str] | None) -> str:
    """The name the user typed: ``wsol``/``lightning``, or ``python -m wsol_lightning``."""
    if args is not None:
        return "wsol"
    name = Path(sys.argv[0]).name
    return "python -m wsol_lightning" if name == "__main__.py" else name


def main(args: list[str] | None = None) -> int:
    """Entry point of the console scripts; returns the exit status (0 success, 2 user error).

    ``args`` defaults to ``sys.argv[1:]``.
    """
    argv = sys.argv[1:] if args is None else list(args)
    if argv[:1] == ["export"]:
        from wsol_lightning.export import main as export_main

        export_main(argv[1:])
        return 0
    if argv[:1] == ["compare"]:
        from wsol_lightning.compare import main as compare_main

        compare_main(argv[1:])
        return 0
    try:
        run_cli(args)
    except USER_ERRORS as err:
        print(f"{_program_name(args)}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
