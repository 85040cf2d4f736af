"""Skull share of the tumour-class map on the synthetic MRI set: single-label CAM, multi-label CAM, MCIS.

Run by hand; the printed markdown table goes into BENCHMARKS.md ("MRI: skull share"):

    python benchmarks/mri_skull_share.py --train-size 2000 --epochs 2

Every variant is `experiments/<method>.yaml` + `experiments/data/synthetic_mri.yaml` through the CLI
(W&B, progress bar and CAM images off, checkpoints under `--output-dir`), fit then test on its last
checkpoint. `mcis-coattention` tests the `mcis-multilabel` checkpoint with the co-attention map
(`localization_map: coattention`, loaded with `load_from_checkpoint`: `wsol test --ckpt_path` takes
the model's arguments from the checkpoint). A variant whose checkpoint and fit time an earlier run
left in `--output-dir` is only tested again.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")

import pytorch_lightning as pl  # noqa: E402

from wsol_lightning.cli import run_cli as cli_main  # noqa: E402

MRI_DATA = "experiments/data/synthetic_mri.yaml"
MULTILABEL = ["--data.dataset.multilabel", "true"]
#: fitted variants: name -> (method config, extra flags)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "cam": ("cam", []),
    "cam-multilabel": ("cam", MULTILABEL),
    "mcis-multilabel": ("mcis", MULTILABEL),
}
#: the MCIS checkpoint tested again with the co-attention map
COATTENTION = "mcis-coattention"
COLUMNS = [
    ("fit_seconds", "fit (s)", 1.0),
    ("test/cls_top1", "cls top-1 (%)", 100.0),
    ("test/cls_exact_match", "cls exact match (%)", 100.0),
    ("test/maxboxacc_v2", "MaxBoxAccV2", 1.0),
    ("test/gt_known_loc", "GT-known Loc", 1.0),
    ("test/pxap", "PxAP", 1.0),
    ("test/pxap_with_object", "PxAP, tumour slices", 1.0),
    ("test/skull_cam_share", "skull share, tumour (%)", 1.0),
    ("test/skull_cam_share_no_tumour", "skull share, no tumour (%)", 1.0),
]


def cli_args(method: str, extra: list[str], args: argparse.Namespace, root: Path) -> list[str]:
    return [
        "--config", f"experiments/{method}.yaml", "--config", MRI_DATA,
        "--trainer.max_epochs", str(args.epochs),
        "--trainer.logger", "false",
        "--trainer.callbacks", "[]",
        "--trainer.enable_progress_bar", "false",
        "--trainer.default_root_dir", str(root),
        "--data.dataset.train_size", str(args.train_size),
        "--data.dataset.val_size", str(args.val_size),
        "--data.dataset.test_size", str(args.test_size),
        *extra,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    every = [*VARIANTS, COATTENTION]
    parser.add_argument("--variants", nargs="*", default=every, choices=every)
    parser.add_argument("--train-size", type=int, default=2000)
    parser.add_argument("--val-size", type=int, default=200)
    parser.add_argument("--test-size", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--output-dir", default="runs/mri_skull_share")
    args = parser.parse_args()
    if COATTENTION in args.variants and "mcis-multilabel" not in args.variants:
        parser.error(f"{COATTENTION} tests the mcis-multilabel checkpoint: list mcis-multilabel too")
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    results_path = output / "results.json"
    previous = json.loads(results_path.read_text()) if results_path.is_file() else {}
    results: dict[str, dict[str, float]] = {}
    tests, checkpoints = {}, {}
    for name in args.variants:
        if name == COATTENTION:
            test = tests["mcis-multilabel"]
            model = type(test.model).load_from_checkpoint(
                checkpoints["mcis-multilabel"], localization_map="coattention"
            )
            trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_checkpointing=False, devices=1)
            (metrics,) = trainer.test(model, datamodule=test.datamodule, verbose=False)
        else:
            method, extra = VARIANTS[name]
            args_of_run = cli_args(method, extra, args, output / name)
            saved = sorted((output / name / "checkpoints").glob("*.ckpt"))
            if saved and "fit_seconds" in previous.get(name, {}):  # fitted by an earlier run: test only
                ckpt, fit_seconds = str(saved[-1]), previous[name]["fit_seconds"]
            else:
                start = time.perf_counter()
                fit = cli_main(["fit", *args_of_run])
                fit_seconds = time.perf_counter() - start
                ckpt = fit.trainer.checkpoint_callback.best_model_path
            checkpoints[name] = ckpt
            tests[name] = test = cli_main(["test", *args_of_run, "--ckpt_path", ckpt])
            metrics = {k: float(v) for k, v in test.trainer.callback_metrics.items() if k.startswith("test/")}
            metrics["fit_seconds"] = fit_seconds
        results[name] = {k: float(v) for k, v in metrics.items()}
        results_path.write_text(json.dumps({**previous, **results}, indent=2))
    print("| variant | " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for name in args.variants:
        cells = [
            f"{results[name][key] * scale:.1f}" if key in results[name] else "-" for key, _, scale in COLUMNS
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
