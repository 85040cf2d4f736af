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
# # Quickstart: train CAM and ACoL, look at their maps and boxes
#
# Everything runs on CPU on the built-in synthetic set (coloured shapes whose class is decided by a
# small discriminative part, so a classifier's CAM tends to sit on the part, not the whole object).
# The parameter cell keeps it tiny; raise `TRAIN_STEPS` and the set sizes for meaningful numbers
# (`experiments/cam.yaml` is the full synthetic recipe).

# %% tags=["parameters"]
TRAIN_STEPS = 4          # optimizer steps per method
TRAIN_SIZE = 64          # synthetic training images
EVAL_SIZE = 16           # synthetic validation and test images
BATCH_SIZE = 16
NUM_IMAGES = 4           # images shown per method
OUTPUT_DIR = "notebook_outputs/quickstart"  # PNGs are written here as well as shown

# %%
# %matplotlib inline
import warnings
from pathlib import Path

import pytorch_lightning as pl
from IPython.display import display
from matplotlib.figure import Figure

from wsol_lightning.callbacks import CAMVisualizer
from wsol_lightning.data import Synthetic, WSOLDataModule
from wsol_lightning.models import ACoL, CAM
from wsol_lightning.plots import box_accuracy_curve_figure, save_figure

warnings.filterwarnings("ignore", ".*does not have many workers.*")
output = Path(OUTPUT_DIR)
output.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Data and models
# The datamodule is the one the CLI uses; the methods are `WSOLModule` subclasses. `resnet18` from
# scratch with Adam, as in `experiments/cam.yaml`.

# %%
def datamodule() -> WSOLDataModule:
    return WSOLDataModule(
        Synthetic(train_size=TRAIN_SIZE, val_size=EVAL_SIZE, test_size=EVAL_SIZE),
        batch_size=BATCH_SIZE, num_workers=0,
    )


settings = dict(backbone="resnet18", pretrained=False, optimizer="adam", lr=1e-3, head_lr_multiplier=1.0)
models = {"CAM": CAM(num_classes=8, **settings), "ACoL": ACoL(num_classes=8, foreground_threshold=0.6, **settings)}

# %% [markdown]
# ## Train and test
# Validation picks the CAM threshold (GT-known's optimum); test reports MaxBoxAccV2, GT-known Loc,
# Top-1 Loc and classification accuracy with it.

# %%
results = {}
for name, model in models.items():
    pl.seed_everything(0)
    data = datamodule()
    trainer = pl.Trainer(
        max_steps=TRAIN_STEPS, limit_val_batches=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
    )
    trainer.fit(model, datamodule=data)
    (results[name],) = trainer.test(model, datamodule=data, verbose=False)
    results[name]["datamodule"] = data

for name, metrics in results.items():
    print(f"{name:5s} MaxBoxAccV2 {metrics['test/maxboxacc_v2']:5.1f}  "
          f"GT-known {metrics['test/gt_known_loc']:5.1f}  Top-1 Loc {metrics['test/top1_loc']:5.1f}  "
          f"cls top-1 {100 * metrics['test/cls_top1']:5.1f}")

# %% [markdown]
# ## CAMs and boxes
# `CAMVisualizer.render` draws the GT-class map over the image, GT boxes in green and the predicted
# box (largest contour at the validated threshold) in red.

# %%
figure = Figure(figsize=(2.2 * NUM_IMAGES, 2.4 * len(models)))
axes = figure.subplots(len(models), NUM_IMAGES, squeeze=False)
for row, (name, model) in enumerate(models.items()):
    model.eval()
    pictures, annotations = CAMVisualizer(num_images=NUM_IMAGES).render(
        model, results[name]["datamodule"].get_dataset("test")
    )
    for ax, picture, annotation in zip(axes[row], pictures, annotations):
        ax.imshow(picture)
        ax.set_title(f"{name}: class {annotation['label']}", fontsize=8)
        ax.axis("off")
figure.tight_layout()
save_figure(figure, output / "cams.png")
figure

# %% [markdown]
# ## BoxAcc vs CAM threshold
# MaxBoxAccV2 is the mean over IoU 30/50/70 % of each curve's maximum; the marked dots are those maxima.

# %%
for name, model in models.items():
    thresholds, box_acc, ious = model.box_accuracy_curve("test")
    curve = box_accuracy_curve_figure(thresholds.numpy(), box_acc.numpy(), ious, title=name)
    save_figure(curve, output / f"box_acc_curve_{name.lower()}.png")
    display(curve)
print(sorted(p.name for p in output.glob("*.png")))
