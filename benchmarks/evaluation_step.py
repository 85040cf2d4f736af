"""Evaluation-step time: GT-known/Top-1/Top-5 Loc fed by one shared box-kernel run vs one run each.

``WSOLModule._evaluation_step`` scores the same GT-class maps with the same v1 settings for
GT-known Loc, Top-1 Loc and Top-5 Loc; its evaluator runs :func:`threshold_hits` once per setting
(``EvaluationStep.hits``) and feeds the three metrics from it. This script times, on the same CAM maps:

* ``separate``: the former path, ``update`` of each of the three metrics (three kernel runs);
* ``shared``: one :func:`threshold_hits` run and three ``update_from_hits`` calls;
* ``step``: the whole ``CAM._evaluation_step`` (forward, resize, MaxBoxAccV2, the shared path; the
  metric updates run in the step, ``evaluation_overlap: false``),

and fails unless both paths leave identical metric states.

Usage (by hand; the figures go into BENCHMARKS.md):

    PYTHONPATH=src nice -n 15 python benchmarks/evaluation_step.py --images 64 --image-size 224
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from wsol_lightning.cam import threshold_hits
from wsol_lightning.data import WSOLBatch
from wsol_lightning.metrics import GTKnownLoc, TopKLoc
from wsol_lightning.models import CAM


def make_batch(images: int, image_size: int, num_classes: int, seed: int = 0) -> WSOLBatch:
    """Random images in [0, 1], labels and one random GT box per image (from ``seed``)."""
    generator = torch.Generator().manual_seed(seed)
    corners = torch.randint(0, image_size // 2, (images, 2), generator=generator)
    sizes = torch.randint(image_size // 8, image_size // 2, (images, 2), generator=generator)
    boxes = torch.cat([corners, corners + sizes], dim=1)[:, None, :]
    return WSOLBatch(
        image=torch.rand(images, 3, image_size, image_size, generator=generator),
        label=torch.randint(0, num_classes, (images,), generator=generator),
        boxes=boxes,
        num_boxes=torch.ones(images, dtype=torch.long),
        image_id=[f"random_{i}" for i in range(images)],
        orig_size=torch.full((images, 2), image_size, dtype=torch.long),
    )


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64, help="maps per evaluation step")
    parser.add_argument("--image-size", type=int, default=224, help="evaluated image side (maps are resized to it)")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per path (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = CAM(num_classes=8, backbone=args.backbone, evaluation_overlap=False).eval()
    batch = make_batch(args.images, args.image_size, 8)
    logits, cams = model.evaluation_maps(batch)
    maps = torch.from_numpy(cams)
    boxes = batch.gt_boxes()
    top5 = logits.topk(5, dim=1).indices
    correct1 = top5[:, 0] == batch.label
    correct5 = (top5 == batch.label[:, None]).any(dim=1)

    def separate() -> list:
        metrics = [GTKnownLoc(), TopKLoc(), TopKLoc()]
        metrics[0].update(maps, boxes)
        metrics[1].update(maps, boxes, correct1)
        metrics[2].update(maps, boxes, correct5)
        return metrics

    def shared() -> list:
        metrics = [GTKnownLoc(), TopKLoc(), TopKLoc()]
        hits = threshold_hits(maps, boxes, metrics[0].thresholds, (50,), metrics[0].multi_contour)
        metrics[0].update_from_hits(hits)
        metrics[1].update_from_hits(hits[:, 0, :], correct1)
        metrics[2].update_from_hits(hits[:, 0, :], correct5)
        return metrics

    for a, b in zip(separate(), shared()):  # also warms up numba
        for name in a._defaults:
            if not torch.equal(getattr(a, name), getattr(b, name)):
                raise SystemExit(f"shared path differs from separate updates in {type(a).__name__}.{name}")

    def step() -> None:
        model._evaluation_step(batch, "test")

    step()
    t_separate = median_seconds(separate, args.repeats)
    t_shared = median_seconds(shared, args.repeats)
    t_step = median_seconds(step, args.repeats)
    print(f"{args.images} CAM maps at {args.image_size}px ({args.backbone}), {args.threads} thread(s), "
          f"median of {args.repeats}")
    print(f"GT-known + Top-1 + Top-5 Loc, separate updates: {t_separate * 1000:8.1f} ms")
    print(f"GT-known + Top-1 + Top-5 Loc, shared hits:      {t_shared * 1000:8.1f} ms "
          f"({t_separate / t_shared:.2f}x faster)")
    print(f"whole evaluation step (shared path):            {t_step * 1000:8.1f} ms "
          f"(former path ~{(t_step + t_separate - t_shared) * 1000:.1f} ms)")


if __name__ == "__main__":
    main()
