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
# # I2C and ICL ablations: which loss terms and parts matter
#
# Two methods that add terms to a CAM classifier, each ablated one term at a time:
#
# * **I2C** (Zhang et al., ECCV 2020): object seeds of two same-class images of a batch should agree
#   (**SC**, stochastic consistency) and their mean should agree with a running class centroid
#   (**GC**, global consistency). Settings: SC + GC, SC only, GC only, and neither (I2C's network
#   trained with the classification loss alone), all on the same same-class-pair batches, plus CAM
#   on those batches as the reference. This mirrors the paper's loss ablation (SC / GC on and off;
#   the note `shared/papers/i2c.md` has the official weights, the table was not available to
#   check). Switches: `sc_weight: 0`, `gc_weight: 0` (`models/i2c/README.md`).
# * **ICL** (Ki et al., ACCV 2020): ADL-style attention dropping with four additions: non-local
#   attention, a contrastive attention loss, a foreground consistency loss and a drop mask that also
#   drops the background. Settings: all four, then each one off in turn, as the paper's component
#   ablation does (its tables could not be read; every ICL value here is ours,
#   `models/icl/README.md`). Switches: `use_non_local`, `contrastive_weight: 0`,
#   `consistency_weight: 0`, `drop_background`.
#
# A setting is a method config (`experiments/i2c.yaml`, `experiments/icl.yaml`) plus command-line
# overrides (`--model.init_args.gc_weight 0`, ...). Each seed of a setting is trained with
# `wsol fit` and tested with `wsol test` in its own run folder
# (`wsol_lightning.ablation.train_and_test`, the runner of `wsol benchmark`): validation chooses the
# CAM threshold at the end of the fit, test reports with it. A row is the mean ± std over `SEEDS`.

# %% tags=["parameters"]
SEEDS = [0]              # seeds per setting; [0, 1, 2] gives mean ± std over three runs
RUN_OVERRIDES = [        # a smoke test (2 steps on 32 images at 64 px); [] runs the configs' own budget
    "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
    "--trainer.logger", "false", "--trainer.callbacks", "[]",
    "--data.dataset.train_size", "32", "--data.dataset.val_size", "16", "--data.dataset.test_size", "16",
    "--data.batch_size", "8", "--data.num_workers", "0",  # even: I2C's batches are same-class pairs
    "--data.dataset.image_size", "64", "--data.resize_size", "72", "--data.crop_size", "64",
]
OUTPUT_DIR = "notebook_outputs/ablation_i2c_icl"  # PNGs and the run folders (runs/<method>/<setting>/seed<k>)

# %%
# %matplotlib inline
import re
from pathlib import Path

import numpy as np
from IPython.display import Markdown, display
from matplotlib.figure import Figure

import wsol_lightning
from wsol_lightning.ablation import ablation_figure, ablation_rows, row_means, train_and_test
from wsol_lightning.compare import markdown_table
from wsol_lightning.plots import save_figure

REPO = Path(wsol_lightning.__file__).resolve().parents[2]  # the repository (pip install -e .): experiments/
EXPERIMENTS = REPO / "experiments"
output = Path(OUTPUT_DIR)
output.mkdir(parents=True, exist_ok=True)


def run_settings(method: str, settings: dict[str, tuple[Path, list[str]]]) -> dict[str, list]:
    """Train and test every seed of each setting (config, overrides) under ``runs/<method>/<setting>``."""
    runs = {}
    for name, (config, overrides) in settings.items():
        folder = output / "runs" / method / re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")
        runs[name] = train_and_test(config, [*RUN_OVERRIDES, *overrides], folder, seeds=SEEDS)
        fits = ", ".join(f"{run.fit_seconds:.0f} s" for run in runs[name])
        print(f"{method}: {name:32s} fit {fits} ({folder})")
    return runs


# %% [markdown]
# ## I2C: SC and GC
# `experiments/i2c.yaml` as shipped: ImageNet-pretrained EfficientNet-Lite0 fine-tuned with SGD at
# 128 px (new layers at 10x the backbone's rate), the official 3-layer head (256 wide), SC weight
# 0.008 and GC weight 0.001, batches of same-class pairs (`pair_sampling: true`). Only the loss
# weights change between the I2C rows; the CAM row is `experiments/cam.yaml` with the same paired
# batches (`--data.pair_sampling true`), so it differs by its head as well. The last row swaps the
# unit of consistency from class to shared attributes (`consistency_unit: attribute`,
# `data.dataset.attributes: true`; BENCHMARKS.md "I2C at attribute level").

# %%
I2C_CONFIG, CAM_CONFIG = EXPERIMENTS / "i2c.yaml", EXPERIMENTS / "cam.yaml"
i2c_settings = {
    "SC + GC": (I2C_CONFIG, []),
    "SC only": (I2C_CONFIG, ["--model.init_args.gc_weight", "0"]),
    "GC only": (I2C_CONFIG, ["--model.init_args.sc_weight", "0"]),
    "neither (I2C head)": (I2C_CONFIG, ["--model.init_args.sc_weight", "0",
                                        "--model.init_args.gc_weight", "0"]),
    "CAM, paired batches": (CAM_CONFIG, ["--data.pair_sampling", "true"]),
    # The seeds' open idea (issue 14): consistency between images that share attributes, weighted by
    # their attribute overlap, instead of class (the synthetic set's 19 per-image attributes; CUB's 312).
    "SC + GC, attribute unit": (I2C_CONFIG, ["--model.init_args.consistency_unit", "attribute",
                                             "--data.dataset.attributes", "true"]),
}
i2c_runs = run_settings("i2c", i2c_settings)
i2c_rows = ablation_rows(i2c_runs)
display(Markdown(markdown_table(i2c_rows)))
bars = ablation_figure(i2c_rows, title="I2C: loss terms")
save_figure(bars, output / "i2c_metrics.png")
bars

# %% [markdown]
# ## ICL: each part off in turn
# `experiments/icl.yaml` as shipped (the same backbone and fine-tuning; every ICL value is ours, see
# its README). "drop background off" is ADL's peak-only drop mask.

# %%
ICL_CONFIG = EXPERIMENTS / "icl.yaml"
icl_settings = {
    "all four": (ICL_CONFIG, []),
    "non-local off": (ICL_CONFIG, ["--model.init_args.use_non_local", "false"]),
    "contrastive loss off": (ICL_CONFIG, ["--model.init_args.contrastive_weight", "0"]),
    "consistency loss off": (ICL_CONFIG, ["--model.init_args.consistency_weight", "0"]),
    "drop background off": (ICL_CONFIG, ["--model.init_args.drop_background", "false"]),
}
icl_runs = run_settings("icl", icl_settings)
icl_rows = ablation_rows(icl_runs)
display(Markdown(markdown_table(icl_rows)))
bars = ablation_figure(icl_rows, title="ICL: parts")
save_figure(bars, output / "icl_metrics.png")
bars

# %% [markdown]
# ## One chart, one metric
# MaxBoxAccV2 of every setting of both methods (mean over the seeds, the bar's line spans ± one
# standard deviation when there are several seeds), with the mean fit time of its runs.

# %%
rows = [{**row, "setting": f"I2C: {row['setting']}"} for row in i2c_rows]
rows += [{**row, "setting": f"ICL: {row['setting']}"} for row in icl_rows]
fit_seconds = [np.mean([run.fit_seconds for run in seed_runs])
               for seed_runs in [*i2c_runs.values(), *icl_runs.values()]]
means = [row_means(row, ["MaxBoxAccV2"])[0] for row in rows]
stds = [row["MaxBoxAccV2"].std if row["MaxBoxAccV2"] is not None and row["n"] > 1 else 0.0 for row in rows]
figure = Figure(figsize=(7, 0.4 * len(rows) + 1.2))
ax = figure.subplots()
bars = ax.barh(range(len(rows)), means, xerr=stds, capsize=3,
               color=["tab:blue"] * len(i2c_rows) + ["tab:orange"] * len(icl_rows))
labels = [f"{mean:.1f} ({seconds:.0f} s)" for mean, seconds in zip(means, fit_seconds)]
ax.bar_label(bars, labels=labels, fontsize=7)
ax.set_yticks(range(len(rows)), [row["setting"] for row in rows], fontsize=8)
ax.invert_yaxis()
ax.set(xlabel="MaxBoxAccV2 (%, mean over seeds)", xlim=(0, 100),
       title="I2C and ICL ablations (mean fit time)")
figure.tight_layout()
save_figure(figure, output / "maxboxacc_v2.png")
figure

# %% [markdown]
# ## What these numbers are
# The defaults above are a **smoke test** (two steps on 32 images at 64 px, one seed: chance-level
# classification, and I2C's loss weights 0.008 and 0.001 barely move the weights in two steps):
# they check that every setting runs end to end, not what a term is worth. For meaningful numbers
# set `RUN_OVERRIDES = []` (the configs' own budget: 250 fine-tuning steps at 128 px, 200 val and
# 400 test images; W&B logs offline unless credentials exist, add `"--trainer.logger", "false"` to
# skip it) and `SEEDS = [0, 1, 2]` (each row is then mean ± std over three runs). A CAM fit at that
# budget takes about 4-5 minutes on 2 CPU cores; an I2C step costs about CAM's and an ICL step
# about 1.15x (BENCHMARKS.md, "Training-step time", timed on resnet18), so the eleven settings x
# three seeds take a few hours on CPU, minutes each on a GPU. The "SC + GC" and "all four" rows
# are, seed for seed, what `wsol benchmark --methods i2c icl` reports, and the "CAM, paired
# batches" row is that benchmark's CAM trained on I2C's batches.

# %%
print(sorted(p.name for p in output.glob("*.png")))
