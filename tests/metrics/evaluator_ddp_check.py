"""Two CPU processes (gloo): each rank evaluates its shard with ``overlap`` on; the synced states and
values equal one process evaluating every batch serially.

Run as a script; prints ``EVALUATOR DDP OK`` and exits 0 on success (``test_evaluator.py`` launches it).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_evaluator import cam_evaluator, evaluation_steps  # noqa: E402

BATCHES = 5
SHARDS = [[0, 1, 2], [3, 4]]  # uneven on purpose


def _evaluate(batches: list[int], overlap: bool) -> dict[str, object]:
    steps = evaluation_steps(seed=1, batches=BATCHES)
    evaluator = cam_evaluator(overlap)
    for index in batches:
        evaluator.update(steps[index])
    result: dict[str, object] = {f"value/{k}": v.tolist() for k, v in evaluator.compute(0.3).items()}
    for name, metric in evaluator.metrics.items():
        metric.sync(should_sync=dist.is_available() and dist.is_initialized())
        for state in metric._defaults:
            result[f"state/{name}.{state}"] = getattr(metric, state).tolist()
        if metric._is_synced:
            metric.unsync()
    return result


def _worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=len(SHARDS))
    try:
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(_evaluate(SHARDS[rank], overlap=True)))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    torch.set_num_threads(1)
    single = _evaluate(list(range(BATCHES)), overlap=False)
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(_worker, args=(_free_port(), out_dir), nprocs=len(SHARDS), join=True)
        ranks = [json.loads(Path(out_dir, f"rank{r}.json").read_text()) for r in range(len(SHARDS))]
    failures = [f"rank {r} {key}: {ranks[r].get(key)!r} != {value!r}"
                for r in range(len(SHARDS)) for key, value in single.items() if ranks[r].get(key) != value]
    if failures or len(single) < 10:
        print("\n".join(failures) or f"only {len(single)} entries compared")
        return 1
    print(f"EVALUATOR DDP OK: {len(single)} values and states identical on {len(SHARDS)} ranks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
