"""``wsol tune``: search spaces, a study on a tiny synthetic run, a shared storage, failed trials, val only."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from helpers import TINY_DATA

from wsol_lightning import tune
from wsol_lightning.models import _MODELS, WSOLModule
from wsol_lightning.models.search_space import Param

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TINY_RUN = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
            "--trainer.logger", "false", "--trainer.callbacks", "[]", *TINY_DATA,
            "--data.dataset.image_size", "32", "--data.resize_size", "36", "--data.crop_size", "32"]
# A CAM whose test split must stay untouched: any test step (or test start) raises.
NO_TEST_MODEL = '''
from wsol_lightning.models import CAM


class NoTestCAM(CAM):
    def on_test_start(self):
        raise RuntimeError("the test split was touched")

    def test_step(self, batch, batch_idx):
        raise RuntimeError("the test split was touched")
'''


def wsol(*args: str, cwd: Path = REPO, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    return subprocess.run([str(BIN / "wsol"), *args], cwd=cwd, capture_output=True, text=True, timeout=900, env=env)


def trials(storage: str, name: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=name, storage=storage).trials


def test_every_searched_name_is_an_init_argument_of_its_method() -> None:
    for cls in set(_MODELS.values()):
        accepted = {name for klass in cls.__mro__ if issubclass(klass, WSOLModule)
                    for name in inspect.signature(klass.__init__).parameters}
        assert cls.SEARCH_SPACE[0].name == "lr"
        assert {p.name for p in cls.SEARCH_SPACE} <= accepted, cls.__name__
        assert len({p.key for p in cls.SEARCH_SPACE}) == len(cls.SEARCH_SPACE), cls.__name__


def test_tuple_arguments_are_assembled_and_overrides_fix_arguments() -> None:
    space = (Param("lr", "float", 1e-4, 0.1, log=True), Param("pair", "float", part=1), Param("pair", "float", part=0))
    assert tune.init_args(space, {"lr": 0.01, "pair[0]": 0.8, "pair[1]": 0.1}) == {"lr": 0.01, "pair": [0.8, 0.1]}
    cls = tune.model_class([REPO / "experiments/spg.yaml"])
    assert cls.__name__ == "SPG"
    fixed = tune.search_space(cls, ["--model.init_args.lr", "0.01", "--model.b2_thresholds=[0.5, 0.1]"])
    assert {p.name for p in fixed} == {"attention_thresholds", "fused_thresholds"}


def test_list_space_and_one_line_user_errors(tmp_path: Path) -> None:
    listed = wsol("tune", "--config", "experiments/adl.yaml", "--list-space")
    assert listed.returncode == 0, listed.stderr
    assert "ADL" in listed.stdout and "apply_prob" in listed.stdout and "foreground_threshold" in listed.stdout
    missing = wsol("tune", "--config", "experiments/nope.yaml", "--n_trials", "1")
    assert missing.returncode == 2 and missing.stderr.strip().splitlines() == [
        "wsol tune: error: --config experiments/nope.yaml: no such file"]
    bad = wsol("tune", "--config", "experiments/cam.yaml", "--output", str(tmp_path), "--n_trials", "1", "--",
               *TINY_RUN, "--trainer.no_such_option", "1")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert bad.stderr.startswith("wsol tune: error:") and "no_such_option" in bad.stderr
    assert not list(tmp_path.glob("*/trial_*"))  # refused before any trial


def test_study_writes_a_best_config_that_fits_and_a_second_process_continues_it(tmp_path: Path) -> None:
    """Three trials, the test split untouched (the model raises on any test step), the best YAML fits,
    and a second process on the same storage adds a trial to the same study."""
    (tmp_path / "notest_cam.py").write_text(NO_TEST_MODEL)
    config = tmp_path / "notest.yaml"
    config.write_text((REPO / "experiments/cam.yaml").read_text().replace("wsol_lightning.models.CAM",
                                                                          "notest_cam.NoTestCAM"))
    output, storage = tmp_path / "tune", f"sqlite:///{tmp_path / 'shared.db'}"
    common = ["--config", str(config), "--study", "s", "--storage", storage, "--output", str(output), "--seed", "0"]
    first = wsol("tune", *common, "--n_trials", "3", "--", *TINY_RUN, pythonpath=tmp_path)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    assert [t.state for t in trials(storage, "s")] == [optuna.trial.TrialState.COMPLETE] * 3, [
        (t.params, t.user_attrs.get("fail_reason")) for t in trials(storage, "s")]
    for trial in trials(storage, "s"):
        summary = yaml.safe_load((Path(trial.user_attrs["folder"]) / "summary.json").read_text())
        assert "fit" in summary and "test" not in summary
        assert trial.user_attrs["metric"] == "val/maxboxacc_v2" and 0 <= trial.value <= 100
    best = output / "s_best.yaml"
    config_text = best.read_text()
    assert "wsol fit --config" in config_text
    assert yaml.safe_load(config_text)["model"]["class_path"] == "notest_cam.NoTestCAM"

    again = wsol("tune", *common, "--n_trials", "4", "--", *TINY_RUN, pythonpath=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "3 finished trials, target 4" in again.stdout
    assert len(trials(storage, "s")) == 4 and (output / "s" / "trial_3" / "fit.log").is_file()

    fit = subprocess.run([sys.executable, "-m", "wsol_lightning", "fit", "--config", str(best)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(tmp_path)})
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert (output / "s_best" / "checkpoints" / "last.ckpt").is_file()


def test_a_trial_that_raises_is_failed_with_its_reason_and_the_study_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """Trial 0 diverges (a NaN learning rate makes the loss NaN); trial 1 still runs and is the best."""
    command = tune.Tuner.fit_command

    def diverging(self: tune.Tuner, folder: Path, values: dict, name: str) -> list[str]:
        nan = ["--model.init_args.lr", ".nan"] if folder.name == "trial_0" else []
        return command(self, folder, values, name) + nan

    monkeypatch.setattr(tune.Tuner, "fit_command", diverging)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.chdir(REPO)
    storage = f"sqlite:///{tmp_path / 'f.db'}"
    status = tune.main(["--config", "experiments/cam.yaml", "--study", "f", "--storage", storage, "--output",
                        str(tmp_path), "--n_trials", "2", "--", *TINY_RUN])
    out = capsys.readouterr().out
    assert status == 0, out
    failed, done = trials(storage, "f")
    assert failed.state == optuna.trial.TrialState.FAIL and done.state == optuna.trial.TrialState.COMPLETE
    assert "FloatingPointError" in failed.user_attrs["fail_reason"] and "diverged" in failed.user_attrs["fail_reason"]
    assert "trial 0: FAILED: fit exited with status 1" in out and "best: trial 1" in out
    assert (tmp_path / "f_best.yaml").is_file()


@pytest.mark.parametrize("pruner, pruned", [("median", True), ("none", False)])
def test_the_reporter_prunes_with_the_tuners_pruner(pruner: str, pruned: bool, tmp_path: Path) -> None:
    """A trial far below the median of five finished ones is pruned by ``median``, never by ``none``."""
    from types import SimpleNamespace

    import torch

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = tune.create_study("s", storage, "random", 0, pruner)
    for value in (50.0, 60.0, 70.0, 80.0, 90.0):
        trial = study.ask()
        trial.report(value, 0)
        study.tell(trial, value)
    trial = study.ask()
    reporter = tune.TrialReporter(storage, "s", trial._trial_id, pruner=pruner)
    trainer = SimpleNamespace(
        sanity_checking=False, is_global_zero=True, current_epoch=0, default_root_dir=str(tmp_path),
        callback_metrics={"val/maxboxacc_v2": torch.tensor(5.0)}, should_stop=False,
        strategy=SimpleNamespace(reduce_boolean_decision=lambda decision, all: decision))
    reporter.on_validation_end(trainer, None)
    assert trainer.should_stop is pruned
