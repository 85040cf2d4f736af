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
#
# A setting is `experiments/danet.yaml` plus command-line overrides (`--model.init_args.hda false`,
# `--model.init_args.num_maps 2`, ...). Each seed of it is trained with `wsol fit` and tested with
# `wsol test` in its own run folder (`wsol_lightning.ablation.train_and_test`, the runner of
# `wsol benchmark`); a row is the mean ± std over `SEEDS`.

# %% tags=["parameters"]
SEEDS = [0]              # seeds per setting; [0, 1, 2] gives mean ± std over three runs
RUN_OVERRIDES = [        # a smoke test (2 steps on 32 images at 64 px); [] runs the config's own budget
    "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
    "--trainer.logger", "false", "--trainer.callbacks", "[]",
    "--data.dataset.train_size", "32", "--data.dataset.val_size", "16", "--data.dataset.test_size", "16",
    "--data.batch_size", "8", "--data.num_workers", "0",
    "--data.dataset.image_size", "64", "--data.resize_size", "72", "--data.crop_size", "64",
]
NUM_MAPS = [8, 2]        # K values with DDA on (the config's K = 8 first; K = 1, DDA off, is always added)
NUM_IMAGES = 4           # test images drawn for the full and the plain setting
SHOWN_IMAGE = 0          # test image whose per-level maps are drawn
OUTPUT_DIR = "notebook_outputs/ablation_danet"  # PNGs and the run folders (runs/<setting>/seed<k>)

# %%
# %matplotlib inline
import logging
import re
import warnings
from pathlib import Path

import torch
import yaml
from IPython.display import Markdown, display
from matplotlib.figure import Figure

import wsol_lightning
from wsol_lightning.ablation import ablation_figure, ablation_rows, load_datamodule, train_and_test
from wsol_lightning.callbacks import CAMVisualizer
from wsol_lightning.callbacks.cam_visualizer import to_rgb_uint8
from wsol_lightning.compare import markdown_table
from wsol_lightning.hierarchy import load_hierarchy
from wsol_lightning.plots import save_figure

REPO = Path(wsol_lightning.__file__).resolve().parents[2]  # the repository (pip install -e .): experiments/
CONFIG = REPO / "experiments" / "danet.yaml"
logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)  # load_datamodule: no banners
warnings.filterwarnings("ignore", ".*LeafSpec.*")
output = Path(OUTPUT_DIR)
output.mkdir(parents=True, exist_ok=True)
init_args = yaml.safe_load(CONFIG.read_text())["model"]["init_args"]
hierarchy = load_hierarchy(init_args["hierarchy"])
print("levels, coarsest first:", dict(zip(hierarchy.level_names, hierarchy.level_sizes)))

# %% [markdown]
# ## Settings
# `experiments/danet.yaml` as shipped: ImageNet-pretrained EfficientNet-Lite0 fine-tuned with SGD
# at 128 px, one 256-wide head per level, HDA and DDA on with K = 8, the official cosine form and
# weights. "HDA off" keeps the finest level, with the finest level's head width of the config.

# %%
finest_only = ["--model.init_args.hda", "false",
               "--model.init_args.head_width", f"[{init_args['head_width'][-1]}]"]
dda_off = ["--model.init_args.dda", "false", "--model.init_args.num_maps", "1"]
settings = {f"HDA + DDA K={k}": ["--model.init_args.num_maps", str(k)] for k in NUM_MAPS}
settings["HDA, DDA off (K=1)"] = dda_off
settings[f"HDA off, DDA K={NUM_MAPS[0]}"] = [*finest_only, "--model.init_args.num_maps", str(NUM_MAPS[0])]
settings["HDA off, DDA off (K=1)"] = [*finest_only, *dda_off]

# %%
runs = {}
for name, overrides in settings.items():
    folder = output / "runs" / re.sub(r"[^A-Za-z0-9=]+", "_", name).strip("_")
    runs[name] = train_and_test(CONFIG, [*RUN_OVERRIDES, *overrides], folder, seeds=SEEDS)
    levels = " / ".join(
        f"{sum(run.metrics[key] for run in runs[name]) / len(runs[name]):.0f}"
        for key in sorted(k for k in runs[name][0].metrics if re.fullmatch(r"level\d+_top1", k))
    )
    fits = ", ".join(f"{run.fit_seconds:.0f} s" for run in runs[name])
    print(f"{name:22s} fit {fits}; top-1 per level (coarsest first, mean over seeds): {levels} %")

# %% [markdown]
# ## Metrics
# Localization in percent, mean ± std over the seeds; "peak on part" = share of test images whose
# map peak is on the discriminative part, "GT box covered" = mean share of the GT box inside the
# predicted box.

# %%
rows = ablation_rows(runs)
display(Markdown(markdown_table(rows)))
bars = ablation_figure(rows, title="DANet: HDA and DDA")
save_figure(bars, output / "metrics.png")
bars

# %% [markdown]
# ## Full vs plain: the localization maps
# The fused map of the GT class on the same test images for the full setting (HDA + DDA) and the
# plain one (one level, one map per class: a CAM with DANet's head), each the first seed's model
# loaded from its checkpoint; GT boxes in green, the box at each model's validated threshold in red
# (`CAMVisualizer.render`). The images are the runs' test split (`load_datamodule`: the config plus
# `RUN_OVERRIDES`).

# %%
data = load_datamodule(CONFIG, RUN_OVERRIDES)
shown = [f"HDA + DDA K={NUM_MAPS[0]}", "HDA off, DDA off (K=1)"]
figure = Figure(figsize=(2.2 * NUM_IMAGES, 2.4 * len(shown)))
axes = figure.subplots(len(shown), NUM_IMAGES, squeeze=False)
for row, name in enumerate(shown):
    model = runs[name][0].load_model()
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
# The full model (HDA + DDA with the first K, first seed): the top row shows the image, each level's
# map of the image's class (coarse: its group) as the evaluation computes it (mean of the ReLU'd K
# maps), and the fused localization map (their per-pixel average); the bottom row shows the K maps
# of the finest level, which the cosine loss pushes apart.

# %%
model = runs[f"HDA + DDA K={NUM_MAPS[0]}"][0].load_model()
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
# The defaults above are a **smoke test** (two steps on 32 images at 64 px, one seed): they check
# that every setting runs end to end, not what HDA or DDA are worth. For meaningful numbers set
# `RUN_OVERRIDES = []` (the config's own budget: 250 fine-tuning steps at 128 px, 200 val and 400
# test images; W&B logs offline unless credentials exist, add `"--trainer.logger", "false"` to skip
# it), `SEEDS = [0, 1, 2]` (each row is then mean ± std over three runs) and, for the paper's K
# sweep, `NUM_MAPS = [8, 4, 2]`. A CAM fit at that budget takes about 4-5 minutes on 2 CPU cores
# and a DANet step costs somewhat more than CAM's (its per-level heads; BENCHMARKS.md
# "Training-step time"), so the six settings x three seeds take a few hours on CPU, minutes each
# on a GPU. The "HDA + DDA K=8" row is, seed for seed, what `wsol benchmark --methods danet` reports.
