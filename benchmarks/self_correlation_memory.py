"""Peak memory of SPA's self-correlation map generating (SCG) at batch 64, 14x14 and 28x28 maps.

Each configuration runs in a fresh subprocess: the peak resident memory (``ru_maxrss``) after SCG
minus the resident memory just before it (inputs allocated, allocator warmed up on a tiny call)
is the extra memory SCG needed. Next to it, the analytic size of one ``[B_chunk, N, N]`` float32
matrix, which bounds the estimate from below (one HSC keeps a handful alive at once).

    python benchmarks/self_correlation_memory.py              # 14x14 and 28x28, chunks 64 and 16
    python benchmarks/self_correlation_memory.py --side 28 --chunk-size 8
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, time, torch
from wsol_lightning.models.components.self_correlation import seeded_self_correlation_map
torch.manual_seed(0)
torch.set_num_threads({threads})
batch, side, chunk = {batch}, {side}, {chunk}
blocks = [torch.randn(batch, 512, side, side), torch.randn(batch, 512, side, side)]
seeds = torch.rand(batch, side * side)
obj, bg = seeds > 0.7, seeds < 0.2
seeded_self_correlation_map([b[:1, :, :2, :2] for b in blocks], obj[:1, :4], bg[:1, :4])  # warm up
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
with torch.no_grad():
    maps = seeded_self_correlation_map(blocks, obj, bg, chunk_size=chunk)
seconds = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"peak_extra_mib": (after - before) / 1024, "seconds": seconds}}))
"""


def measure(batch: int, side: int, chunk: int, threads: int) -> dict[str, float]:
    code = CHILD.format(batch=batch, side=side, chunk=chunk, threads=threads)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--side", type=int, nargs="*", default=[14, 28])
    parser.add_argument("--chunk-size", type=int, nargs="*", default=[64, 16])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print("| map | batch | chunk | one [chunk, N, N] fp32 matrix (MiB) | peak extra RSS (MiB) | time (s) |")
    print("|---|---|---|---|---|---|")
    for side in args.side:
        for chunk in args.chunk_size:
            n = side * side
            matrix_mib = min(chunk, args.batch) * n * n * 4 / 2**20
            result = measure(args.batch, side, chunk, args.threads)
            print(
                f"| {side}x{side} (N={n}) | {args.batch} | {chunk} | {matrix_mib:.1f} | "
                f"{result['peak_extra_mib']:.0f} | {result['seconds']:.2f} |"
            )


if __name__ == "__main__":
    main()
