"""The command line: ``wsol``, ``lightning`` and ``python -m wsol_lightning`` (one LightningCLI).

``wsol fit --config experiments/acol.yaml`` trains, ``validate``/``test`` evaluate (``--ckpt_path``),
``predict`` localizes (``--data.predict_dir DIR --output_dir OUT`` writes boxes, maps and overlays of a
folder of images); ``wsol export`` writes a TorchScript/ONNX model (:mod:`wsol_lightning.export`),
``wsol compare RUN_DIR...`` tabulates runs (:mod:`wsol_lightning.compare`), ``wsol benchmark`` runs
methods over seeds against CAM (:mod:`wsol_lightning.benchmark`), ``wsol tune`` searches
hyperparameters on the val split (:mod:`wsol_lightning.tune`). The model is chosen by ``class_path``
(any :class:`WSOLModule` subclass; short names such as ``CAM`` resolve once the package is
imported); the data is always :class:`WSOLDataModule`, whose ``num_classes`` and ``multilabel`` are
linked into the model.

A run is a folder, ``trainer.default_root_dir``: its checkpoints (``checkpoints/last.ckpt``, written
every epoch and every 100 steps, see :class:`~wsol_lightning.callbacks.ResumableCheckpoint`), W&B
files, CAM images, ``config.yaml`` and ``summary.json`` all go there. Running a config again into
the same folder overwrites its checkpoint (resume it instead with ``--ckpt_path last``); give another
``--trainer.default_root_dir`` to keep both.

Exit status: 0 on success, 2 on a user error (one line on stderr: what is wrong and what to do),
1 on an unexpected failure (with its traceback), 130 after Ctrl-C (``fit`` saves ``last.ckpt`` first).
Off a terminal, progress is printed as plain lines (:class:`~wsol_lightning.callbacks.PlainProgress`).

Weights & Biases: when no API key is configured (``WANDB_API_KEY`` or a ``~/.netrc`` entry) and
``WANDB_MODE`` is unset, runs are logged offline (``wandb sync`` uploads them later), so a run never
waits for the network. With a ``WandbLogger`` every run gets method, backbone and dataset as tags
(group: the method, unless the config sets one), its resolved config in the run config and a
:class:`~wsol_lightning.callbacks.WandbReport` (curves, gallery, test summary row).
"""

from __future__ import annotations

import argparse
import netrc
import os
import re
import signal
import sys
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import Any, Optional

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# The datamodule resumes its training order itself (WSOLDataModule.state_dict), which Lightning cannot see.
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")
# run_cli passes the command line itself (with WSOL_SMOKE's additions).
warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended to run from within Python")

import torch  # noqa: E402
from pytorch_lightning import Callback, Trainer, seed_everything  # noqa: E402
from pytorch_lightning.callbacks import ModelCheckpoint, ProgressBar, RichProgressBar  # noqa: E402
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI  # noqa: E402
from pytorch_lightning.loggers import WandbLogger  # noqa: E402

from wsol_lightning import __version__  # noqa: E402
from wsol_lightning.callbacks import (  # noqa: E402
    PlainProgress,
    ResumableCheckpoint,
    RunSummary,
    WandbConfigCallback,
    WandbReport,
    WSOLPredictionWriter,
)
from wsol_lightning.callbacks.wandb_report import tag_wandb_logger_config  # noqa: E402
from wsol_lightning.data import WSOLDataModule  # noqa: E402
from wsol_lightning.errors import CheckpointError, find_user_error  # noqa: E402
from wsol_lightning.models import WSOLModule  # noqa: E402
from wsol_lightning.models.components.init_from import read_network_state  # noqa: E402

#: Subcommands handled outside LightningCLI, with the module whose ``main(args) -> int`` runs them.
TOOLS = {
    "export": "wsol_lightning.export",
    "compare": "wsol_lightning.compare",
    "benchmark": "wsol_lightning.benchmark",
    "tune": "wsol_lightning.tune",
}
#: ``WSOL_SMOKE=1``: every Lightning subcommand runs a couple of steps (CI runs the README's commands so).
SMOKE_ARGS = {
    "fit": ["--trainer.max_steps", "2", "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0"],
    "validate": ["--trainer.limit_val_batches", "1"],
    "test": ["--trainer.limit_test_batches", "1"],
    "predict": ["--trainer.limit_predict_batches", "1"],
}
#: ``--ckpt_path`` values Lightning resolves itself.
CKPT_ALIASES = ("last", "best", "hpc", "registry")
INTERRUPTED_STATUS = 130


def model_flags(tokens: Iterable[str]) -> set[str]:
    """The model init arguments that command-line tokens set (``--model.init_args.x`` / ``--model.x``)."""
    names = set()
    for token in tokens:
        match = re.match(r"--model\.(?:init_args\.)?([A-Za-z_]\w*)(?:=|$)", token)
        if match and match.group(1) not in ("class_path", "init_args", "dict_kwargs", "help"):
            names.add(match.group(1))
    return names


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


def check_checkpoint(ckpt_path: str, config_class_path: str | None, allow_model_mismatch: bool) -> None:
    """A ``--ckpt_path`` file exists, is a readable checkpoint, and holds the configured model class.

    Raises:
        CheckpointError: one of the three does not hold (the message says which, with both names
            for a class mismatch and the flag that allows it).
    """
    path = Path(ckpt_path)
    if not path.is_file():
        raise CheckpointError(
            f"--ckpt_path {ckpt_path}: no such file; give a checkpoint written by `wsol fit` (e.g. "
            f"<default_root_dir>/checkpoints/last.ckpt) or `--ckpt_path last` to resume the run folder's own"
        )
    unreadable = f"--ckpt_path {ckpt_path}: not a readable checkpoint (truncated, or not a file written by `wsol fit`)"
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{unreadable}: it is not a torch.save archive")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any decoding failure means "not a checkpoint"
        detail = str(err).split("WeightsUnpickler error:")[-1].strip().split("\n")[0] or type(err).__name__
        raise CheckpointError(f"{unreadable}: {detail}") from None
    stored = checkpoint.get("hyper_parameters", {}).get("_class_path")
    if stored and config_class_path and not allow_model_mismatch:
        if stored.rsplit(".", 1)[-1] != config_class_path.rsplit(".", 1)[-1]:
            raise CheckpointError(
                f"--ckpt_path {ckpt_path} holds a {stored.rsplit('.', 1)[-1]} model but the config asks for "
                f"{config_class_path.rsplit('.', 1)[-1]}; pass the matching config, or --allow_model_mismatch "
                "true to run the checkpoint's model with this config's other settings"
            )


def condense_parser_error(message: str) -> str:
    """One line from jsonargparse's nested error report: the key and the innermost reason."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    key = None
    in_class = False  # the next key is an init argument of the class named on the line before
    for line in lines:
        if (match := re.search(r'[Pp]arser key "([^"]+)"', line)):
            key = match.group(1) if key is None else (f"{key}.init_args.{match.group(1)}" if in_class else key)
        in_class = line.startswith("- Problem with given class_path")
    reasons = [
        line.removeprefix("- ")
        for line in lines
        if not line.startswith(("Subtypes:", "Errors:", "Given value", "Does not validate", "Parser key"))
        and "Expected a <class 'NoneType'>" not in line
        and not line.startswith("- Problem with given class_path")
    ]
    given = next((line.removeprefix("Given value:").strip() for line in lines if line.startswith("Given value:")), None)
    reason = reasons[-1] if reasons else lines[-1]
    if key == "data.dataset" and "dot import path" in reason:
        reason += " (choose one of Synthetic, SyntheticMRI, CUB, ILSVRC, OpenImages, MRI)"
    text = f"{key}: {reason}" if key else reason
    if given and given not in text and len(given) < 80 and not given.startswith(("NestedArg", "Namespace")):
        text += f" (given: {given})"
    return text


class _Interrupts:
    """Remembers a Ctrl-C outside ``fit`` (where Lightning turns it into exit status 1)."""

    seen = False

    @classmethod
    def handler(cls, signum: int, frame: FrameType | None) -> None:
        cls.seen = True
        raise KeyboardInterrupt


class WSOLCLI(LightningCLI):
    """LightningCLI with the package's run folder, checkpoints, progress and errors (module docstring)."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.multilabel", "model.init_args.multilabel", apply_on="instantiate")

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> LightningArgumentParser:
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        parser.add_argument(
            "--allow_model_mismatch", type=bool, default=False,
            help="run a --ckpt_path whose model class differs from the config's (default: refused)",
        )
        if subcommand == "predict":
            parser.add_argument(
                "--output_dir", type=Optional[str], default=None,
                help="write boxes, maps and overlays under this folder (adds a WSOLPredictionWriter with its "
                "defaults; add the callback yourself for its other options)",
            )
        return parser

    def _set_seed(self) -> None:
        """``seed_everything`` as LightningCLI does, without its log line."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        seed = config.get("seed_everything")
        if seed is False:
            return
        config["seed_everything"] = seed_everything(None if seed is True else seed, workers=True, verbose=False)

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        self._argv = [str(a) for a in (sys.argv[1:] if args is None else args)] if isinstance(args, list | None) else []
        super().parse_arguments(parser, args)

    def _command_line_model_args(self) -> set[str]:
        return model_flags(getattr(self, "_argv", []))

    def _parse_ckpt_path(self) -> None:
        """Refuse a missing, unreadable or other-method checkpoint, then read its hyperparameters.

        Lightning puts the checkpoint's hyperparameters over the whole configuration; model flags
        given on the command line (``wsol test --ckpt_path ... --model.init_args.scg_mode high``)
        win over the checkpoint's values, so evaluating a trained model under other inference
        settings does what it says.
        """
        subcommand = self.config.get("subcommand")
        given: dict[str, Any] = {}
        if subcommand:
            config = self.config[subcommand]
            ckpt_path = config.get("ckpt_path")
            if ckpt_path and ckpt_path not in CKPT_ALIASES:
                check_checkpoint(ckpt_path, config.get("model", {}).get("class_path"), config.get("allow_model_mismatch"))
            init_args = config.get("model.init_args")
            if ckpt_path and init_args is not None:
                given = {k: init_args[k] for k in self._command_line_model_args() if k in init_args}
        super()._parse_ckpt_path()
        for key, value in given.items():
            self.config[subcommand][f"model.init_args.{key}"] = value
            dict_kwargs = self.config[subcommand].get("model.dict_kwargs")
            if isinstance(dict_kwargs, dict):
                dict_kwargs.pop(key, None)

    def before_instantiate_classes(self) -> None:
        """A fit's ``init_from`` file readable; W&B: tags and group before the logger exists, files under the run folder."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        init_from = config.get("model.init_args.init_from") if self.subcommand == "fit" else None
        if init_from:
            read_network_state(init_from)  # its one-line error before the trainer starts
        tag_wandb_logger_config(config)
        root = config.get("trainer.default_root_dir") or os.getcwd()
        loggers = config.get("trainer.logger")
        for logger in loggers if isinstance(loggers, list) else [loggers]:
            if getattr(logger, "class_path", "").endswith("WandbLogger") and logger.init_args.get("save_dir") in (None, "."):
                logger.init_args.save_dir = root

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Callback]) -> Trainer:
        """Add the run's checkpoint, progress and summary callbacks the config does not already have."""
        configured = list(config.get("callbacks") or []) + list(callbacks)
        extra: list[Callback] = [RunSummary()]
        if config.get("enable_checkpointing") is not False and not any(isinstance(c, ModelCheckpoint) for c in configured):
            extra.append(ResumableCheckpoint())
        if not any(isinstance(c, ProgressBar) for c in configured):
            if config.get("enable_progress_bar") is not False and sys.stdout.isatty():
                extra.append(RichProgressBar())
            else:
                config["enable_progress_bar"] = False
                extra.append(PlainProgress())
        trainer = super()._instantiate_trainer(config, [*callbacks, *extra])
        if any(isinstance(logger, WandbLogger) for logger in trainer.loggers) and not any(
            isinstance(c, WandbReport) for c in trainer.callbacks
        ):
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

    @property
    def interrupted(self) -> bool:
        """Whether Ctrl-C stopped the fit (its checkpoint callback saved ``last.ckpt`` first)."""
        trainer = getattr(self, "trainer", None)
        return any(getattr(c, "interrupted", False) for c in (trainer.callbacks if trainer else []))


def run_cli(args: list[str] | None = None) -> WSOLCLI:
    """Run a Lightning subcommand (``fit``, ``validate``, ``test``, ``predict``) and return the CLI.

    For programs and notebooks that need the trainer, model or datamodule afterwards; the console
    scripts call :func:`main`, which returns an exit status instead. Parse errors raise
    ``argparse.ArgumentError`` (``main`` prints them as one line). With the environment variable
    ``WSOL_SMOKE=1`` every subcommand runs a couple of batches only (:data:`SMOKE_ARGS`).
    """
    configure_wandb_mode()
    argv = list(sys.argv[1:] if args is None else args)
    if os.environ.get("WSOL_SMOKE") and argv[:1] and argv[0] in SMOKE_ARGS:
        argv += SMOKE_ARGS[argv[0]]
    return WSOLCLI(
        WSOLModule,
        WSOLDataModule,
        subclass_mode_model=True,
        subclass_mode_data=False,
        seed_everything_default=0,
        save_config_callback=WandbConfigCallback,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={
            "prog": program_name(args),
            "version": __version__,
            "default_env": True,
            "exit_on_error": False,
            "epilog": "Also: wsol export, wsol compare, wsol benchmark, wsol tune (each with --help).",
        },
        args=argv,
    )


def program_name(args: list[str] | None = None) -> str:
    """The name the user typed: ``wsol``/``lightning``, or ``python -m wsol_lightning``."""
    if args is not None:
        return "wsol"
    name = Path(sys.argv[0]).name
    return "python -m wsol_lightning" if name == "__main__.py" else name


def _error(args: list[str] | None, message: str) -> int:
    print(f"{program_name(args)}: error: {message}", file=sys.stderr)
    return 2


def main(args: list[str] | None = None) -> int:
    """Entry point of the console scripts; returns the exit status (module docstring).

    ``args`` defaults to ``sys.argv[1:]``.
    """
    argv = sys.argv[1:] if args is None else list(args)
    if argv[:1] and argv[0] in TOOLS:
        import importlib

        return importlib.import_module(TOOLS[argv[0]]).main(argv[1:])
    try:
        previous = signal.signal(signal.SIGINT, _Interrupts.handler)
    except ValueError:  # not the main thread
        previous = None
    try:
        cli = run_cli(args)
    except argparse.ArgumentError as err:
        user = find_user_error(err)
        return _error(args, str(user) if user is not None else condense_parser_error(str(err)))
    except SystemExit as exit_:
        if _Interrupts.seen:
            return INTERRUPTED_STATUS
        return exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 2)
    except KeyboardInterrupt:
        return INTERRUPTED_STATUS
    except Exception as err:
        user = find_user_error(err)
        if user is None:
            raise
        return _error(args, str(user))
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    return INTERRUPTED_STATUS if cli.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
