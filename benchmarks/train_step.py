"""Training-step time of every method relative to CAM on the same backbone, batch and input size.

Run by hand (figures go into BENCHMARKS.md):

    python benchmarks/train_step.py --backbone resnet18 --image-size 112 --batch-size 32
    python benchmarks/train_step.py --methods cam acol --backbone resnet50 --image-size 224 --device cuda
    python benchmarks/train_step.py --backbone efficientnet_lite0 --image-size 128 --experiment-configs --compare-memory-format

A step is forward + every training loss + backward + optimizer step (the module's own optimizer),
on a fixed random batch whose labels come in same-class pairs (so the pair methods have partners).
Reported: median seconds per step over ``--steps`` timed steps after ``--warmup`` steps. The methods
take turns step by step (round robin), so on a shared machine the load hits all of them alike and the
ratios to CAM hold even when the absolute times are inflated.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
import yaml

from wsol_lightning.data import WSOLBatch
from wsol_lightning.models import available_models, get_model


def training_batch(images: torch.Tensor, labels: torch.Tensor) -> WSOLBatch:
    """A training batch of ``images`` ([0, 1] RGB) and ``labels`` without boxes (training reads none)."""
    batch_size, device = len(images), images.device
    return WSOLBatch(
        image=images,
        label=labels,
        boxes=torch.full((batch_size, 1, 4), -1, dtype=torch.long, device=device),
        num_boxes=torch.zeros(batch_size, dtype=torch.long, device=device),
        image_id=[f"random_{i}" for i in range(batch_size)],
        orig_size=torch.full((batch_size, 2), images.shape[-1], dtype=torch.long, device=device),
    )


def make_batch(batch_size: int, image_size: int, num_classes: int, device: torch.device) -> WSOLBatch:
    generator = torch.Generator().manual_seed(0)
    labels = (torch.arange(batch_size) // 2) % num_classes
    images = torch.rand(batch_size, 3, image_size, image_size, generator=generator)
    return training_batch(images.to(device), labels.to(device))


def build_stepper(name: str, args: argparse.Namespace, device: torch.device,
                  channels_last: bool = False) -> Callable[[], None]:
    """One training step of method ``name`` on a fixed batch, as a closure."""
    init_args = experiment_init_args(name) if args.experiment_configs else {}
    init_args.update(num_classes=args.num_classes, backbone=args.backbone, pretrained=False,
                     channels_last=channels_last)
    model = get_model(name, **init_args).to(device)
    model.train()
    batch = make_batch(args.batch_size, args.image_size, args.num_classes, device)
    return module_step(model, model.on_after_batch_transfer(batch, 0), args.bf16)


def module_step(model: torch.nn.Module, batch: WSOLBatch, bf16: bool = False) -> Callable[[], None]:
    """A closure running one step of a ``WSOLModule``: every training loss, backward, its own optimizer."""
    optimizer = model.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    device_type = next(model.parameters()).device.type

    def step() -> None:
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            losses = model.training_losses(batch)
            loss = torch.stack(list(losses.values())).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def experiment_init_args(name: str) -> dict:
    """The model ``init_args`` of ``experiments/<name>.yaml`` (the shipped synthetic settings)."""
    config = yaml.safe_load(Path(f"experiments/{name}.yaml").read_text())
    return dict(config["model"].get("init_args") or {})


def time_interleaved(steppers: dict[str, Callable[[], None]], args: argparse.Namespace,
                     device: torch.device) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds per step of each method, the methods taking turns step by step.

    Round-robin interleaving exposes every method to the same machine load, so the ratios to CAM
    stay meaningful on a shared machine even when the absolute times do not. CPU time
    (``time.process_time``) is reported too: with ``--threads 1`` on a loaded machine it is the
    figure to trust (threads spinning while they wait for a busy core inflate multi-thread times).
    """
    wall: dict[str, list[float]] = {name: [] for name in steppers}
    cpu: dict[str, list[float]] = {name: [] for name in steppers}
    for round_index in range(args.warmup + args.steps):
        for name, step in steppers.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start, start_cpu = time.perf_counter(), time.process_time()
            step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if round_index >= args.warmup:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in steppers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="*", default=None, help=f"default: all of {available_models()}")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--num-classes", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--compare-memory-format", action="store_true",
                        help="also time every method with channels_last: true (NHWC), interleaved, "
                             "and print the NCHW / channels-last ratio")
    parser.add_argument("--experiment-configs", action="store_true",
                        help="build each method with the model init_args of experiments/<method>.yaml "
                             "(backbone, classes and pretrained still from the flags); default: paper defaults")
    args = parser.parse_args()
    device = torch.device(args.device)
    methods = args.methods or available_models()
    if "cam" in methods:
        methods = ["cam"] + [m for m in methods if m != "cam"]
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    steppers = {m: build_stepper(m, args, device) for m in methods}
    if args.compare_memory_format:
        steppers.update({f"{m} (channels-last)": build_stepper(m, args, device, channels_last=True) for m in methods})
    results = time_interleaved(steppers, args, device)
    cam = results.get("cam")
    print(f"backbone={args.backbone} image={args.image_size} batch={args.batch_size} device={args.device} "
          f"bf16={args.bf16} experiment_configs={args.experiment_configs} threads={torch.get_num_threads()}")
    print("| method | wall s/step | x CAM (wall) | CPU s/step | x CAM (CPU) |")
    print("|---|---|---|---|---|")
    for name, (seconds, cpu_seconds) in results.items():
        ratio = f"{seconds / cam[0]:.2f}" if cam else "-"
        cpu_ratio = f"{cpu_seconds / cam[1]:.2f}" if cam else "-"
        print(f"| {name} | {seconds:.3f} | {ratio} | {cpu_seconds:.3f} | {cpu_ratio} |")
    if args.compare_memory_format:
        print("\n| method | NCHW / channels-last (wall) | (CPU) |\n|---|---|---|")
        for name in methods:
            (slow, slow_cpu), (fast, fast_cpu) = results[name], results[f"{name} (channels-last)"]
            print(f"| {name} | {slow / fast:.2f} | {slow_cpu / fast_cpu:.2f} |")


if __name__ == "__main__":
    main()
