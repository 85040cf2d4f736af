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
# # ACoL ablation: the erase threshold δ
#
# ACoL (Zhang et al., CVPR 2018) trains two classifiers on one backbone feature: A, and B, whose
# input is the feature with every position where A's normalized GT-class map is `>= δ` set to zero.
# B must find the class elsewhere, and the localization map is the per-pixel max of both maps.
# **The question:** how does the localization depend on δ? A low δ erases much of the object (B
# must use the rest, or the background); a high δ erases only the peak; `erasing: false` trains two
# plain classifiers on the full feature. This mirrors the paper's ablation of δ (its table of
# localization error against δ from 0.5 to 0.9, with 0.6 chosen; recalled in
# `shared/papers/acol.md`, the table itself was not available to check) and the `erasing` switch
# of `src/wsol_lightning/models/acol/README.md`.
#
# Every setting is trained from the same seed on the built-in synthetic set, its CAM threshold is
# chosen on the validation split, and it is tested (`wsol_lightning.ablation.fit_and_test`).

# %% tags=["parameters"]
TRAIN_STEPS = 2          # optimizer steps per setting
TRAIN_SIZE = 24          # synthetic training images
EVAL_SIZE = 16           # synthetic validation and test images
BATCH_SIZE = 8
ERASE_THRESHOLDS = [0.4, 0.5, 0.6, 0.7, 0.8, 0.9]  # the δ values swept (plus erasing off)
SHOWN_THRESHOLDS = [0.4, 0.9]  # the two δ whose CAMs are drawn side by side
NUM_IMAGES = 4           # test images drawn per δ
OUTPUT_DIR = "notebook_outputs/ablation_acol"  # PNGs are written here as well as shown

# %%
# %matplotlib inline
import logging
import warnings
from functools import partial
from pathlib import Path

from IPython.display import Markdown, display
from matplotlib.figure import Figure

from wsol_lightning.ablation import ablation_figure, ablation_rows, fit_and_test
from wsol_lightning.callbacks import CAMVisualizer
from wsol_lightning.compare import markdown_table
from wsol_lightning.data import Synthetic, WSOLDataModule
from wsol_lightning.models import ACoL
from wsol_lightning.plots import save_figure

warnings.filterwarnings("ignore", ".*does not have many workers.*")
logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
output = Path(OUTPUT_DIR)
output.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Settings
# `experiments/acol.yaml` on a tiny budget: resnet18 from scratch, Adam, Xavier-initialized heads
# (the He init starts with logits in the tens at 8 classes; BENCHMARKS.md). Only δ changes.

# %%
data = WSOLDataModule(
    Synthetic(train_size=TRAIN_SIZE, val_size=EVAL_SIZE, test_size=EVAL_SIZE),
    batch_size=BATCH_SIZE, num_workers=0,
)
settings = dict(num_classes=8, backbone="resnet18", pretrained=False, optimizer="adam", lr=1e-3,
                head_lr_multiplier=1.0, weight_decay=1e-4, head_init="xavier")
configs = {f"δ={delta}": partial(ACoL, foreground_threshold=delta, **settings) for delta in ERASE_THRESHOLDS}
configs["erasing off"] = partial(ACoL, erasing=False, **settings)

# %%
runs = {name: fit_and_test(build, data, TRAIN_STEPS) for name, build in configs.items()}
for name, run in runs.items():
    print(f"{name:12s} fit {run.fit_seconds:5.1f} s, CAM threshold {float(run.model.cam_threshold):.2f}")

# %% [markdown]
# ## Metrics vs δ
# Localization in percent; "peak on part" = share of test images whose map peak is on the
# discriminative part, "GT box covered" = mean share of the GT box inside the predicted box
# (`wsol_lightning.metrics.diagnostics`). Erasing should lower the first and raise the second.

# %%
rows = ablation_rows(runs, label="δ")
display(Markdown(markdown_table(rows)))
bars = ablation_figure(rows, title="ACoL: erase threshold δ", label="δ")
save_figure(bars, output / "metrics.png")
bars

# %%
figure = Figure(figsize=(5, 3.5))
ax = figure.subplots()
for column, marker in (("MaxBoxAccV2", "o"), ("GT-known Loc", "s")):
    values = [row[column] for row in rows[: len(ERASE_THRESHOLDS)]]
    (line,) = ax.plot(ERASE_THRESHOLDS, values, marker=marker, label=column)
    ax.axhline(rows[-1][column], color=line.get_color(), linestyle="--", label=f"{column}, erasing off")
ax.set(xlabel="erase threshold δ", ylabel="%", ylim=(0, 100), title="ACoL: localization vs δ")
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
figure.tight_layout()
save_figure(figure, output / "maxboxacc_vs_delta.png")
figure

# %% [markdown]
# ## CAMs of two δ
# The fused map `max(norm(M^A), norm(M^B))` of the GT class on the same test images; GT boxes in
# green, the box at each model's validated threshold in red (`CAMVisualizer.render`).

# %%
figure = Figure(figsize=(2.2 * NUM_IMAGES, 2.4 * len(SHOWN_THRESHOLDS)))
axes = figure.subplots(len(SHOWN_THRESHOLDS), NUM_IMAGES, squeeze=False)
for row, delta in enumerate(SHOWN_THRESHOLDS):
    model = runs[f"δ={delta}"].model
    pictures, annotations = CAMVisualizer(num_images=NUM_IMAGES).render(model, data.get_dataset("test"))
    for ax, picture, annotation in zip(axes[row], pictures, annotations):
        ax.imshow(picture)
        ax.set_title(f"δ={delta}: class {annotation['label']}", fontsize=8)
        ax.axis("off")
figure.tight_layout()
save_figure(figure, output / "cams.png")
figure

# %% [markdown]
# ## What these numbers are
# The defaults above are a **smoke test** (a few steps on a few dozen images, chance-level
# classification): they check that every setting runs end to end, not which δ is best. For a
# meaningful sweep use the budget of `experiments/acol.yaml`: `TRAIN_STEPS = 375` (2 epochs of 6,000
# images at `BATCH_SIZE = 32`), `TRAIN_SIZE = 6000`, `EVAL_SIZE = 400`. One ACoL fit at that budget
# took 400 to 1,500 s on 2 CPU cores (BENCHMARKS.md; the slower one shared the cores with another
# fit), so the seven settings take one to three hours on CPU; on one GPU, minutes.
