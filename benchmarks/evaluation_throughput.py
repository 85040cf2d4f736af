"""Evaluation throughput (issue 24): images per second of ``trainer.validate`` on one fixed set.

Three modes on the same network weights and the same batches, interleaved over the repeats:

* ``forward``: the network's ``localize`` only (logits and maps, maps copied to the CPU), no metric;
* ``serial``: forward plus our evaluation in the step (``evaluation_overlap: false``): the
  float64 bicubic resize, the MaxBoxAccV2 sweep, the shared GT-known / Top-1 / Top-5 sweep, the
  classification accuracy;
* ``overlapped``: the same evaluation on the Evaluator's worker thread while the next batch's
  forward runs (``evaluation_overlap: true``, the default).

The serial and overlapped metric values must be identical (the script fails otherwise). The maps
come from a CAM with random weights on random images with one random box each, so their
smoothness (and the sweep's cost) is that of a network's upsampled feature map, not of a trained one.

Usage (figures in BENCHMARKS.md, "Evaluation throughput"):

    # this CPU: torch on one thread, so the evaluation worker has the second core
    PYTHONPATH=src python benchmarks/evaluation_throughput.py --backbone resnet18 --threads 1
    # a GPU: ResNet50 at 224 in bf16
    PYTHONPATH=src python benchmarks/evaluation_throughput.py --backbone resnet50 --accelerator gpu \\
        --precision bf16-mixed --images 2048 --batch-size 128
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings

import pytorch_lightning as pl
import torch
from evaluation_step import make_batch  # this folder's script (on sys.path when run as a script)
from torch.utils.data import DataLoader

from wsol_lightning.data import WSOLBatch
from wsol_lightning.models import CAM

MODES = ("forward", "serial", "overlapped")
NUM_CLASSES = 200


class ForwardOnlyCAM(CAM):
    """CAM whose evaluation step is the forward pass only (maps to the CPU, nothing scored)."""

    def validation_step(self, batch: WSOLBatch, batch_idx: int) -> None:
        with torch.no_grad():
            self.model.localize(batch.image, batch.label).maps.float().cpu()

    def on_validation_epoch_end(self) -> None:
        pass


def fixed_batches(images: int, batch_size: int, image_size: int) -> list[WSOLBatch]:
    """``evaluation_step.make_batch`` batches (random images, one random box each), one seed per batch."""
    return [make_batch(min(batch_size, images - start), image_size, NUM_CLASSES, seed=start)
            for start in range(0, images, batch_size)]


def build_models(backbone: str) -> dict[str, CAM]:
    """The three modes' modules with one set of weights."""
    serial = CAM(num_classes=NUM_CLASSES, backbone=backbone, pretrained=False, evaluation_overlap=False)
    models = {"forward": ForwardOnlyCAM(num_classes=NUM_CLASSES, backbone=backbone, pretrained=False),
              "serial": serial,
              "overlapped": CAM(num_classes=NUM_CLASSES, backbone=backbone, pretrained=False, evaluation_overlap=True)}
    for model in models.values():
        model.load_state_dict(serial.state_dict())
    return models


def validate(model: CAM, loader: DataLoader, args: argparse.Namespace) -> tuple[float, dict[str, float]]:
    """Seconds of one ``trainer.validate`` and its logged metrics."""
    trainer = pl.Trainer(accelerator=args.accelerator, devices=1, precision=args.precision, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    if args.accelerator != "cpu" and torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    results = trainer.validate(model, dataloaders=loader, verbose=False)
    if args.accelerator != "cpu" and torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, {k: float(v) for k, v in results[0].items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--images", type=int, default=256, help="images in the fixed set")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timed validations per mode (median reported)")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pl.seed_everything(0, verbose=False)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    loader = DataLoader(fixed_batches(args.images, args.batch_size, args.image_size), batch_size=None)
    models = build_models(args.backbone)
    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    metrics: dict[str, dict[str, float]] = {}
    for repeat in range(args.repeats + 1):  # the first round warms up (numba, cuDNN) and is not timed
        for mode in MODES:
            elapsed, metrics[mode] = validate(models[mode], loader, args)
            if repeat:
                seconds[mode].append(elapsed)
    if metrics["serial"] != metrics["overlapped"] or "val/maxboxacc_v2" not in metrics["serial"]:
        print(f"metric values differ:\n serial     {metrics['serial']}\n overlapped {metrics['overlapped']}")
        return 1

    device = torch.cuda.get_device_name() if args.accelerator != "cpu" and torch.cuda.is_available() else "CPU"
    print(f"{args.backbone} at {args.image_size} px, {args.images} images in batches of {args.batch_size}, "
          f"{args.precision}, {device}, torch threads {args.threads}, median of {args.repeats}")
    forward = args.images / statistics.median(seconds["forward"])
    print(f"{'mode':<11} {'images/s':>9} {'vs forward':>11} {'runs (s)':>24}")
    for mode in MODES:
        rate = args.images / statistics.median(seconds[mode])
        runs = " ".join(f"{s:.2f}" for s in seconds[mode])
        print(f"{mode:<11} {rate:>9.1f} {rate / forward:>10.2f}x {runs:>24}")
    serial, overlapped = (statistics.median(seconds[m]) for m in ("serial", "overlapped"))
    print(f"overlapped / serial speed: {serial / overlapped:.2f}x; metric values identical "
          f"(MaxBoxAccV2 {metrics['serial']['val/maxboxacc_v2']:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
