"""Training-step time of our CAM and ACoL against the public reference implementation (wsolevaluation).

The reference is Choe et al.'s wsolevaluation (CVPR 2020). Its code is never committed here: get a
checkout anywhere outside this repository and pass its path,

    git clone https://github.com/clovaai/wsolevaluation /tmp/wsolevaluation
    python benchmarks/reference_step.py --reference /tmp/wsolevaluation --methods cam acol \\
        --backbone resnet50 vgg16 --image-size 224 --batch-size 8 --steps 4 --threads 1

Only the reference's model package (``<reference>/wsol``) is imported, never its ``main.py``; a
module it needs that is not installed is reported by name (nothing is stubbed).

Both sides build the same network: same backbone, number of classes, map size
(``--large-feature-map``), head and ACoL erase threshold, random init (no pretrained weights).
A step is forward + loss + backward + optimizer step:

* ours: ``model.training_losses(batch)`` summed, with the module's own optimizer
  (``configure_optimizers``), as ``benchmarks/train_step.py`` does;
* reference: ``model(images, labels)`` and the loss as its ``main.py`` computes it (cross-entropy
  for CAM, ``wsol.method.acol.get_loss`` for ACoL), with its optimizer (SGD, Nesterov, momentum 0.9,
  weight decay 1e-4, its two learning-rate groups).

After ``--warmup`` steps of each, the timed steps alternate between the two models, one step each
per round, ours first in even rounds and the reference first in odd ones (ours, reference,
reference, ours, ...), so that load from other processes and the order fall on both alike.
Reported: median wall-clock and CPU (``time.process_time``, all threads of this process) seconds
per step of each, their ratios ours / reference, and the parameter counts (a difference is listed
by parameter shape). On a shared, loaded machine use ``--threads 1``: with several intra-op
threads a thread that waits for a descheduled sibling spins, which inflates both times by an
amount that varies from step to step; one thread's CPU time is then the steadiest figure.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import torch
from torch import nn

from train_step import module_step, training_batch  # benchmarks/ is on sys.path when run as a script

from wsol_lightning.data import WSOLBatch
from wsol_lightning.models import get_model

REFERENCE_URL = "https://github.com/clovaai/wsolevaluation"
METHODS = ("cam", "acol")
BACKBONES = ("resnet50", "vgg16")


def import_reference(path: Path) -> ModuleType:
    """The reference's ``wsol`` package from ``path``; a clear error when it is missing or incomplete."""
    if not (path / "wsol" / "__init__.py").is_file():
        raise SystemExit(
            f"--reference {path}: no wsol/__init__.py there. Get the reference with "
            f"`git clone {REFERENCE_URL} <dir>` (outside this repository) and pass <dir>."
        )
    sys.path.insert(0, str(path))
    try:
        wsol = importlib.import_module("wsol")
        importlib.import_module("wsol.method.acol")
    except ModuleNotFoundError as error:
        raise SystemExit(
            f"importing the reference's models from {path / 'wsol'} failed: module {error.name!r} is not "
            f"installed (`pip install {error.name}`)."
        ) from None
    finally:
        sys.path.remove(str(path))
    return wsol


def reference_commit(path: Path) -> str:
    try:
        result = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return result.stdout.strip()


def reference_optimizer(
    model: nn.Module, backbone: str, lr: float, classifier_lr_ratio: float
) -> torch.optim.SGD:
    """wsolevaluation's optimizer: VGG's ``features.*`` at ``lr`` and the rest at ``lr * ratio``;
    ResNet's ``layer4.*`` and ``fc.*`` at ``lr * ratio`` and the rest at ``lr``."""
    slow, fast = [], []
    for name, param in model.named_parameters():
        if backbone == "vgg16":
            (slow if "features." in name else fast).append(param)
        else:
            (fast if "layer4." in name or "fc." in name else slow).append(param)
    groups = [{"params": slow, "lr": lr}, {"params": fast, "lr": lr * classifier_lr_ratio}]
    return torch.optim.SGD(groups, momentum=0.9, weight_decay=1e-4, nesterov=True)


def build_reference(wsol: ModuleType, method: str, args: argparse.Namespace, backbone: str) -> nn.Module:
    return getattr(wsol, backbone)(
        architecture_type=method,
        pretrained=False,
        num_classes=args.num_classes,
        large_feature_map=args.large_feature_map,
        acol_drop_threshold=args.erase_threshold,
    )


def build_ours(method: str, args: argparse.Namespace, backbone: str) -> nn.Module:
    extra = {"foreground_threshold": args.erase_threshold} if method == "acol" else {}
    return get_model(
        method,
        num_classes=args.num_classes,
        backbone=backbone,
        pretrained=False,
        large_feature_map=args.large_feature_map,
        **extra,
    )


def step_reference(
    wsol: ModuleType,
    method: str,
    model: nn.Module,
    batch: WSOLBatch,
    optimizer: torch.optim.Optimizer,
) -> Callable[[], None]:
    images, labels = batch.image, batch.label
    cross_entropy = nn.CrossEntropyLoss()

    def step() -> None:
        output = model(images, labels)
        if method == "acol":
            loss = wsol.method.acol.get_loss(output, labels)
        else:
            loss = cross_entropy(output["logits"], labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def parameter_difference(ours: nn.Module, reference: nn.Module) -> list[str]:
    """Parameters whose shape occurs more often on one side than on the other."""
    shapes = {side: collections.defaultdict(list) for side in ("ours", "reference")}
    for side, model in (("ours", ours), ("reference", reference)):
        for name, param in model.named_parameters():
            shapes[side][tuple(param.shape)].append(name)
    lines = []
    for shape in sorted(set(shapes["ours"]) | set(shapes["reference"]), key=str):
        a, b = shapes["ours"].get(shape, []), shapes["reference"].get(shape, [])
        if len(a) != len(b):
            lines.append(
                f"  shape {list(shape)}: ours {len(a)} ({', '.join(a[:3])}...), "
                f"reference {len(b)} ({', '.join(b[:3])}...)"
            )
    return lines


@torch.no_grad()
def map_sides(
    ours: nn.Module, reference: nn.Module, method: str, batch: WSOLBatch
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Spatial size of the localization map on each side (one image, eval mode)."""
    images, labels = batch.image[:1], batch.label[:1]
    ours.eval()
    reference.eval()
    if method == "acol":
        ours_side = tuple(ours.model(images, labels).class_maps.shape[-2:])
    else:
        ours_side = tuple(ours.model(images).features.shape[-2:])
    reference_side = tuple(reference(images, labels, return_cam=True).shape[-2:])
    ours.train()
    reference.train()
    return ours_side, reference_side


def compare(wsol: ModuleType, method: str, backbone: str, args: argparse.Namespace) -> dict[str, object]:
    generator = torch.Generator().manual_seed(0)
    batch = training_batch(
        torch.rand(args.batch_size, 3, args.image_size, args.image_size, generator=generator),
        torch.randint(0, args.num_classes, (args.batch_size,), generator=generator),
    )
    torch.manual_seed(0)
    ours = build_ours(method, args, backbone)
    torch.manual_seed(0)
    reference = build_reference(wsol, method, args, backbone)
    ours_side, reference_side = map_sides(ours, reference, method, batch)
    if ours_side != reference_side:
        raise SystemExit(
            f"{method}/{backbone}: map sizes differ (ours {ours_side}, reference {reference_side})"
        )
    counts = parameter_count(ours), parameter_count(reference)
    print(
        f"{method}/{backbone}: parameters ours {counts[0]:,}, reference {counts[1]:,}; "
        f"maps {ours_side} on both"
    )
    if counts[0] != counts[1]:
        print("\n".join(parameter_difference(ours, reference)))
    steps = {
        "ours": module_step(ours, batch),
        "reference": step_reference(
            wsol, method, reference, batch, reference_optimizer(reference, backbone, 0.01, 10.0)
        ),
    }
    for _ in range(args.warmup):
        for step in steps.values():
            step()
    wall: dict[str, list[float]] = {side: [] for side in steps}
    cpu: dict[str, list[float]] = {side: [] for side in steps}
    for round_index in range(args.steps):
        order = ("ours", "reference") if round_index % 2 == 0 else ("reference", "ours")
        for side in order:
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            steps[side]()
            wall[side].append(time.perf_counter() - start_wall)
            cpu[side].append(time.process_time() - start_cpu)
    for side in steps:
        wall_steps, cpu_steps = [round(t, 2) for t in wall[side]], [round(t, 2) for t in cpu[side]]
        print(f"  {side}: wall s/step {wall_steps}, CPU s/step {cpu_steps}")
    median = statistics.median
    return {
        "method": method,
        "backbone": backbone,
        "wall": {side: median(values) for side, values in wall.items()},
        "cpu": {side: median(values) for side, values in cpu.items()},
        "params": counts,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reference", type=Path, required=True, help=f"checkout of {REFERENCE_URL}")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--backbone", nargs="+", choices=BACKBONES, default=list(BACKBONES))
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--num-classes", type=int, default=200, help="default: CUB's 200")
    parser.add_argument("--large-feature-map", action="store_true", help="28x28 maps at 224 px on both sides")
    parser.add_argument("--erase-threshold", type=float, default=0.6, help="ACoL's delta on both sides")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per model first")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)"
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    wsol = import_reference(args.reference.resolve())
    print(f"reference {args.reference} at commit {reference_commit(args.reference)}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()}")
    rows = [compare(wsol, method, backbone, args) for method in args.methods for backbone in args.backbone]
    print(f"load average at the end {os.getloadavg()}")
    print(
        "| method | backbone | batch | ours s/step | reference s/step | ours / reference "
        "| CPU s/step ours / ref | CPU ours / ref | params ours / ref (M) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        wall, cpu = row["wall"], row["cpu"]
        ours_params, reference_params = row["params"]
        print(
            f"| {row['method']} | {row['backbone']} | {args.batch_size} "
            f"| {wall['ours']:.3f} | {wall['reference']:.3f} "
            f"| {wall['ours'] / wall['reference']:.2f} | {cpu['ours']:.2f} / {cpu['reference']:.2f} "
            f"| {cpu['ours'] / cpu['reference']:.2f} "
            f"| {ours_params / 1e6:.2f} / {reference_params / 1e6:.2f} |"
        )


if __name__ == "__main__":
    main()
