"""``wsol tune``: hyperparameter search on the val split with Optuna, from one machine to many.

::

    wsol tune --config experiments/adl.yaml --list-space                      # what is searched
    wsol tune --config experiments/adl.yaml --n_trials 30 --study adl         # runs/tune/adl.db
    wsol tune --config experiments/adl.yaml --n_trials 3 --study demo -- --trainer.max_epochs 1

Each method declares its search space next to its defaults (``SEARCH_SPACE`` of its LightningModule,
:mod:`wsol_lightning.models.search_space`); a model init argument given after ``--`` is fixed and
left out of the search. Each trial is a normal run: ``wsol fit`` of the config with the overrides and
the trial's values (``--model.init_args.<name> <value>``) in a subprocess, into
``OUTPUT/<study>/trial_<n>`` (its ``fit.log`` there), as its own W&B run in the group ``<study>``
when the config logs to W&B. A :class:`TrialReporter` added to the fit reports the val split's
MaxBoxAccV2 (PxAP when the data has masks but no boxes) after every epoch to the study, so the
median pruner can stop a trial early; the trial's value is its last epoch's (the checkpoint
``wsol test`` would test). The test split is never touched by a trial.

The study lives in ``--storage`` (default: the SQLite file ``OUTPUT/<study>.db``); any number of
``wsol tune`` processes, on any machines that reach the storage (PostgreSQL or MySQL for several
machines), work on one study. ``--n_trials N`` is the study's target: a process stops once the
study holds N finished (complete or pruned) trials, or after N trials of its own, so running the
command again continues the study. A trial that raises (diverged loss, NaN metric, any error) is
recorded as failed with its reason (user attribute ``fail_reason``) and the study goes on; a
killed tuner loses only its running trial, which the next process marks failed (heartbeat).

At the end the best configuration is written as ``OUTPUT/<study>_best.yaml``, a complete config
(the config, the overrides and the best values) that ``wsol fit --config`` accepts, into the run
folder ``OUTPUT/<study>_best``; ``--test-best`` trains it and reports its test metrics once.

Exit status: 0 when the study has a best trial, 1 when no trial finished (or ``--test-best``
failed), 2 on a user error (one line), 130 after Ctrl-C (run the command again to continue).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
import yaml
from pytorch_lightning import Callback, LightningModule, Trainer

from wsol_lightning import models
from wsol_lightning.benchmark import METRICS, config_uses_wandb, failure_reason
from wsol_lightning.benchmark import run as fit_and_test
from wsol_lightning.cli import model_flags
from wsol_lightning.errors import UserError
from wsol_lightning.models import WSOLModule
from wsol_lightning.models.search_space import Param

STATUS_NAME = "tune_trial.json"
METRIC_KEYS = ("maxboxacc_v2", "pxap")  # "auto": the first one the val split logs
HEARTBEAT_SECONDS = 60
#: ``--pruner`` choices (the trials' reporters build the same pruner: Optuna does not store it)
PRUNERS = {"median": optuna.pruners.MedianPruner, "none": optuna.pruners.NopPruner}


# -- what is searched -------------------------------------------------------------------------
def _override(overrides: Sequence[str], key: str) -> str | None:
    """The value of ``--key V`` / ``--key=V`` in ``overrides`` (the last one), or ``None``."""
    value = None
    for index, token in enumerate(overrides):
        if token == f"--{key}" and index + 1 < len(overrides):
            value = overrides[index + 1]
        elif token.startswith(f"--{key}="):
            value = token.split("=", 1)[1]
    return value


def model_class(configs: Sequence[Path], overrides: Sequence[str] = ()) -> type:
    """The :class:`~wsol_lightning.models.WSOLModule` subclass of ``model.class_path`` (last config or override)."""
    class_path = _override(overrides, "model.class_path")
    for config in configs if class_path is None else ():
        if not config.is_file():
            raise UserError(f"--config {config}: no such file")
        model = (yaml.safe_load(config.read_text()) or {}).get("model") or {}
        class_path = model.get("class_path", class_path) if isinstance(model, dict) else class_path
    if not class_path:
        raise UserError(f"no model.class_path in {', '.join(map(str, configs))}; give a config with a model")
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module or "wsol_lightning.models"), name)
    except (ImportError, AttributeError) as err:
        raise UserError(f"model.class_path {class_path}: cannot import it ({err})") from None
    if not (isinstance(cls, type) and issubclass(cls, WSOLModule)):
        raise UserError(f"model.class_path {class_path} is not a WSOLModule subclass")
    return cls


def search_space(cls: type, overrides: Sequence[str] = ()) -> tuple[Param, ...]:
    """``cls.SEARCH_SPACE`` without the arguments the overrides fix."""
    fixed = model_flags(overrides)
    return tuple(p for p in cls.SEARCH_SPACE if p.name not in fixed)


def init_args(space: Sequence[Param], params: Mapping[str, Any]) -> dict[str, Any]:
    """Model init arguments from Optuna parameters (tuple arguments assembled from their parts)."""
    values: dict[str, Any] = {}
    parts: dict[str, dict[int, Any]] = {}
    for param in space:
        if param.part is None:
            values[param.name] = params[param.key]
        else:
            parts.setdefault(param.name, {})[param.part] = params[param.key]
    values.update({name: [found[i] for i in sorted(found)] for name, found in parts.items()})
    return values


# -- one trial --------------------------------------------------------------------------------
class TrialReporter(Callback):
    """Reports a trial's val metric to its Optuna study after every validation and stops a pruned fit.

    ``wsol tune`` adds it to each trial's ``wsol fit``. Rank 0 reports (step: the epoch) and writes
    ``tune_trial.json`` into the run folder (metric, values per epoch, the epoch it was pruned at);
    every rank stops when it is pruned. A non-finite training loss or val metric raises
    ``FloatingPointError``, which fails the trial.

    Args:
        storage: the study's storage URL.
        study_name: the study.
        trial_id: the trial's storage id.
        metric: ``auto`` (``maxboxacc_v2``, else ``pxap``) or a val metric name.
        pruner: ``median`` or ``none`` (:data:`PRUNERS`), the tuner's ``--pruner``.
    """

    def __init__(self, storage: str, study_name: str, trial_id: int, metric: str = "auto",
                 pruner: str = "median") -> None:
        self.storage, self.study_name, self.trial_id, self.metric = storage, study_name, trial_id, metric
        self.pruner = pruner
        self.values: list[tuple[int, float]] = []
        self._trial: optuna.Trial | None = None

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor) and not bool(torch.isfinite(loss).all()):
            raise FloatingPointError(f"training loss is {loss.item()} at step {trainer.global_step} (diverged)")

    def metric_key(self, metrics: Mapping[str, Any]) -> str:
        names = METRIC_KEYS if self.metric == "auto" else (self.metric,)
        key = next((f"val/{name}" for name in names if f"val/{name}" in metrics), None)
        if key is None:
            raise KeyError(f"no {' or '.join(f'val/{n}' for n in names)} was logged: the val split has no "
                           f"{'boxes or masks' if self.metric == 'auto' else 'such metric'}")
        return key

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        key = self.metric_key(trainer.callback_metrics)
        value = float(trainer.callback_metrics[key])
        if not math.isfinite(value):
            raise FloatingPointError(f"{key} is {value} at epoch {trainer.current_epoch}")
        pruned = False
        if trainer.is_global_zero:
            if self._trial is None:
                # the pruner is not stored with the study: without it Optuna would use its default median pruner
                study = optuna.load_study(study_name=self.study_name, storage=open_storage(self.storage),
                                          pruner=PRUNERS[self.pruner]())
                self._trial = optuna.trial.Trial(study, self.trial_id)
            self._trial.report(value, trainer.current_epoch)
            self.values.append((trainer.current_epoch, value))
            pruned = self._trial.should_prune()
            status = {"metric": key, "values": self.values,
                      "pruned_at_epoch": trainer.current_epoch if pruned else None}
            path = Path(trainer.default_root_dir) / STATUS_NAME
            path.with_suffix(".tmp").write_text(json.dumps(status))
            os.replace(path.with_suffix(".tmp"), path)
        if trainer.strategy.reduce_boolean_decision(pruned, all=False):
            trainer.should_stop = True


class TrialFailed(Exception):
    """A trial's fit failed; the message is the reason (stored as the trial's ``fail_reason``)."""


@dataclass
class Tuner:
    """Everything a trial needs: configs, overrides, space, study name, storage, folders, metric."""

    configs: list[Path]
    overrides: list[str]
    space: tuple[Param, ...]
    study_name: str
    storage: str
    output: Path
    metric: str = "auto"
    pruner: str = "median"

    @property
    def trials_folder(self) -> Path:
        return self.output / self.study_name

    @property
    def best_config(self) -> Path:
        return self.output / f"{self.study_name}_best.yaml"

    @property
    def best_folder(self) -> Path:
        return self.output / f"{self.study_name}_best"

    def fit_command(self, folder: Path, values: Mapping[str, Any], name: str) -> list[str]:
        """``wsol fit`` arguments of a run into ``folder`` with the init arguments ``values``."""
        command = ["fit", *(a for c in self.configs for a in ("--config", str(c))), *self.overrides,
                   "--trainer.default_root_dir", str(folder)]
        if any(config_uses_wandb(c) for c in self.configs) and not any(
                o.startswith("--trainer.logger") for o in self.overrides):
            command += ["--trainer.logger.init_args.group", self.study_name, "--trainer.logger.init_args.name", name]
        for key, value in values.items():
            command += [f"--model.init_args.{key}", json.dumps(value)]
        return command

    def objective(self, trial: optuna.Trial) -> float:
        """Fit the trial's values in a subprocess; its last val metric (pruned: ``TrialPruned``)."""
        values = init_args(self.space, {p.key: p.suggest(trial) for p in self.space})
        folder = self.trials_folder / f"trial_{trial.number}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / STATUS_NAME).unlink(missing_ok=True)
        command = self.fit_command(folder, values, f"{self.study_name}-trial{trial.number}") + [
            "--trainer.callbacks+=wsol_lightning.tune.TrialReporter", "--trainer.callbacks.storage", self.storage,
            "--trainer.callbacks.study_name", self.study_name,
            "--trainer.callbacks.trial_id", str(trial._trial_id),  # the storage id the reporter reopens
            "--trainer.callbacks.metric", self.metric, "--trainer.callbacks.pruner", self.pruner]
        trial.set_user_attr("folder", str(folder))
        log = folder / "fit.log"
        with log.open("w") as handle:
            returncode = subprocess.call([sys.executable, "-m", "wsol_lightning", *command], stdout=handle,
                                         stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if returncode in (130, -2):
            raise KeyboardInterrupt
        status_path = folder / STATUS_NAME
        status = json.loads(status_path.read_text()) if status_path.is_file() else {}
        reason = failure_reason(log, returncode, "fit") if returncode != 0 else (
            "" if status.get("values") else f"fit reported no val metric (see {log})")
        if reason:
            trial.set_user_attr("fail_reason", reason)
            raise TrialFailed(reason)
        trial.set_user_attr("metric", status["metric"])
        if status["pruned_at_epoch"] is not None:
            raise optuna.TrialPruned(f"pruned at epoch {status['pruned_at_epoch']}")
        return float(status["values"][-1][1])

    def resolved_config(self) -> dict[str, Any]:
        """The complete config of the configs and overrides (``wsol fit --print_config``), into :attr:`best_folder`.

        Raises:
            UserError: the configs and overrides do not parse (the CLI's one-line message).
        """
        command = [*self.fit_command(self.best_folder, {}, f"{self.study_name}-best"), "--print_config"]
        done = subprocess.run([sys.executable, "-m", "wsol_lightning", *command], capture_output=True, text=True)
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            message = lines[-1].split(": error: ", 1)[-1] if lines else f"exit status {done.returncode}"
            raise UserError(message)
        return yaml.safe_load(done.stdout)


def open_storage(storage: str, **options: Any) -> optuna.storages.RDBStorage:
    """The study's storage; SQLite waits up to a minute for its lock (the tuner's heartbeat and its trials
    write to one file from several processes; a busy machine can hold it past SQLite's default 5 s)."""
    engine = {"connect_args": {"timeout": 60}} if storage.startswith("sqlite") else None
    return optuna.storages.RDBStorage(storage, engine_kwargs=engine, **options)


def create_study(name: str, storage: str, sampler: str, seed: int | None, pruner: str) -> optuna.Study:
    """Create or load (``load_if_exists``) the maximizing study, with a heartbeat on the storage."""
    try:
        backend = open_storage(storage, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=3 * HEARTBEAT_SECONDS)
    except Exception as err:  # noqa: BLE001 - a bad URL or a missing driver: tell the user
        raise UserError(f"--storage {storage}: {type(err).__name__}: {str(err).splitlines()[0]}") from None
    samplers = {"random": optuna.samplers.RandomSampler, "tpe": optuna.samplers.TPESampler}
    return optuna.create_study(storage=backend, study_name=name, direction="maximize", load_if_exists=True,
                               sampler=samplers[sampler](seed=seed), pruner=PRUNERS[pruner]())


def finished(study: optuna.Study) -> int:
    """Complete and pruned trials of ``study``."""
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def _format_params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _trial_line(trial: optuna.trial.FrozenTrial) -> str:
    minutes = (trial.duration.total_seconds() / 60) if trial.duration else 0.0
    state = trial.state.name.lower()
    if trial.state == optuna.trial.TrialState.COMPLETE:
        state = f"{trial.value:.2f} ({trial.user_attrs.get('metric', 'val metric')}, %)"
    elif trial.state == optuna.trial.TrialState.PRUNED and trial.intermediate_values:
        state = f"pruned after epoch {max(trial.intermediate_values)}"
    elif trial.state == optuna.trial.TrialState.FAIL:
        state = f"FAILED: {trial.user_attrs.get('fail_reason', 'interrupted')}"
    return f"trial {trial.number}: {state}; {_format_params(trial.params)} ({minutes:.1f} min)"


def write_best_config(tuner: Tuner, study: optuna.Study, config: dict[str, Any]) -> Path:
    """``OUTPUT/<study>_best.yaml``: ``config`` with the best trial's values and a header."""
    best = study.best_trial
    values = init_args(tuner.space, best.params)
    config["model"]["init_args"].update(values)
    checkpoint = tuner.best_folder / "checkpoints" / "last.ckpt"
    header = [
        f"Best of study {study.study_name} (wsol tune, storage {tuner.storage}): trial {best.number} of "
        f"{finished(study)} finished, {best.user_attrs.get('metric', 'val metric')} = {best.value:.2f}",
        f"searched values: {_format_params(best.params)}",
        f"configs: {' '.join(map(str, tuner.configs))}; overrides (applied below): {' '.join(tuner.overrides) or 'none'}",
        f"train: wsol fit --config {tuner.best_config}",
        f"test:  wsol test --config {tuner.best_config} --ckpt_path {checkpoint}",
    ]
    text = "".join(f"# {line}\n" for line in header) + yaml.safe_dump(config, sort_keys=False)
    tuner.best_config.parent.mkdir(parents=True, exist_ok=True)
    tuner.best_config.write_text(text)
    return tuner.best_config


def list_space(cls: type, config: str, overrides: Sequence[str]) -> str:
    """The search space of ``cls`` as a table (arguments fixed by the overrides marked)."""
    fixed = model_flags(overrides)
    lines = [f"{cls.__name__} ({config}): model.init_args.<name>, searched by wsol tune"]
    for param in cls.SEARCH_SPACE:
        lines.append(param.describe() + ("  [fixed by an override]" if param.name in fixed else ""))
    return "\n".join(lines)


# -- command ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsol tune",
        description="Search a method's hyperparameters on the val split with Optuna: each trial is `wsol fit` of "
        "the config with the trial's values (OUTPUT/<study>/trial_<n>), its objective the val MaxBoxAccV2 (PxAP "
        "for mask-only data); the best configuration is written to OUTPUT/<study>_best.yaml. Arguments after `--` "
        "are added to every trial (a model init argument given there is not searched). Several processes, on "
        "several machines, can share one study through --storage.",
        epilog="Searched model.init_args (details: --list-space): "
        + "; ".join(f"{cls.__name__}: {', '.join(dict.fromkeys(p.name for p in cls.SEARCH_SPACE))}"
                    for cls in map(models.model_class, models.available_models())) + ".",
    )
    parser.add_argument("--config", action="append", required=True,
                        help="the method's config (repeatable, as in wsol fit)")
    parser.add_argument("--list-space", "--list_space", action="store_true", help="print the search space and exit")
    parser.add_argument("--n_trials", type=int, default=30,
                        help="the study's target of finished trials: stop when the study has them, or after this many "
                        "trials of this process (default: 30, wsolevaluation's budget)")
    parser.add_argument("--study", default=None, help="study name (default: the config's file name)")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL (default: sqlite:///OUTPUT/<study>.db); postgresql://... or "
                        "mysql://... for several machines")
    parser.add_argument("--output", default="runs/tune", help="folder of the study, trials and best config")
    parser.add_argument("--sampler", choices=("random", "tpe"), default="random",
                        help="random search (default, as wsolevaluation) or TPE")
    parser.add_argument("--pruner", choices=tuple(PRUNERS), default="median",
                        help="stop trials below the median of earlier ones at the same epoch (default) or never")
    parser.add_argument("--seed", type=int, default=None,
                        help="sampler seed (per process: give each process its own, or none)")
    parser.add_argument("--metric", choices=("auto", *METRIC_KEYS), default="auto",
                        help="val metric to maximize (auto: maxboxacc_v2 when the data has boxes, else pxap)")
    parser.add_argument("--test-best", "--test_best", action="store_true",
                        help="then train the best config into OUTPUT/<study>_best and test it once")
    return parser


def _test_best(tuner: Tuner, config: dict[str, Any]) -> bool:
    seed = config.get("seed_everything")
    seed = seed if isinstance(seed, int) and not isinstance(seed, bool) else 0
    print(f"training and testing the best config into {tuner.best_folder} ...", flush=True)
    result = fit_and_test(tuner.best_config, seed, tuner.best_folder, group=tuner.study_name,
                          name=f"{tuner.study_name}-best", method=tuner.study_name)
    if result.status != "ok":
        print(f"wsol tune: the best config failed: {result.reason}", file=sys.stderr)
        return False
    shown = [m for m in METRICS if m.key in result.metrics and m.key != "fit_minutes"]
    print("test metrics of the best config (%): " + ", ".join(f"{m.title} {result.metrics[m.key]:.2f}" for m in shown))
    return True


def main(args: Sequence[str] | None = None) -> int:
    """``wsol tune`` entry point (exit status in the module docstring)."""
    from wsol_lightning.cli import INTERRUPTED_STATUS, configure_wandb_mode

    argv = list(sys.argv[1:] if args is None else args)
    overrides = argv[argv.index("--") + 1:] if "--" in argv else []
    parser = build_parser()
    options = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    configs = [Path(c) for c in options.config]
    try:
        cls = model_class(configs, overrides)
        if options.list_space:
            print(list_space(cls, " ".join(options.config), overrides))
            return 0
        if options.n_trials < 1:
            raise UserError(f"--n_trials {options.n_trials}: give at least 1")
        configure_wandb_mode()
        optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per trial below instead
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # the heartbeat
        output = Path(options.output)
        name = options.study or configs[-1].stem
        output.mkdir(parents=True, exist_ok=True)
        storage = options.storage or f"sqlite:///{(output / f'{name}.db').resolve()}"
        tuner = Tuner(configs, overrides, search_space(cls, overrides), name, storage, output, options.metric,
                      options.pruner)
        base_config = tuner.resolved_config()  # the configs and overrides parse before any trial
        study = create_study(name, storage, options.sampler, options.seed, options.pruner)
    except UserError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return INTERRUPTED_STATUS
    done = finished(study)
    print(f"study {name} ({storage}): {done} finished trials, target {options.n_trials}; searching "
          f"{', '.join(p.key for p in tuner.space)} of {cls.__name__}; trials in {tuner.trials_folder}", flush=True)
    start = time.monotonic()
    try:
        if done < options.n_trials:
            stop = optuna.study.MaxTrialsCallback(options.n_trials, states=(
                optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
            study.optimize(tuner.objective, n_trials=options.n_trials, catch=(TrialFailed,),
                           callbacks=[stop, lambda _, trial: print(_trial_line(trial), flush=True)])
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted; run the same command again to continue the study", file=sys.stderr)
        return INTERRUPTED_STATUS
    states = [t.state.name.lower() for t in study.get_trials(deepcopy=False)]
    print(f"study {name}: " + ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states)))
          + f" ({(time.monotonic() - start) / 60:.1f} min in this process)")
    try:
        best = study.best_trial
    except ValueError:
        print(f"{parser.prog}: no trial of study {name} finished; see the fail reasons above", file=sys.stderr)
        return 1
    path = write_best_config(tuner, study, base_config)
    print(f"best: trial {best.number}, {best.user_attrs.get('metric', 'val metric')} {best.value:.2f}; "
          f"{_format_params(best.params)}")
    print(f"wrote {path}\n  train: wsol fit --config {path}\n  test:  wsol test --config {path} --ckpt_path "
          f"{tuner.best_folder / 'checkpoints' / 'last.ckpt'}")
    if options.test_best:
        try:
            return 0 if _test_best(tuner, yaml.safe_load(path.read_text())) else 1
        except KeyboardInterrupt:
            return INTERRUPTED_STATUS
    return 0
