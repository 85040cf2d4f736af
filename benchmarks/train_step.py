"""Training-step time of every method relative to CAM on the same backbone, batch and input size.

Run by hand (figures go into BENCHMARKS.md):

    python benchmarks/train_step.py --backbone resnet18 --image-size 112 --batch-size 32
    python benchmarks/train_step.py --methods cam acol --backbone resnet50 --image-size 224 --device cuda

A step is forward + every training loss + backward + optimizer step (the module's own optimizer),
on a fixed random batch whose labels come in same-class pairs (so the pair methods have partners).
Reported: median seconds per step over ``--steps`` timed steps after ``--warmup`` steps.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from wsol_lightning.models import available_models, get_model


def make_batch(batch_size: int, image_size: int, num_classes: int, device: torch.device) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    labels = (torch.arange(batch_size) // 2) % num_classes
    return {
        "image": torch.randn(batch_size, 3, image_size, image_size, generator=generator).to(device),
        "label": labels.to(device),
    }


def time_method(name: str, args: argparse.Namespace, device: torch.device) -> float:
    model = get_model(name, num_classes=args.num_classes, backbone=args.backbone).to(device)
    model.train()
    optimizer = model.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    batch = make_batch(args.batch_size, args.image_size, args.num_classes, device)
    times = []
    for step in range(args.warmup + args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            losses = model.training_losses(batch)
            loss = torch.stack(list(losses.values())).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


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
    args = parser.parse_args()
    device = torch.device(args.device)
    methods = args.methods or available_models()
    if "cam" in methods:
        methods = ["cam"] + [m for m in methods if m != "cam"]
    results = {m: time_method(m, args, device) for m in methods}
    cam = results.get("cam")
    print(f"backbone={args.backbone} image={args.image_size} batch={args.batch_size} device={args.device} bf16={args.bf16}")
    print("| method | s/step | x CAM |")
    print("|---|---|---|")
    for name, seconds in results.items():
        ratio = f"{seconds / cam:.2f}" if cam else "-"
        print(f"| {name} | {seconds:.3f} | {ratio} |")


if __name__ == "__main__":
    main()
