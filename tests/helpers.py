"""Shared test helpers (importable as ``helpers``: setup.cfg puts tests/ on the path)."""

from __future__ import annotations

TINY_DATA = [
    "--data.synthetic_train_size", "32",
    "--data.synthetic_val_size", "16",
    "--data.synthetic_test_size", "16",
    "--data.batch_size", "8",
    "--data.num_workers", "0",
]


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
        *extra,
    ]
