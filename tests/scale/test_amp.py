"""Every registered method trains and localizes with finite values under CPU bf16 autocast.

Parametrized over :func:`available_models`, so a newly registered method is checked in the default
run without edits. Methods whose own test file already runs a bf16 check (listed in
``METHOD_BF16_TESTS``, verified below) run this stricter variant (gradients too) only with
``-m slow``, to keep the default suite short. Lightning's ``16-mixed`` needs a GPU (on CPU it is
rejected); fp16 safety of the correlation products is tested where they are computed (SPA's
self-correlation, ICL's non-local block, MCIS's co-attention).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import make_batch

from wsol_lightning.models import available_models, get_model

# method -> (its test file, its class name): files that already hold a bf16 autocast test of it.
METHOD_BF16_TESTS = {
    "acol": ("test_acol.py", "ACoL"), "adl": ("test_adl.py", "ADL"), "cam": ("test_cam.py", "CAM"),
    "cutmix": ("test_has_cutmix_spg.py", "CutMix"), "danet": ("test_danet.py", "DANet"),
    "has": ("test_has_cutmix_spg.py", "HaS"), "i2c": ("test_i2c.py", "I2C"), "icl": ("test_icl.py", "ICL"),
    "mcis": ("test_mcis.py", "MCIS"), "spa": ("test_spa.py", "SPA"), "spg": ("test_has_cutmix_spg.py", "SPG"),
}
MODEL_TESTS = Path(__file__).resolve().parents[1] / "models"


def test_listed_method_files_hold_a_bf16_test() -> None:
    for name, (file, class_name) in METHOD_BF16_TESTS.items():
        text = (MODEL_TESTS / file).read_text()
        assert "torch.bfloat16" in text and class_name in text, f"{file} has no bf16 test of {name}"


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in METHOD_BF16_TESTS else n for n in available_models()],
)
def test_bf16_autocast_losses_gradients_and_maps_are_finite(name: str) -> None:
    torch.manual_seed(0)
    # 8 classes: DANet's default class hierarchy is the synthetic set's.
    model = get_model(name, num_classes=8, backbone="resnet18")
    # Same-class pairs so that pair methods (I2C, MCIS) find partners in the batch.
    batch = make_batch(torch.randn(4, 3, 32, 32), torch.tensor([0, 0, 3, 3]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model.training_losses(batch)
        total = torch.stack([v.float() for v in losses.values()]).sum()
    total.backward()
    assert losses and all(torch.isfinite(v.float()) for v in losses.values()), losses
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits, maps = model.model.localize(batch.image, batch.label)[:2]
    assert logits.shape == (4, 8) and maps.dim() == 3 and maps.shape[0] == 4
    assert torch.isfinite(logits.float()).all() and torch.isfinite(maps.float()).all()
