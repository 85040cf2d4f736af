"""Two-process CPU (gloo) check of I2C's centroid bank synchronisation; run by tests/models/test_i2c.py.

Usage: ``python i2c_bank_ddp.py OUT_DIR PORT``. Each rank updates a bank with its own centres, then
runs one I2C training step on its own images, class level and attribute level (each rank's images
carry their own attributes); the banks are saved to ``OUT_DIR/rank{r}.pt``.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import make_batch

#: per-rank (classes, centres) of the hand-checked bank update (duplicates on rank 0)
HAND_UPDATES = {
    0: (torch.tensor([0, 0, 1]), torch.tensor([[1.0, 0.0], [3.0, 2.0], [4.0, 4.0]])),
    1: (torch.tensor([1, 2]), torch.tensor([[0.0, 2.0], [5.0, 5.0]])),
}
#: per-rank attributes of the attribute-level step: rank 0 holds attribute 0 only, rank 1 attributes 0 and 1
ATTRIBUTES = {
    0: torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]),
    1: torch.tensor([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]),
}


def run(rank: int, out_dir: str, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    from wsol_lightning.models.i2c import I2C, CentroidBank

    bank = CentroidBank(num_classes=4, dim=2)
    bank.update(*HAND_UPDATES[rank])
    torch.manual_seed(0)
    model = I2C(num_classes=4, backbone="resnet18", head="cam")
    torch.manual_seed(100 + rank)  # different images and labels per rank
    batch = make_batch(torch.randn(4, 3, 32, 32), torch.tensor([rank, rank, 3, 3]))
    model.training_losses(batch)
    model_bank = model.model.centroid_bank
    torch.manual_seed(0)
    attribute_model = I2C(
        num_classes=4, backbone="resnet18", head="cam", consistency_unit="attribute", num_attributes=3
    )
    attribute_model.training_losses(dataclasses.replace(batch, attributes=ATTRIBUTES[rank]))
    attribute_bank = attribute_model.model.attribute_bank
    torch.save(
        {
            "hand_centroids": bank.centroids,
            "hand_count": bank.visit_count,
            "centroids": model_bank.centroids,
            "count": model_bank.visit_count,
            "attribute_centroids": attribute_bank.centroids,
            "attribute_count": attribute_bank.visit_count,
        },
        os.path.join(out_dir, f"rank{rank}.pt"),
    )
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(run, args=(sys.argv[1], int(sys.argv[2])), nprocs=2, join=True)
