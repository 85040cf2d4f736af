"""Shared test helpers (importable as ``helpers``: setup.cfg puts tests/ on the path)."""

from __future__ import annotations

TINY_DATA = [
    "--data.dataset.train_size", "32",
    "--data.dataset.val_size", "16",
    "--data.dataset.test_size", "16",
    "--data.batch_size", "8",
    "--data.num_workers", "0",
]
# The experiment configs fine-tune at 128 px; the tests run them at 64 px (4x4 maps at stride 16).
TINY_IMAGES = ["--data.dataset.image_size", "64", "--data.resize_size", "72", "--data.crop_size", "64"]


def tiny_cli_args(config: str, root: str, *extra: str) -> list[str]:
    """Arguments that run ``config`` for two steps on a tiny synthetic set, writing under ``root``."""
    return [
        "--config", config,
        "--trainer.max_epochs", "1",
        "--trainer.limit_train_batches", "2",
        "--trainer.limit_val_batches", "1",
        "--trainer.default_root_dir", root,
        "--trainer.logger", "false",
        "--trainer.callbacks", "[]",
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        *TINY_DATA,
        *TINY_IMAGES,
        *extra,
    ]


def make_batch(image, label, **fields):
    """A :class:`~wsol_lightning.data.batch.WSOLBatch` of ``image [B, 3, H, W]`` and ``label [B]``.

    Boxes default to none per image; ``fields`` sets any other attribute (``boxes``/``num_boxes``,
    ``mask``, ``multi_hot``, ``attributes``, ...).
    """
    import torch

    from wsol_lightning.data.batch import WSOLBatch

    size = image.shape[0]
    defaults = {
        "boxes": torch.full((size, 1, 4), -1, dtype=torch.long),
        "num_boxes": torch.zeros(size, dtype=torch.long),
        "image_id": [str(i) for i in range(size)],
        "orig_size": torch.tensor([list(image.shape[-2:])] * size),
    }
    return WSOLBatch(image=image, label=label, **{**defaults, **fields})
