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
# Each method is its config, `experiments/cam.yaml` and `experiments/acol.yaml`: an
# ImageNet-pretrained EfficientNet-Lite0 fine-tuned with SGD at 128 px. Each is trained with
# `wsol fit` and tested with `wsol test` (`wsol_lightning.ablation.train_and_test`, the runner of
# `wsol benchmark`); the parameter cell shrinks the runs to a smoke test with command-line
# overrides.

# %% tags=["parameters"]
SEEDS = [0]              # seeds per method; [0, 1, 2] gives mean ± std over three runs
RUN_OVERRIDES = [        # a smoke test (2 steps on 32 images at 64 px); [] runs the config's own budget
    "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
    "--trainer.logger", "false", "--trainer.callbacks", "[]",
    "--data.dataset.train_size", "32", "--data.dataset.val_size", "16", "--data.dataset.test_size", "16",
    "--data.batch_size", "8", "--data.num_workers", "0",
    "--data.dataset.image_size", "64", "--data.resize_size", "72", "--data.crop_size", "64",
]
NUM_IMAGES = 4           # images shown per method
OUTPUT_DIR = "notebook_outputs/quickstart"  # PNGs and the run folders (runs/<method>/seed<k>)

# %%
# %matplotlib inline
import logging
import warnings
from pathlib import Path

from IPython.display import Markdown, display
from matplotlib.figure import Figure

import wsol_lightning
from wsol_lightning.ablation import ablation_rows, evaluate, load_datamodule, train_and_test
from wsol_lightning.callbacks import CAMVisualizer
from wsol_lightning.compare import markdown_table
from wsol_lightning.plots import box_accuracy_curve_figure, save_figure

REPO = Path(wsol_lightning.__file__).resolve().parents[2]  # the repository (pip install -e .): experiments/
CONFIGS = {"CAM": REPO / "experiments" / "cam.yaml", "ACoL": REPO / "experiments" / "acol.yaml"}
logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)  # in-process evaluation: no banners
warnings.filterwarnings("ignore", ".*LeafSpec.*")
output = Path(OUTPUT_DIR)
output.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## Train and test
# A run is a folder: `wsol fit` writes its checkpoint (`checkpoints/last.ckpt`) and, at the end of
# its last epoch, validation chooses the CAM threshold (GT-known's optimum on the val split);
# `wsol test` then reports MaxBoxAccV2, GT-known Loc and Top-1 Loc at that threshold, and the
# classification accuracy. Metrics are in percent; a row is the mean ± std over `SEEDS`.

# %%
runs = {}
for name, config in CONFIGS.items():
    runs[name] = train_and_test(config, RUN_OVERRIDES, output / "runs" / name.lower(), seeds=SEEDS)
    print(f"{name:5s} fit {', '.join(f'{run.fit_seconds:.0f} s' for run in runs[name])}")
display(Markdown(markdown_table(ablation_rows(runs, label="method"))))

# %% [markdown]
# ## CAMs and boxes
# Each first-seed model is loaded from its checkpoint (`run.load_model()`, eval mode, with the
# threshold its fit chose). `CAMVisualizer.render` draws the GT-class map over the image, GT boxes
# in green and the predicted box (largest contour at the validated threshold) in red, on the test
# images of the same data (`load_datamodule`: the config plus `RUN_OVERRIDES`, as the CLI builds it).

# %%
data = load_datamodule(CONFIGS["CAM"], RUN_OVERRIDES)  # ACoL's config has the same data section
models = {name: method_runs[0].load_model() for name, method_runs in runs.items()}
figure = Figure(figsize=(2.2 * NUM_IMAGES, 2.4 * len(models)))
axes = figure.subplots(len(models), NUM_IMAGES, squeeze=False)
for row, (name, model) in enumerate(models.items()):
    pictures, annotations = CAMVisualizer(num_images=NUM_IMAGES).render(model, data.get_dataset("test"))
    for ax, picture, annotation in zip(axes[row], pictures, annotations):
        ax.imshow(picture)
        ax.set_title(f"{name}: class {annotation['label']}", fontsize=8)
        ax.axis("off")
figure.tight_layout()
save_figure(figure, output / "cams.png")
figure

# %% [markdown]
# ## BoxAcc vs CAM threshold
# `evaluate` repeats in this process what the run did (choose the threshold on val, then test), which
# leaves the test split's BoxAcc curve on the model. MaxBoxAccV2 is the mean over IoU 30/50/70 % of
# each curve's maximum; the marked dots are those maxima. The printed MaxBoxAccV2 is the same
# number `wsol test` reported above.

# %%
for name, model in models.items():
    metrics = evaluate(model, data)
    print(f"{name:5s} MaxBoxAccV2 {metrics['maxboxacc_v2']:5.1f} here, "
          f"{runs[name][0].metrics['maxboxacc_v2']:5.1f} from wsol test")
    thresholds, box_acc, ious = model.box_accuracy_curve("test")
    curve = box_accuracy_curve_figure(thresholds.numpy(), box_acc.numpy(), ious, title=name)
    save_figure(curve, output / f"box_acc_curve_{name.lower()}.png")
    display(curve)
print(sorted(p.name for p in output.glob("*.png")))

# %% [markdown]
# ## Meaningful numbers
# The defaults are a smoke test (two steps on 32 images at 64 px: chance-level classification).
# `RUN_OVERRIDES = []` trains each config at its own budget (250 fine-tuning steps at 128 px; a CAM
# fit takes about 4-5 minutes on 2 CPU cores, ACoL's longer) and `SEEDS = [0, 1, 2]` makes each row
# a mean ± std over three runs. These are the per-seed numbers `wsol benchmark --methods cam acol
# --seeds 0 1 2` reports, which adds CAM-paired differences with intervals.
