"""Evaluate ONE trained SPA checkpoint with each SCG variant (SPA's open ideas, issue 14).

The switches act at inference only, so every row tests the same weights on the same test split;
only the localization map differs. Run by hand; the printed markdown table goes into BENCHMARKS.md:

    python benchmarks/spa_open_ideas.py --ckpt runs/spa_open_ideas/checkpoints/last.ckpt

Variants: the RAM-trained CAM (``scg: false``), SPA's SCG, SCG + the input's colour/position
affinity at a few weights, cross-image SCG (partner chosen in each test batch) and both together.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("WANDB_MODE", "disabled")

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402

from wsol_lightning.data import WSOLDataModule  # noqa: E402
from wsol_lightning.models import SPA  # noqa: E402

VARIANTS: dict[str, dict[str, Any]] = {
    "ReLU(CAM) (scg: false)": {"scg": False},
    "SCG": {},
    "SCG + image affinity w=0.25": {"scg_image_affinity_weight": 0.25},
    "SCG + image affinity w=0.5": {"scg_image_affinity_weight": 0.5},
    "SCG + image affinity w=0.75": {"scg_image_affinity_weight": 0.75},
    "image affinity only (w=1)": {"scg_image_affinity_weight": 1.0},
    "SCG + cross-image": {"scg_cross_image": True},
    "SCG + cross-image + image affinity w=0.5": {"scg_cross_image": True, "scg_image_affinity_weight": 0.5},
}
COLUMNS = [
    ("test/maxboxacc_v2", "MaxBoxAccV2"),
    ("test/maxboxacc_iou30", "@30"),
    ("test/maxboxacc_iou50", "@50"),
    ("test/maxboxacc_iou70", "@70"),
    ("test/gt_known_loc", "GT-known"),
    ("test/top1_loc", "Top-1 Loc"),
    ("test/pxap", "PxAP"),
    ("test/part_peak_share", "peak on part (%)"),
    ("test/gt_box_coverage", "GT box covered (%)"),
]


def evaluate(ckpt: str, overrides: dict[str, Any], data_hparams: dict[str, Any]) -> dict[str, float]:
    """Test metrics of the checkpoint with the SPA init arguments ``overrides``."""
    model = SPA.load_from_checkpoint(ckpt, map_location="cpu", **overrides)
    datamodule = WSOLDataModule(**data_hparams)
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.test(model, datamodule=datamodule, verbose=False)
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="an SPA checkpoint written by wsol fit")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), help="rows of VARIANTS to run")
    parser.add_argument("--output", default="runs/spa_open_ideas.json")
    args = parser.parse_args()
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown --variants {unknown}; choose from {list(VARIANTS)}")
    checkpoint = torch.load(args.ckpt, map_location="cpu", weights_only=False)
    data_hparams = {k: v for k, v in checkpoint.get("datamodule_hyper_parameters", {}).items() if not k.startswith("_")}
    results = {}
    for name in args.variants:
        start = time.perf_counter()
        results[name] = evaluate(args.ckpt, VARIANTS[name], data_hparams)
        results[name]["test_seconds"] = time.perf_counter() - start
        print(name, json.dumps(results[name]), flush=True)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2))
    print("| variant | " + " | ".join(label for _, label in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for name, metrics in results.items():
        cells = [f"{metrics[key]:.1f}" if key in metrics else "—" for key, _ in COLUMNS]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
