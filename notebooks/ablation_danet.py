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
# # DANet ablation: hierarchy levels (HDA) and maps per class (DDA)
#
# DANet (Xue et al., ICCV 2019) makes activation diverge over the object in two ways. **HDA**
# (hierarchical divergent activation) puts a classifier of coarser classes on an earlier backbone
# unit and fuses every level's map per pixel; a coarse class is recognised from what its children
# share, so its map covers more of the object. **DDA** (discrepant divergent activation) gives every
# class K maps, pushed apart by a cosine-similarity loss, and averages them.
# **The question:** what does each part add, and how many maps K? This mirrors the paper's ablation
# of HDA and DDA (each on/off, and the number of maps K; see `shared/papers/danet.md` for what is
# known of it). The switches are the init arguments of `wsol_lightning.models.DANet` (`hda`,
# `levels`, `dda`, `num_maps`; `models/danet/README.md`).
#
# The synthetic set's hierarchy has two levels (4 groups sharing a body hue -> 8 classes), so
# "which levels" is both (HDA) or the finest only (HDA off); a 3-level hierarchy (`cub`) adds the
# middle-level choices of `levels`. `K = 1` has no pair of maps to push apart: it is "DDA off" with
# one map per class, the official HDA-only network.

# %% tags=["parameters"]
TRAIN_STEPS = 2          # optimizer steps per setting
TRAIN_SIZE = 24          # synthetic training images
EVAL_SIZE = 16           # synthetic validation and test images
BATCH_SIZE = 8
NUM_MAPS = [4, 2]        # K values with DDA on (K = 1, DDA off, is always added)
HEAD_WIDTH = 64          # hidden width of every level's head (experiments/danet.yaml: 256)
NUM_IMAGES = 4           # test images drawn for the full and the plain setting
SHOWN_IMAGE = 0          # test image whose per-level maps are drawn
OUTPUT_DIR = "notebook_outputs/ablation_danet"  # PNGs are written here as well as shown

# %%
# %matplotlib inline
import logging
import warnings
from functools import partial
from pathlib import Path

import torch
from IPython.display import Markdown, display
from matplotlib.figure import Figure

from wsol_lightning.ablation import ablation_figure, ablation_rows, fit_and_test
from wsol_lightning.callbacks import CAMVisualizer
from wsol_lightning.callbacks.cam_visualizer import to_rgb_uint8
from wsol_lightning.compare import markdown_table
from wsol_lightning.data import Synthetic, WSOLDataModule
from wsol_lightning.hierarchy import load_hierarchy
from wsol_lightning.models import DANet
from wsol_lightning.plots import save_figure

warnings.filterwarnings("ignore", ".*does not have many workers.*")
logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
output = Path(OUTPUT_DIR)
output.mkdir(parents=True, exist_ok=True)
hierarchy = load_hierarchy("synthetic")
print("levels, coarsest first:", dict(zip(hierarchy.level_names, hierarchy.level_sizes)))

# %% [markdown]
# ## Settings
# `experiments/danet.yaml` on a tiny budget (resnet18 from scratch, Adam, the official cosine
# form and weights), with narrower heads.

# %%
data = WSOLDataModule(
    Synthetic(train_size=TRAIN_SIZE, val_size=EVAL_SIZE, test_size=EVAL_SIZE),
    batch_size=BATCH_SIZE, num_workers=0,
)
settings = dict(num_classes=8, backbone="resnet18", pretrained=False, optimizer="adam", lr=1e-3,
                head_lr_multiplier=1.0, weight_decay=1e-4, hierarchy="synthetic")
both_levels = dict(hda=True, head_width=[HEAD_WIDTH] * hierarchy.num_levels)
finest_only = dict(hda=False, head_width=[HEAD_WIDTH])
danet = partial(DANet, **settings)
configs = {f"HDA + DDA K={k}": partial(danet, dda=True, num_maps=k, **both_levels) for k in NUM_MAPS}
configs["HDA, DDA off (K=1)"] = partial(danet, dda=False, num_maps=1, **both_levels)
configs[f"HDA off, DDA K={NUM_MAPS[0]}"] = partial(danet, dda=True, num_maps=NUM_MAPS[0], **finest_only)
configs["HDA off, DDA off (K=1)"] = partial(danet, dda=False, num_maps=1, **finest_only)

# %%
runs = {name: fit_and_test(build, data, TRAIN_STEPS) for name, build in configs.items()}
for name, run in runs.items():
    levels = " / ".join(f"{100 * run.metrics.get(f'test/level{k}_top1', float('nan')):.0f}"
                        for k in range(run.model.hierarchy.num_levels))
    print(f"{name:22s} fit {run.fit_seconds:5.1f} s, top-1 per level (coarsest first): {levels} %")

# %% [markdown]
# ## Metrics
# Localization in percent; "peak on part" = share of test images whose map peak is on the
# discriminative part, "GT box covered" = mean share of the GT box inside the predicted box.

# %%
rows = ablation_rows(runs)
display(Markdown(markdown_table(rows)))
bars = ablation_figure(rows, title="DANet: HDA and DDA")
save_figure(bars, output / "metrics.png")
bars

# %% [markdown]
# ## Full vs plain: the localization maps
# The fused map of the GT class on the same test images for the full setting (HDA + DDA) and the
# plain one (one level, one map per class: a CAM with DANet's head); GT boxes in green, the box at
# each model's validated threshold in red (`CAMVisualizer.render`).

# %%
shown = [f"HDA + DDA K={NUM_MAPS[0]}", "HDA off, DDA off (K=1)"]
figure = Figure(figsize=(2.2 * NUM_IMAGES, 2.4 * len(shown)))
axes = figure.subplots(len(shown), NUM_IMAGES, squeeze=False)
for row, name in enumerate(shown):
    model = runs[name].model
    pictures, annotations = CAMVisualizer(num_images=NUM_IMAGES).render(model, data.get_dataset("test"))
    for ax, picture, annotation in zip(axes[row], pictures, annotations):
        ax.imshow(picture)
        ax.set_title(f"{name}: class {annotation['label']}", fontsize=7)
        ax.axis("off")
figure.tight_layout()
save_figure(figure, output / "cams.png")
figure

# %% [markdown]
# ## Per-level maps of one image
# The full model (HDA + DDA with the first K): the top row shows the image, each level's map of the
# image's class (coarse: its group) as the evaluation computes it (mean of the ReLU'd K maps), and
# the fused localization map (their per-pixel average); the bottom row shows the K maps of the
# finest level, which the cosine loss pushes apart.

# %%
model = runs[f"HDA + DDA K={NUM_MAPS[0]}"].model
sample = data.get_dataset("test")[SHOWN_IMAGE]
label = torch.tensor([int(sample["label"])])
with torch.no_grad():
    out = model.model(sample["image"][None].to(model.device))
    level_labels = model.model.level_labels(label)
    fused = model.model.fused_maps(out.level_maps, label)[0]
level_maps = [maps[0, int(lab)] for maps, lab in zip(out.level_maps, level_labels)]  # [K, h, w] each
num_maps = level_maps[-1].shape[0]
columns = max(2 + len(level_maps), num_maps)
figure = Figure(figsize=(2.2 * columns, 4.6))
axes = figure.subplots(2, columns, squeeze=False)
extent = (0, sample["image"].shape[-1], sample["image"].shape[-2], 0)
axes[0, 0].imshow(to_rgb_uint8(sample["image"]))
axes[0, 0].set_title(f"test image {SHOWN_IMAGE}, class {int(label)}", fontsize=8)
top = [(f"{name} {int(lab)}", maps.relu().mean(dim=0)) for name, lab, maps in
       zip(model.hierarchy.level_names, level_labels, level_maps)] + [("fused", fused)]
for ax, (title, values) in zip(axes[0, 1:], top):
    ax.imshow(values.cpu().numpy(), cmap="jet", extent=extent, interpolation="nearest")
    ax.set_title(title, fontsize=8)
for k, ax in enumerate(axes[1, :num_maps]):
    ax.imshow(level_maps[-1][k].cpu().numpy(), cmap="jet", extent=extent, interpolation="nearest")
    ax.set_title(f"{model.hierarchy.level_names[-1]} map k={k}", fontsize=8)
for ax in axes.flat:
    ax.axis("off")
figure.tight_layout()
save_figure(figure, output / "level_maps.png")
figure

# %% [markdown]
# ## What these numbers are
# The defaults above are a **smoke test** (a few steps on a few dozen images, chance-level
# classification): they check that every setting runs end to end, not what HDA or DDA are worth.
# For a meaningful run use the budget of `experiments/danet.yaml`: `TRAIN_STEPS = 375` (2 epochs of
# 6,000 images at `BATCH_SIZE = 32`), `TRAIN_SIZE = 6000`, `EVAL_SIZE = 400`, `HEAD_WIDTH = 256`,
# `NUM_MAPS = [8, 4, 2]`; one DANet fit at that budget took 301 s on 2 CPU cores (BENCHMARKS.md),
# so the six settings take about half an hour on CPU.
