"""Train and test methods on the built-in synthetic set with their `experiments/<method>.yaml`.

Run by hand; the printed markdown table goes into BENCHMARKS.md:

    python benchmarks/synthetic_benchmark.py                  # every experiments/<method>.yaml
    python benchmarks/synthetic_benchmark.py --methods cam acol

For each method: `fit` with the config exactly as shipped (W&B disabled), then `test` on the last
checkpoint. Reported: fit wall time, test classification top-1, Top-1 Loc, GT-known Loc,
MaxBoxAccV2, the part-focus diagnostics and PxAP (object masks of the synthetic set).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("WANDB_MODE", "disabled")

from wsol_lightning.cli import run_cli as cli_main  # noqa: E402

COLUMNS = [
    ("test/cls_top1", "cls top-1 (%)", 100.0),
    ("test/top1_loc", "Top-1 Loc", 1.0),
    ("test/gt_known_loc", "GT-known Loc", 1.0),
    ("test/maxboxacc_v2", "MaxBoxAccV2", 1.0),
    ("test/part_peak_share", "CAM peak on part (%)", 1.0),
    ("test/gt_box_coverage", "GT box covered (%)", 1.0),
    ("test/pxap", "PxAP", 1.0),
]


def run(method: str, extra: list[str]) -> dict[str, float]:
    config = f"experiments/{method}.yaml"
    start = time.perf_counter()
    fit = cli_main(["fit", "--config", config, *extra])
    fit_seconds = time.perf_counter() - start
    ckpt = fit.trainer.checkpoint_callback.last_model_path or fit.trainer.checkpoint_callback.best_model_path
    test = cli_main(["test", "--config", config, "--ckpt_path", ckpt, *extra])
    metrics = {k: float(v) for k, v in test.trainer.callback_metrics.items() if k.startswith("test/")}
    metrics["fit_seconds"] = fit_seconds
    return metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="*", default=None)
    parser.add_argument("--output", default="runs/synthetic_benchmark.json")
    parser.add_argument("--resume", action="store_true", help="skip methods already in --output")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="extra CLI flags after --")
    args = parser.parse_args()
    methods = args.methods or sorted(p.stem for p in Path("experiments").glob("*.yaml"))
    extra = [a for a in args.extra if a != "--"]
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(output.read_text()) if args.resume and output.is_file() else {}
    for method in methods:
        if method not in results:
            results[method] = run(method, extra)
            output.write_text(json.dumps(results, indent=2))  # progress survives an interrupted sweep
    print("| method | fit (s) | " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    for method in methods:
        metrics = results[method]
        cells = [f"{metrics[key] * scale:.1f}" if key in metrics else "-" for key, _, scale in COLUMNS]
        print(f"| {method} | {metrics['fit_seconds']:.0f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
