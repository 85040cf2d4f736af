"""``wsol export``: the exported model's logits and class maps equal the PyTorch module's."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from wsol_lightning.cli import main
from wsol_lightning.export import ExportableWSOL, load_module, trace
from wsol_lightning.models import CAM, ACoL, WSOLModule

IMAGE_SIZE = 32


def save_checkpoint(module: WSOLModule, path: Path, class_path: str | None) -> Path:
    """A checkpoint as LightningCLI writes it (``_class_path`` and ``_instantiator`` in the hparams)."""
    hparams = dict(module.hparams)
    if class_path:
        hparams.update(_class_path=class_path, _instantiator="pytorch_lightning.cli.instantiate_module")
    torch.save(
        {
            "state_dict": module.state_dict(),
            "hyper_parameters": hparams,
            "datamodule_hyper_parameters": {"crop_size": IMAGE_SIZE},
            "pytorch-lightning_version": pl.__version__,
        },
        path,
    )
    return path


@pytest.fixture(scope="module")
def cam_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    module = CAM(num_classes=4, backbone="resnet18")
    module.cam_threshold.fill_(0.25)
    return save_checkpoint(module, tmp_path_factory.mktemp("export") / "cam.ckpt", "wsol_lightning.models.CAM")


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(3, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def cam_reference(cam_checkpoint: Path, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return reference_outputs(load_module(cam_checkpoint)[0], images)


def reference_outputs(module: WSOLModule, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and every class's map, read one class at a time from the module's own API."""
    with torch.no_grad():
        logits = module(images)
        maps = [module.model.localize(images, torch.full((len(images),), c))[1] for c in range(module.num_classes)]
    return logits, torch.stack(maps, dim=1)


def test_checkpoint_loads_with_its_threshold(cam_checkpoint: Path) -> None:
    module, data_hparams = load_module(cam_checkpoint)
    assert isinstance(module, CAM) and module.current_cam_threshold() == 0.25
    assert data_hparams["crop_size"] == IMAGE_SIZE


def test_torchscript_export_matches_pytorch(
    cam_checkpoint: Path, images: torch.Tensor, cam_reference: tuple, tmp_path: Path
) -> None:
    output = tmp_path / "cam.pt"
    main(["export", "--ckpt_path", str(cam_checkpoint), "--format", "torchscript", "--output", str(output)])
    logits, maps = torch.jit.load(str(output))(images)  # a batch of 3, traced with 2
    ref_logits, ref_maps = cam_reference
    assert maps.shape[:2] == (3, 4)
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(maps, ref_maps)


def test_onnx_export_matches_pytorch(
    cam_checkpoint: Path, images: torch.Tensor, cam_reference: tuple, tmp_path: Path
) -> None:
    pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    output = tmp_path / "cam.onnx"
    main(["export", "--ckpt_path", str(cam_checkpoint), "--format", "onnx", "--output", str(output)])
    session = onnxruntime.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    logits, maps = session.run(["logits", "class_maps"], {"images": images.numpy()})
    ref_logits, ref_maps = cam_reference
    torch.testing.assert_close(torch.from_numpy(logits), ref_logits, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(torch.from_numpy(maps), ref_maps, atol=1e-4, rtol=1e-4)


def test_class_dependent_maps_export_per_class(images: torch.Tensor) -> None:
    """ACoL's map depends on the class (erasing, fusion): every class is read with its own map."""
    torch.manual_seed(0)
    module = ACoL(num_classes=3, backbone="resnet18").eval()
    wrapper = ExportableWSOL(module)
    with torch.no_grad():
        logits, maps = wrapper(images)
    traced_logits, traced_maps = trace(wrapper, images[:2])(images)
    ref_logits, ref_maps = reference_outputs(module, images)
    torch.testing.assert_close(logits, ref_logits)
    torch.testing.assert_close(maps, ref_maps)
    torch.testing.assert_close(traced_maps, ref_maps)
    torch.testing.assert_close(traced_logits, ref_logits)


def test_model_flag_is_the_fallback_for_checkpoints_without_a_class(
    cam_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    bare = save_checkpoint(load_module(cam_checkpoint)[0], tmp_path / "bare.ckpt", None)
    assert main(["export", "--ckpt_path", str(bare), "--format", "torchscript", "--output", str(tmp_path / "x.pt")]) == 2
    assert "--model" in capsys.readouterr().err
    module, _ = load_module(bare, model="CAM")
    assert isinstance(module, CAM)
    with pytest.raises(ValueError, match="differs"):
        load_module(cam_checkpoint, model="ACoL")


def test_bad_format_is_rejected_by_name(cam_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["export", "--ckpt_path", str(cam_checkpoint), "--format", "tflite", "--output", str(tmp_path / "m")])
    assert "--format" in capsys.readouterr().err
