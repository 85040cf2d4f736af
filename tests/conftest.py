"""Test-wide settings: no network, no W&B server, headless plotting, small thread pools."""

from __future__ import annotations

import os
import tempfile

os.environ["WANDB_MODE"] = "disabled"
os.environ["WANDB_SILENT"] = "true"
os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
# No test reads the user's Hugging Face cache (timm weights) or reaches the network for it.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="wsol_hf_home_")
os.environ["HF_HUB_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _isolated_torch_hub(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the user's torch hub cache (pretrained weights)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "torch_home"))
