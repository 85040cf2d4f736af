"""Our networks against wsolevaluation's outputs stored once (tests/data/parity/wsolevaluation.npz).

The fixture holds the official networks' logits and min-max normalized class maps on weights that
``benchmarks/parity/wsolevaluation.py``'s ``deterministic_weights`` derives from each tensor's position
in the state dict (the fixture's ``source`` names the commit and command). Ours get the same weights
the same way, so a change of layer order, pooling, head or map definition fails here without the
official code.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from wsol_lightning.models import get_model

REPO = Path(__file__).resolve().parents[2]
GOLDEN = np.load(REPO / "tests/data/parity/wsolevaluation.npz")
sys.path.insert(0, str(REPO / "benchmarks/parity"))  # the script imports its neighbour common.py
_spec = importlib.util.spec_from_file_location("parity", REPO / "benchmarks/parity/wsolevaluation.py")
parity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(parity)

#: (our method, the fixture's entry, backbone). HaS and CutMix train CAM's network (wsolevaluation's
#: ``cam``): one backbone each checks that they build it.
CASES = [(method, method, backbone) for method in ("cam", "adl", "acol", "spg")
         for backbone in ("vgg16", "resnet50", "inception_v3")]
CASES += [("has", "cam", "resnet50"), ("cutmix", "cam", "resnet50")]


def test_the_fixture_names_its_source() -> None:
    source = str(GOLDEN["source"])
    assert "clovaai/wsolevaluation @ 96f4b88" in source and "--large-feature-map" not in source  # 14x14 networks


@pytest.mark.parametrize(("method", "entry", "backbone"), CASES)
def test_logits_and_maps_equal_wsolevaluations(method: str, entry: str, backbone: str) -> None:
    init_args = parity.METHODS[method][1]
    network = get_model(method, backbone=backbone, num_classes=5, pretrained=False, channels_last=False,
                        **init_args).model.eval()
    parity.deterministic_weights(network)
    images, labels = torch.from_numpy(GOLDEN["images"]), torch.from_numpy(GOLDEN["labels"])
    with torch.no_grad():
        out = network.localize(images, labels)
    np.testing.assert_allclose(out.logits.numpy(), GOLDEN[f"{entry}/{backbone}/logits"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(parity.normalized_maps(out.maps).numpy(), GOLDEN[f"{entry}/{backbone}/maps"], atol=1e-4)
