"""Images/second of the training data pipeline (decode + wsolevaluation augmentation + collate).

Generates ``--images`` JPEGs of ``--width`` x ``--height`` (default 500x375, CUB/ImageNet-like,
textured so JPEG decoding costs what a photo costs) in the CUB wsolevaluation metadata layout,
then times full passes of the datamodule's training loader (resize 256 -> random crop 224 ->
flip -> float in [0, 1]) for each worker count. ``per worker`` = throughput / workers (with 0 workers
the main process does the work).

    nice -n 10 python benchmarks/data_pipeline.py --images 256 --workers 0 1 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from wsol_lightning.data import CUB, WSOLDataModule


def make_dataset(root: Path, count: int, width: int, height: int) -> None:
    rng = np.random.default_rng(0)
    meta = root / "metadata" / "CUB" / "train"
    meta.mkdir(parents=True)
    ids = []
    for i in range(count):
        image_id = f"{i % 200 + 1:03d}.class/img_{i:05d}.jpg"
        low = rng.uniform(0, 255, (height // 8, width // 8, 3)).astype(np.float32)
        image = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
        image += rng.normal(0, 20, image.shape).astype(np.float32)
        (root / image_id).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(
            str(root / image_id), np.clip(image, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90]
        )
        ids.append(image_id)
    (meta / "image_ids.txt").write_text("\n".join(ids))
    (meta / "class_labels.txt").write_text("\n".join(f"{p},{i % 200}" for i, p in enumerate(ids)))
    (meta / "image_sizes.txt").write_text("\n".join(f"{p},{width},{height}" for p in ids))
    (meta / "localization.txt").write_text("\n".join(f"{p},10,20,{width // 2},{height // 2}" for p in ids))


def measure(root: Path, workers: int, batch_size: int, epochs: int) -> float:
    dm = WSOLDataModule(
        CUB(root=str(root), cache_dir=str(root / ".cache")),
        resize_size=256,
        crop_size=224,
        batch_size=batch_size,
        num_workers=workers,
    )
    loader = dm.train_dataloader()
    for _ in loader:  # warm-up epoch: worker start, page cache
        pass
    start, images = time.perf_counter(), 0
    for _ in range(epochs):
        for batch in loader:
            images += len(batch)
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_dataset(root, args.images, args.width, args.height)
        print(f"{args.images} JPEGs {args.width}x{args.height} -> 256 -> 224, batch {args.batch_size}")
        print("workers | images/s | images/s per worker")
        for workers in args.workers:
            rate = measure(root, workers, args.batch_size, args.epochs)
            print(f"{workers:7d} | {rate:8.1f} | {rate / max(workers, 1):8.1f}")


if __name__ == "__main__":
    main()
