"""SPG on the pretrained Lite0 (experiments/spg.yaml's settings): the batch's accuracy in train and eval mode per step.

A diagnostic for the synthetic benchmark's SPG row (val top-1 at chance while the training loss
falls): each step trains on one batch (gradient norm clipped at ``--clip``), then classifies the
same batch with the BatchNorm layers in train mode (batch statistics) and in eval mode (running
statistics), and prints the gradient norm and SPG's four losses (Zhang et al., ECCV 2018: CE, the B2 attention mask, B1 from B2, C from the fused map).

Usage (BENCHMARKS.md, "Synthetic set"):

    PYTHONPATH=src python benchmarks/spg_train_eval_gap.py --steps 8 --clip 0    # SPG as published: collapses
    PYTHONPATH=src python benchmarks/spg_train_eval_gap.py --steps 8 --clip 10   # experiments/spg.yaml
"""

from __future__ import annotations

import argparse

import torch

from wsol_lightning.data import Synthetic, WSOLDataModule
from wsol_lightning.models import SPG


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.005, help="backbone rate (experiments/spg.yaml: 0.005)")
    parser.add_argument("--clip", type=float, default=10.0,
                        help="gradient norm clip (experiments/spg.yaml: 10); 0 turns it off")
    args = parser.parse_args()
    torch.manual_seed(0)
    datamodule = WSOLDataModule(dataset=Synthetic(image_size=128, train_size=32 * args.steps), resize_size=144,
                                crop_size=128, batch_size=32, num_workers=0)
    datamodule.setup("fit")
    model = SPG(num_classes=8, backbone="efficientnet_lite0", pretrained=True, optimizer="sgd", lr=args.lr,
                head_lr_multiplier=10.0, weight_decay=1e-4)
    optimizers = model.configure_optimizers()
    optimizer = optimizers["optimizer"] if isinstance(optimizers, dict) else optimizers
    for step, batch in enumerate(datamodule.train_dataloader()):
        model.train()
        losses = model.training_losses(batch)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip if args.clip > 0 else float("inf"))
        optimizer.step()
        accuracy = {}
        with torch.no_grad():
            for mode in ("train", "eval"):
                model.train(mode == "train")
                accuracy[mode] = (model.model(batch.image).logits.argmax(1) == batch.label).float().mean().item()
        terms = " ".join(f"{k} {v.item():.3f}" for k, v in losses.items())
        print(f"step {step}: {terms} | gradient norm {norm.item():.1f} | batch accuracy train-mode BN {accuracy['train']:.3f}, "
              f"eval-mode BN {accuracy['eval']:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
