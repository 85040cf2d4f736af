"""Two-process CPU (gloo) check: sharded updates + sync equal the single-process metrics exactly.

Also the Evaluator with ``overlap`` (issue 24): each rank evaluates its batches on the worker
thread; the synced states and values equal one process evaluating every batch serially.

Run as a script (``python tests/metrics/ddp_check.py``); prints ``DDP OK`` and exits 0 on success.
``test_ddp.py`` launches it in a subprocess.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from metrics_cases import random_boxes, smooth_map  # noqa: E402
from test_evaluator import cam_evaluator, evaluation_steps  # noqa: E402

from wsol_lightning.metrics import GTKnownLoc, MaxBoxAccV2, PxAP, TopKLoc, UnionBoxLoc  # noqa: E402
from wsol_lightning.models.danet.metrics import IndependentLevelUnionLoc  # noqa: E402

N_IMAGES = 11
SHARDS = [range(0, 7), range(7, N_IMAGES)]  # uneven on purpose
EVALUATOR_BATCHES = 5
EVALUATOR_SHARDS = [[0, 1, 2], [3, 4]]


def _data() -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(3)
    height, width = 30, 38
    cams = np.stack(
        [smooth_map(rng, height, width, 4) if i % 4 else rng.random((height, width)) for i in range(N_IMAGES)]
    )
    boxes = [torch.from_numpy(random_boxes(rng, height, width, 2)) for _ in range(N_IMAGES)]
    correct = torch.from_numpy(rng.random(N_IMAGES) < 0.5)
    masks = torch.from_numpy((cams > np.median(cams)).astype(np.uint8))
    return torch.from_numpy(cams), boxes, correct, masks


def _metrics() -> dict[str, torch.nn.Module]:
    return {
        "maxboxacc_v2": MaxBoxAccV2(cam_curve_interval=0.001),
        "maxboxacc_v1": MaxBoxAccV2(iou_thresholds=(50,), multi_contour=False),
        "gt_known": GTKnownLoc(),
        "top1_gt_known": TopKLoc(),
        "top1_own": TopKLoc(threshold="own"),
        "pxap": PxAP(),
    }


def _union_metrics() -> dict[str, torch.nn.Module]:
    """Metrics whose ``logged_values`` sync inside ``sync_context`` (the path the Evaluator logs)."""
    return {"union": UnionBoxLoc(0.3), "union_levels": IndependentLevelUnionLoc(0.3)}


def _evaluate(indices: list[int]) -> dict[str, object]:
    cams, boxes, correct, masks = _data()
    metrics = _metrics()
    for start in range(0, len(indices), 3):  # several batches per process
        batch = indices[start : start + 3]
        for name, metric in metrics.items():
            if name.startswith("top1"):
                metric.update(cams[batch], [boxes[i] for i in batch], correct[batch])
            elif name == "pxap":
                metric.update(cams[batch], masks[batch])
            else:
                metric.update(cams[batch], [boxes[i] for i in batch])
    union = _union_metrics()
    for start in range(0, len(indices), 3):
        batch = indices[start : start + 3]
        union["union"].update(cams[batch], [boxes[i] for i in batch], correct[batch], correct[batch])
        ranked = torch.stack([cams[batch], cams[batch].flip(-1)], dim=1).numpy()  # two ranks per image
        classes = torch.stack([(~correct[batch]).long(), torch.zeros(len(batch), dtype=torch.long)], dim=1)
        union["union_levels"].update(ranked, classes, torch.zeros(len(batch), dtype=torch.long),
                                     [boxes[i].numpy() for i in batch], tuple(cams.shape[-2:]))
    result: dict[str, object] = {}
    for name, metric in union.items():
        result[f"{name}/logged"] = {k: v.item() for k, v in metric.logged_values().items()}
    for name, metric in metrics.items():
        result[f"{name}/value"] = metric.compute().item()
        if hasattr(metric, "best_threshold") and name != "maxboxacc_v2":
            result[f"{name}/best_threshold"] = metric.best_threshold().item()
    per_iou = metrics["maxboxacc_v2"].compute_per_iou()
    result["maxboxacc_v2/per_iou"] = {str(k): [a.item(), t.item()] for k, (a, t) in per_iou.items()}
    result["maxboxacc_v2/curve"] = metrics["maxboxacc_v2"].box_accuracy_curve()[1].tolist()
    result.update(_synced_states(metrics))
    return result


def _synced_states(metrics: dict[str, torch.nn.Module], prefix: str = "") -> dict[str, object]:
    """Every metric state after the sync across processes (as lists)."""
    states: dict[str, object] = {}
    for name, metric in metrics.items():
        metric.sync(should_sync=dist.is_available() and dist.is_initialized())
        for state in metric._defaults:
            states[f"{prefix}{name}/state/{state}"] = getattr(metric, state).tolist()
        if metric._is_synced:
            metric.unsync()
    return states


def _evaluate_with_evaluator(batches: list[int], overlap: bool) -> dict[str, object]:
    """CAM's Evaluator fed ``batches`` of :func:`evaluation_steps` (the worker thread with ``overlap``)."""
    steps = evaluation_steps(seed=1, batches=EVALUATOR_BATCHES)
    evaluator = cam_evaluator(overlap)
    for index in batches:
        evaluator.update(steps[index])
    result: dict[str, object] = {f"evaluator/value/{k}": v.tolist() for k, v in evaluator.compute(0.3).items()}
    result.update(_synced_states(dict(evaluator.metrics.items()), prefix="evaluator/"))
    return result


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=len(SHARDS))
    try:
        result = {**_evaluate(list(SHARDS[rank])), **_evaluate_with_evaluator(EVALUATOR_SHARDS[rank], overlap=True)}
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    torch.set_num_threads(1)
    single = {**_evaluate(list(range(N_IMAGES))),
              **_evaluate_with_evaluator(list(range(EVALUATOR_BATCHES)), overlap=False)}
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(_worker, args=(_free_port(), out_dir), nprocs=len(SHARDS), join=True)
        ranks = [json.loads(Path(out_dir, f"rank{r}.json").read_text()) for r in range(len(SHARDS))]
    failures = [
        f"rank {r} {key}: {ranks[r].get(key)!r} != {value!r}"
        for r in range(len(SHARDS))
        for key, value in single.items()
        if ranks[r].get(key) != value
    ]
    if failures:
        print("\n".join(failures))
        return 1
    print(f"DDP OK: {len(single)} values and states identical on {len(SHARDS)} ranks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
