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
# # MRI: tumour localization, and the skull that draws the CAM
#
# A classifier trained on "tumour present?" is asked where the tumour is. The notes this project
# was built from observe that CAM on tumour MRI puts high weight on the **skull**, also in healthy
# slices, and propose labelling **head + tumour** vs **head + no tumour**: with a "head" class that
# every slice has, the skull (present everywhere) should explain "head", so the tumour class has
# no reason to use it. The co-attention model (MCIS, Sun et al., ECCV 2020) is the other candidate:
# it classifies what two slices share with their common labels and what one has alone with its
# unique ones (on a tumour / healthy pair: the tumour).
#
# The built-in `SyntheticMRI` set knows where the skull is (a bright ring, the brightest structure
# of every slice), so the effect is measured: **skull share** = the share of the tumour-class map's
# mass (min-max normalized at the image size, as the evaluation does) on the skull ring, averaged
# over tumour slices (`test/skull_cam_share`) and over healthy ones
# (`test/skull_cam_share_no_tumour`), next to the tumour localization (PxAP over the tumour masks,
# MaxBoxAccV2 over the tumour boxes). A map spread evenly would score the ring's area share.
#
# Variants (resnet18 from scratch, Adam, as `experiments/cam.yaml` / `experiments/mcis.yaml`):
# CAM single-label, CAM multi-label (`data.dataset.multilabel: true`), MCIS multi-label with its
# single-image map, and the same MCIS weights read with the co-attention map. The parameter cell
# keeps it tiny (a few steps: the numbers are noise); BENCHMARKS.md ("MRI: skull share") has the
# run at a real budget (`benchmarks/mri_skull_share.py`).

# %% tags=["parameters"]
TRAIN_STEPS = 4          # optimizer steps per variant (2 epochs of 2,000 slices at batch 32: ~125)
TRAIN_SIZE = 32          # synthetic training slices
EVAL_SIZE = 16           # synthetic validation and test slices (half with a tumour)
IMAGE_SIZE = 32          # slice side in pixels (experiments/data/synthetic_mri.yaml: 64)
BATCH_SIZE = 8
MCIS_WIDTH = 64          # MCIS extra-conv / co-attention channels (experiments/mcis.yaml: 512)
NUM_SLICES = 4           # test slices drawn per variant (the first tumour and healthy ones)
OUTPUT_DIR = "notebook_outputs/mri"  # PNGs are written here as well as shown

# %%
# %matplotlib inline
import logging
import warnings
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch
from IPython.display import Markdown, display
from matplotlib.figure import Figure

from wsol_lightning.ablation import AblationRun, ablation_figure, ablation_rows, fit_and_test, validate_and_test
from wsol_lightning.callbacks.cam_visualizer import overlay_cam, to_rgb_uint8
from wsol_lightning.cam import normalize_cam, resize_cam
from wsol_lightning.compare import markdown_table
from wsol_lightning.data import SyntheticMRI, WSOLDataModule, collate
from wsol_lightning.data.datasets.mri import TUMOUR_CLASS
from wsol_lightning.models import CAM, MCIS
from wsol_lightning.plots import save_figure

warnings.filterwarnings("ignore", ".*does not have many workers.*")
logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)
output = Path(OUTPUT_DIR)
output.mkdir(parents=True, exist_ok=True)
UPSCALE = 4  # drawn slices are upscaled (nearest) so the contours stay visible

# %% [markdown]
# ## The data
# Grey brain tissue inside a bright skull ring; half of the slices carry a bright tumour blob (GT
# mask and boxes), never on the skull. Skull outline in cyan, tumour outline in green.

# %%
def mri_data(multilabel: bool, paired: bool = False) -> WSOLDataModule:
    return WSOLDataModule(
        SyntheticMRI(image_size=IMAGE_SIZE, train_size=TRAIN_SIZE, val_size=EVAL_SIZE, test_size=EVAL_SIZE,
                     multilabel=multilabel),
        resize_size=IMAGE_SIZE + IMAGE_SIZE // 8, crop_size=IMAGE_SIZE, batch_size=BATCH_SIZE, num_workers=0,
        pair_sampling=paired, different_class_pairs=BATCH_SIZE // 8 if paired else 0,
    )


def upscale(picture: np.ndarray) -> np.ndarray:
    return cv2.resize(picture, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_NEAREST)


def draw(picture: np.ndarray, skull: np.ndarray, tumour: np.ndarray) -> np.ndarray:
    """The RGB slice upscaled, the skull ring outlined in cyan and the tumour in green."""
    drawn = upscale(picture)
    for mask, colour in ((skull, (0, 255, 255)), (tumour, (0, 255, 0))):
        contours, _ = cv2.findContours(upscale(mask.astype(np.uint8)), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
        drawn = cv2.drawContours(drawn, contours, -1, colour, 1)
    return drawn


test_split = mri_data(multilabel=False).get_dataset("test")
test_batch = collate([test_split[i] for i in range(len(test_split))])
has_tumour = test_batch.label == TUMOUR_CLASS
first_tumour = has_tumour.nonzero().flatten()[: NUM_SLICES // 2]
first_healthy = (~has_tumour).nonzero().flatten()[: NUM_SLICES - NUM_SLICES // 2]
shown = torch.cat([first_tumour, first_healthy]).tolist()
skull_area = 100.0 * test_batch.skull_mask.flatten(1).float().mean(dim=1).mean().item()
print(f"test slices: {len(test_split)} ({int(has_tumour.sum())} with a tumour); "
      f"the skull ring covers {skull_area:.1f}% of a slice on average (a uniform map's skull share)")

figure = Figure(figsize=(2.2 * len(shown), 2.5))
for ax, index in zip(figure.subplots(1, len(shown)), shown):
    ax.imshow(draw(to_rgb_uint8(test_batch.image[index]), test_batch.skull_mask[index].numpy(),
                   test_batch.mask[index].numpy()))
    ax.set_title("tumour" if has_tumour[index] else "no tumour", fontsize=8)
    ax.axis("off")
figure.tight_layout()
save_figure(figure, output / "slices.png")
figure

# %% [markdown]
# ## Train and test the variants
# `data.dataset.multilabel` turns the targets into multi-hot `{head, tumour}`
# (`multi_hot = [1, tumour]`; `label` stays 1 iff tumour): the models train with the multilabel
# soft margin loss and report `cls_exact_match` instead of `cls_top1`. MCIS takes pairs
# (`pair_sampling`; a quarter of them a tumour and a healthy slice, whose unique label is the
# tumour) with the flip self-pair only, as in the BENCHMARKS.md run. Every variant starts from the
# same seed, chooses its CAM threshold on the validation split and is tested
# (`wsol_lightning.ablation.fit_and_test`).

# %%
settings = dict(num_classes=2, backbone="resnet18", pretrained=False, optimizer="adam", lr=1e-3,
                head_lr_multiplier=1.0, weight_decay=1e-4)
mcis_settings = dict(num_extra_convs=3, head_width=MCIS_WIDTH, label_loss="mlsm", contrastive_start_epoch=1,
                     self_pair_flip=True, self_pair_scales=(), **settings)
single_data, multi_data, paired_data = mri_data(False), mri_data(True), mri_data(True, paired=True)
runs = {
    "CAM": fit_and_test(partial(CAM, **settings), single_data, TRAIN_STEPS),
    "CAM multi-label": fit_and_test(partial(CAM, multilabel=True, **settings), multi_data, TRAIN_STEPS),
    "MCIS multi-label": fit_and_test(partial(MCIS, multilabel=True, **mcis_settings), paired_data, TRAIN_STEPS),
}
# the same weights, evaluated with the co-attention map (self-pair + same-class partners of the batch)
coattention = MCIS(multilabel=True, localization_map="coattention", **mcis_settings)
coattention.load_state_dict(runs["MCIS multi-label"].model.state_dict())
runs["MCIS co-attention map"] = AblationRun(coattention, validate_and_test(coattention, paired_data), 0.0)
for name, run in runs.items():
    print(f"{name:22s} fit {run.fit_seconds:5.1f} s, CAM threshold {float(run.model.cam_threshold):.2f}")

# %% [markdown]
# ## Skull share and tumour localization
# Skull share in percent of the tumour-class map's mass (lower is better; a uniform map scores the
# ring's area share printed above). Tumour localization on the tumour slices' tumour maps, the
# like-for-like comparison: PxAP over the tumour slices (`pxap_with_object`), MaxBoxAccV2 and
# GT-known Loc. `PxAP` over all slices also counts each healthy slice (all background) with its
# GT-class map: the `no_tumour` class's in single-label, the `head` class's in multi-label, so it
# does not compare across the two. Classification: top-1 (single-label) or exact match of
# `sigmoid > 0.5` over {head, tumour} (multi-label).

# %%
columns = {
    "test/skull_cam_share": ("skull share, tumour", 1.0),
    "test/skull_cam_share_no_tumour": ("skull share, no tumour", 1.0),
    "test/pxap_with_object": ("PxAP, tumour slices", 1.0),
    "test/maxboxacc_v2": ("MaxBoxAccV2", 1.0),
    "test/pxap": ("PxAP, all slices", 1.0),
    "test/gt_known_loc": ("GT-known Loc", 1.0),
    "test/cls_top1": ("cls top-1", 100.0),
    "test/cls_exact_match": ("cls exact match", 100.0),
}
rows = ablation_rows(runs, columns, label="variant")
display(Markdown(markdown_table(rows)))

# %%
figure = Figure(figsize=(6, 3.5))
ax = figure.subplots()
positions = np.arange(len(rows))
for offset, column in enumerate(("skull share, tumour", "skull share, no tumour")):
    bars = ax.bar(positions + (offset - 0.5) * 0.38, [row[column] for row in rows], 0.38, label=column)
    ax.bar_label(bars, fmt="%.1f", fontsize=7)
ax.axhline(skull_area, color="grey", linestyle="--", label=f"skull area ({skull_area:.1f}%): uniform map")
ax.set_xticks(positions, [row["variant"] for row in rows], rotation=15, ha="right", fontsize=8)
ax.set(ylabel="% of the tumour-class map's mass", title="Tumour-class map on the skull ring")
ax.legend(fontsize=7)
figure.tight_layout()
save_figure(figure, output / "skull_share.png")
figure

# %%
kept = ("variant", "PxAP, tumour slices", "MaxBoxAccV2", "GT-known Loc")
localization = ablation_figure(
    [{k: v for k, v in row.items() if k in kept} for row in rows], title="Tumour localization", label="variant"
)
save_figure(localization, output / "localization.png")
localization

# %% [markdown]
# ## The tumour-class maps
# Each variant's tumour-class map (JET) on the same test slices, tumour and healthy, with the skull
# ring (cyan) and the tumour (green) outlined; the title gives the slice's skull share.

# %%
def tumour_maps(model: torch.nn.Module, indices: list[int]) -> np.ndarray:
    """Normalized tumour-class maps ``[N, H, W]`` of the test slices ``indices`` (one batch)."""
    images = test_batch.image[indices].to(model.device)
    classes = torch.full((len(indices),), TUMOUR_CLASS, device=model.device)
    with torch.no_grad():
        maps = model.model.localize(images, classes).maps
    maps = resize_cam(maps.float().cpu().numpy().astype(np.float64), tuple(images.shape[-2:]))
    return np.stack([normalize_cam(m) for m in maps])


figure = Figure(figsize=(2.2 * len(shown), 2.4 * len(runs)))
axes = figure.subplots(len(runs), len(shown), squeeze=False)
for row, name in enumerate(runs):
    for ax, index, cam in zip(axes[row], shown, tumour_maps(runs[name].model, shown)):
        skull = test_batch.skull_mask[index].numpy()
        share = 100.0 * (cam * skull).sum() / cam.sum() if cam.sum() > 0 else 100.0 * skull.mean()
        picture = overlay_cam(to_rgb_uint8(test_batch.image[index]), cam)
        ax.imshow(draw(picture, skull, test_batch.mask[index].numpy()))
        kind = "tumour" if has_tumour[index] else "no tumour"
        ax.set_title(f"{name}\n{kind}, skull {share:.0f}%", fontsize=7)
        ax.axis("off")
figure.tight_layout()
save_figure(figure, output / "overlays.png")
figure

# %% [markdown]
# ## Reading it
# At these tiny defaults the models have barely trained: the numbers above say nothing yet. For a
# meaningful run set `TRAIN_STEPS = 125`, `TRAIN_SIZE = 2000`, `EVAL_SIZE = 400`, `IMAGE_SIZE = 64`,
# `BATCH_SIZE = 32`, `MCIS_WIDTH = 512` (about half an hour of CPU). That budget through the CLI
# (BENCHMARKS.md, "MRI: skull share") gave: single-label CAM 10.9% / 12.9% skull share (tumour /
# healthy slices) against the ring's 12.0% area, so no skull pull on this synthetic set; multi-label
# CAM 10.4% / 12.8%, the same skull share but better tumour localization in that one run
# (MaxBoxAccV2 14.8 -> 19.8, PxAP on tumour slices 26.1 -> 30.3); MCIS (multi-label) a nearly flat
# tumour map (12.0% / 12.3%, MaxBoxAccV2 0.0), with either map.

# %%
print(sorted(p.name for p in output.glob("*.png")))
