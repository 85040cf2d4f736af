# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tuning a method on the val split: `wsol tune`
#
# wsolevaluation (Choe et al., CVPR 2020) found that WSOL methods compare fairly only when each gets
# the same hyperparameter budget, searched on a small annotated split that is not the test set.
# `wsol tune` runs that search with Optuna: each trial is `wsol fit` of the method's config with the
# trial's values, its objective the **val** split's MaxBoxAccV2; the test split is never touched.
# Here a small study tunes ADL (`experiments/adl.yaml`: learning rate, drop rate, γ) on the built-in
# synthetic set; then Optuna's own plots show the search.

# %% tags=["parameters"]
CONFIG = "adl"           # experiments/<CONFIG>.yaml
N_TRIALS = 6             # trials of the study (wsolevaluation: 30 per method)
SAMPLER = "random"       # "random" (wsolevaluation) or "tpe"
RUN_OVERRIDES = [        # a smoke test (2 epochs of 2 steps on 32 images at 32 px); [] runs the config's budget
    "--trainer.max_epochs", "2", "--trainer.limit_train_batches", "2",
    "--trainer.logger", "false", "--trainer.callbacks", "[]",
    "--data.dataset.train_size", "32", "--data.dataset.val_size", "16", "--data.dataset.test_size", "16",
    "--data.batch_size", "8", "--data.num_workers", "0",
    "--data.dataset.image_size", "32", "--data.resize_size", "36", "--data.crop_size", "32",
]
OUTPUT_DIR = "notebook_outputs/tuning"  # the study (SQLite), its trials, the best config and the PNGs

# %%
# %matplotlib inline
import warnings
from pathlib import Path

import optuna
from IPython.display import Markdown, display
from optuna.importance import PedAnovaImportanceEvaluator
from optuna.visualization.matplotlib import plot_intermediate_values, plot_optimization_history, plot_param_importances

import wsol_lightning
from wsol_lightning import tune
from wsol_lightning.compare import markdown_table
from wsol_lightning.plots import save_figure

REPO = Path(wsol_lightning.__file__).resolve().parents[2]  # the repository (pip install -e .): experiments/
config = REPO / "experiments" / f"{CONFIG}.yaml"
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
output = Path(OUTPUT_DIR)
output.mkdir(parents=True, exist_ok=True)
print(tune.list_space(tune.model_class([config]), str(config.relative_to(REPO)), RUN_OVERRIDES))

# %% [markdown]
# ## The study
# The same call as `wsol tune --config experiments/adl.yaml --n_trials N_TRIALS --study ... --output
# OUTPUT_DIR -- RUN_OVERRIDES`. The study is stored in `OUTPUT_DIR/<study>.db`: running this cell
# again continues it up to `N_TRIALS` finished trials (raise `N_TRIALS` to add more). The median
# pruner stops a trial whose val metric after an epoch is below the median of earlier trials there
# (from the sixth trial on).

# %%
study_name = f"{CONFIG}-synthetic"
status = tune.main(["--config", str(config), "--n_trials", str(N_TRIALS), "--study", study_name,
                    "--output", str(output), "--sampler", SAMPLER, "--seed", "0", "--", *RUN_OVERRIDES])
assert status == 0, f"wsol tune exited with status {status}"
study = optuna.load_study(study_name=study_name, storage=f"sqlite:///{(output / f'{study_name}.db').resolve()}")
rows = [{"trial": t.number, "state": t.state.name.lower(),
         "val MaxBoxAccV2": t.value if t.value is not None else float("nan"), **t.params}
        for t in study.trials]
display(Markdown(markdown_table(rows)))

# %% [markdown]
# ## Optuna's plots
# The optimization history (each trial's value and the best so far), the per-epoch val metric of
# every trial (what the pruner compares), and the parameters' importances (PED-ANOVA, which needs
# no scikit-learn; with a handful of trials they are noise, with 30 they say which knob mattered).

# %%
history = plot_optimization_history(study, target_name="val MaxBoxAccV2 (%)").figure
history.set_size_inches(6, 3.5)
history.tight_layout()
save_figure(history, output / "optimization_history.png")
history

# %%
curves = plot_intermediate_values(study).figure
curves.set_size_inches(6, 3.5)
curves.tight_layout()
save_figure(curves, output / "intermediate_values.png")
curves

# %%
importances = plot_param_importances(study, evaluator=PedAnovaImportanceEvaluator(),
                                     target_name="val MaxBoxAccV2").figure
importances.set_size_inches(6, 3)
importances.tight_layout()
save_figure(importances, output / "param_importances.png")
importances

# %% [markdown]
# ## The best configuration
# `wsol tune` wrote it as a complete config (the original, the overrides, the best values); train it
# with `wsol fit --config` and test it once with `wsol test` (or pass `--test-best` to `wsol tune`).

# %%
best_config = output / f"{study_name}_best.yaml"
print("\n".join(best_config.read_text().splitlines()[:6]))

# %% [markdown]
# ## What these numbers are
# The defaults are a **smoke test** (2 steps per epoch on 32 images): every trial lands near chance
# and the plots only show that the machinery works. For a real search run the config's own budget
# (`RUN_OVERRIDES = []`: each trial is a full `wsol fit` of `experiments/adl.yaml`, minutes on CPU)
# with `N_TRIALS = 30`, or `wsol tune` from a shell, on as many machines as share the study's
# storage (README: "Hyperparameter search").
