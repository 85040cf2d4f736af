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
# # Metrics explained: MaxBoxAccV2 vs GT-known Loc vs Top-1 Loc
#
# Four hand-made localization maps for one ground-truth box show what each metric rewards. No
# training: the maps are drawn directly. All metrics sweep the CAM threshold `t` (the map is
# min-max normalized, the foreground is `map > t * max`, and its contour gives the box).
#
# * **GT-known Loc**: share of images whose box at the best single `t` has IoU >= 50 % (class ignored).
# * **Top-1 Loc**: the same, counting an image only when the top-1 class is also right.
# * **MaxBoxAccV2** (wsolevaluation): the maximum over `t` of BoxAcc at IoU 30, 50 and 70 %, each
#   IoU its own best `t`, averaged; boxes from every contour.

# %% tags=["parameters"]
SIZE = 64                # map and image side (pixels)
CAM_CURVE_INTERVAL = 0.01
OUTPUT_DIR = "notebook_outputs/metrics_explained"

# %%
# %matplotlib inline
from pathlib import Path

import numpy as np
import torch
from IPython.display import display
from matplotlib.figure import Figure

from wsol_lightning.callbacks.cam_visualizer import GT_COLOUR, PRED_COLOUR, draw_boxes, overlay_cam
from wsol_lightning.callbacks.wandb_report import best_iou
from wsol_lightning.cam import cam_to_boxes
from wsol_lightning.metrics import GTKnownLoc, MaxBoxAccV2, TopKLoc
from wsol_lightning.plots import box_accuracy_curve_figure, save_figure

output = Path(OUTPUT_DIR)
output.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Four maps for one object
# The object's GT box covers the middle of the image. The maps:
# 1. **whole object**: a wide blob over the object, classified correctly;
# 2. **part only**: a sharp peak on a small part (the typical CAM failure), classified correctly;
# 3. **whole object, wrong class**: the good map, but the classifier's top-1 is wrong;
# 4. **two blobs**: the object and a distractor of similar strength.

# %%
yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)


def blob(cx: float, cy: float, sx: float, sy: float) -> np.ndarray:
    return np.exp(-(((xx - cx) / sx) ** 2 + ((yy - cy) / sy) ** 2) / 2)


s = SIZE / 64
gt_box = torch.tensor([[16 * s, 20 * s, 47 * s, 43 * s]]).round()
maps = {
    "whole object": blob(32 * s, 32 * s, 9 * s, 7 * s),
    "part only": blob(40 * s, 26 * s, 3 * s, 3 * s),
    "whole object, wrong class": blob(32 * s, 32 * s, 9 * s, 7 * s),
    "two blobs": blob(32 * s, 32 * s, 8 * s, 6 * s) + 0.9 * blob(8 * s, 54 * s, 4 * s, 4 * s),
}
top1_correct = torch.tensor([True, True, False, True])
cams = torch.from_numpy(np.stack(list(maps.values())))
boxes = [gt_box] * len(maps)

# %%
figure = Figure(figsize=(10, 2.8))
for ax, (name, cam) in zip(figure.subplots(1, len(maps)), maps.items()):
    picture = overlay_cam(np.full((SIZE, SIZE, 3), 128, np.uint8), cam / cam.max())
    picture = draw_boxes(picture, gt_box.numpy(), GT_COLOUR)
    picture = draw_boxes(picture, cam_to_boxes(cam / cam.max(), 0.3), PRED_COLOUR)
    ax.imshow(picture)
    ax.set_title(name, fontsize=9)
    ax.axis("off")
figure.suptitle("GT box green, box at threshold 0.3 red")
save_figure(figure, output / "maps.png")
figure

# %% [markdown]
# ## The three metrics on the same four maps

# %%
max_box_acc = MaxBoxAccV2(iou_thresholds=(30, 50, 70), cam_curve_interval=CAM_CURVE_INTERVAL)
gt_known = GTKnownLoc(cam_curve_interval=CAM_CURVE_INTERVAL)
top1_loc = TopKLoc(cam_curve_interval=CAM_CURVE_INTERVAL)
max_box_acc.update(cams, boxes)
gt_known.update(cams, boxes)
top1_loc.update(cams, boxes, top1_correct)
print(f"MaxBoxAccV2  {float(max_box_acc.compute()):5.1f} %")
print(f"GT-known Loc {float(gt_known.compute()):5.1f} %  (threshold {float(gt_known.best_threshold()):.2f})")
print(f"Top-1 Loc    {float(top1_loc.compute()):5.1f} %  (the wrong-class image no longer counts)")
for iou, (acc, threshold) in max_box_acc.compute_per_iou().items():
    print(f"  MaxBoxAcc at IoU {iou}%: {float(acc):5.1f} % at threshold {float(threshold):.2f}")

# %% [markdown]
# ## Per image: which threshold works
# IoU of the box with the GT box as the threshold moves. The part-only map never reaches the object's
# extent; the two-blob map needs a threshold above the distractor (the largest contour is kept for
# this plot, as GT-known does; MaxBoxAccV2 scores every contour's box and keeps the best).

# %%
thresholds = np.arange(0, 1, 0.05)
figure = Figure(figsize=(5, 3.5))
ax = figure.subplots()
for name, cam in maps.items():
    ious = [best_iou(cam_to_boxes(cam / cam.max(), t), gt_box.numpy()) for t in thresholds]
    ax.plot(thresholds, ious, label=name)
ax.axhline(0.5, color="grey", linestyle=":")
ax.set(xlabel="CAM threshold", ylabel="IoU with GT box", ylim=(0, 1))
ax.legend(fontsize=8)
save_figure(figure, output / "iou_vs_threshold.png")
figure

# %% [markdown]
# ## The threshold curve behind MaxBoxAccV2
# BoxAcc over the four images at each threshold, one line per IoU threshold; MaxBoxAccV2 is the
# mean of the three maxima (dots).

# %%
curve_thresholds, curve = max_box_acc.box_accuracy_curve()
curve_figure = box_accuracy_curve_figure(
    curve_thresholds.numpy(), curve.numpy(), max_box_acc.iou_thresholds, title="four hand-made maps"
)
save_figure(curve_figure, output / "box_acc_curve.png")
display(curve_figure)
