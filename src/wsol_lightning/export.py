"""``wsol export``: a checkpoint as a TorchScript or ONNX model returning logits and class maps.

The exported model's ``forward(images)`` takes normalized images ``[B, 3, S, S]`` (ImageNet mean/std,
``S`` the checkpoint's ``data.crop_size`` unless ``--image_size`` says otherwise) and returns

* ``logits`` ``[B, C]``: exactly the classification of ``predict``;
* ``class_maps`` ``[B, C, h, w]``: the raw localization map of every class (not resized, not
  normalized: resize to ``S`` with bicubic interpolation, min-max normalize, then threshold, as
  :class:`~wsol_lightning.callbacks.WSOLPredictionWriter` does).

Methods whose map is the plain CAM (CAM, ADL, ICL) compute every class's map in one pass. The
others (ACoL's fused branches, SPA's SCG, DANet's hierarchy fusion, I2C, MCIS's single map) read
each class's map with the method's own ``localization_maps`` on the batch repeated once per class,
so the exported maps equal the method's maps exactly at ``C`` times the cost. MCIS with
``localization_map: coattention`` and SPA with ``scg_cross_image: true`` are refused: their maps
depend on the other images of the batch.

ONNX export needs ``pip install onnx`` (and ``onnxruntime`` to run the file); it uses the
TorchScript-based exporter with a dynamic batch dimension. TorchScript export is a trace.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Literal

import torch
from pytorch_lightning.core.module import _jit_is_scripting
from torch import nn

from wsol_lightning.models import WSOLModule

ExportFormat = Literal["torchscript", "onnx"]
FORMATS: tuple[str, ...] = ("torchscript", "onnx")
DEFAULT_IMAGE_SIZE = 224


class ExportableWSOL(nn.Module):
    """A :class:`WSOLModule` as ``forward(images) -> (logits [B, C], class_maps [B, C, h, w])``.

    Args:
        module: the LightningModule (put in eval mode).

    Raises:
        ValueError: the method's maps depend on the other images of the batch (MCIS co-attention,
            cross-image SPA).
    """

    def __init__(self, module: WSOLModule) -> None:
        super().__init__()
        if module.hparams.get("localization_map") == "coattention":
            raise ValueError(
                "model.init_args.localization_map='coattention' depends on the other images of a batch and "
                "cannot be exported; export with localization_map: single"
            )
        if module.hparams.get("scg_cross_image"):
            raise ValueError(
                "model.init_args.scg_cross_image=true depends on the other images of a batch and cannot be "
                "exported; export with scg_cross_image: false"
            )
        self.module = module.eval()
        self.num_classes = int(module.num_classes)
        method = type(module)
        self.plain_cam = (
            method.localization_maps is WSOLModule.localization_maps and method.forward is WSOLModule.forward
        )

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.plain_cam:
            out = self.module.model(images)
            return out.logits, self.module.model.class_maps(out.features)
        logits = self.module(images)
        batch_size = images.shape[0]
        repeated = images.repeat_interleave(self.num_classes, dim=0)
        classes = torch.arange(self.num_classes, device=images.device).repeat(batch_size)
        _, maps = self.module.localization_maps(repeated, classes)
        return logits, maps.reshape(batch_size, self.num_classes, *maps.shape[-2:])


def trace(wrapper: ExportableWSOL, example: torch.Tensor) -> torch.jit.ScriptModule:
    """TorchScript trace of an exportable model on ``example`` images."""
    # Lightning's own guard while tracing/scripting: its ``trainer`` property must not raise.
    with torch.no_grad(), _jit_is_scripting():
        return torch.jit.trace(wrapper, example, check_trace=False)


def resolve_model_class(name: str) -> type[WSOLModule]:
    """A :class:`WSOLModule` subclass from a dotted path or a short name (``wsol_lightning.models.CAM``, ``CAM``).

    Dotted paths are imported only inside ``wsol_lightning`` or when their module is already imported.
    """
    import wsol_lightning.models as models

    module_name, _, class_name = name.rpartition(".")
    found = None
    # Import only this package's modules (a checkpoint's class path must not run arbitrary code).
    if module_name in sys.modules or module_name.split(".")[0] == "wsol_lightning":
        try:
            found = getattr(importlib.import_module(module_name), class_name, None)
        except ImportError:
            found = None
    if found is None:
        found = {n.lower(): getattr(models, n) for n in models.__all__}.get(class_name.lower())
    if not (isinstance(found, type) and issubclass(found, WSOLModule)) or found is WSOLModule:
        raise ValueError(f"--model {name!r} is not a WSOL method; available: {', '.join(models.available_models())}")
    return found


def load_module(ckpt_path: str | Path, model: str | None = None) -> tuple[WSOLModule, dict]:
    """The LightningModule of a checkpoint and the checkpoint's datamodule hyperparameters.

    The class is the ``_class_path`` LightningCLI stores in the checkpoint; ``model`` names it for
    checkpoints without one (a different ``model`` than the stored one is an error).
    """
    ckpt_path = Path(ckpt_path)
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"--ckpt_path {str(ckpt_path)!r} does not exist")
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    stored = checkpoint.get("hyper_parameters", {}).get("_class_path")
    if stored and model and resolve_model_class(stored) is not resolve_model_class(model):
        raise ValueError(f"--model {model!r} differs from the checkpoint's class {stored!r}")
    if not (stored or model):
        raise ValueError(f"{ckpt_path} does not store its model class; pass --model (e.g. --model CAM)")
    module = resolve_model_class(stored or model).load_from_checkpoint(ckpt_path, map_location="cpu")
    return module.eval(), checkpoint.get("datamodule_hyper_parameters", {})


def export_model(
    ckpt_path: str | Path,
    export_format: ExportFormat,
    output: str | Path,
    image_size: int | None = None,
    model: str | None = None,
) -> Path:
    """Export a checkpoint (see the module docstring); returns the written file.

    Args:
        ckpt_path: the checkpoint.
        export_format: ``torchscript`` or ``onnx``.
        output: file to write.
        image_size: side of the example input (default: the checkpoint's ``data.crop_size``, else 224).
            The trace's map sizes follow it; ONNX keeps the batch dimension dynamic.
        model: model class for checkpoints that do not store one (short name or dotted path).
    """
    if export_format not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {export_format!r}")
    module, data_hparams = load_module(ckpt_path, model)
    size = image_size or int(data_hparams.get("crop_size") or DEFAULT_IMAGE_SIZE)
    if size < 1:
        raise ValueError(f"--image_size must be positive, got {size}")
    wrapper = ExportableWSOL(module)
    example = torch.zeros(2, 3, size, size)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if export_format == "torchscript":
        trace(wrapper, example).save(str(output))
        return output
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install onnx onnxruntime") from None
    with torch.no_grad(), _jit_is_scripting():
        torch.onnx.export(
            wrapper, (example,), str(output), dynamo=False, input_names=["images"],
            output_names=["logits", "class_maps"], opset_version=17,
            dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}, "class_maps": {0: "batch"}},
        )
    return output


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wsol export",
        description="Export a checkpoint as TorchScript or ONNX; forward(images) returns (logits, class_maps).",
    )
    parser.add_argument("--ckpt_path", required=True, help="checkpoint written by wsol fit")
    parser.add_argument("--format", required=True, choices=FORMATS, dest="export_format", help="output format")
    parser.add_argument("--output", required=True, help="file to write (.pt for torchscript, .onnx for onnx)")
    parser.add_argument("--image_size", type=int, default=None, help="input side (default: the checkpoint's crop_size)")
    parser.add_argument("--model", default=None, help="model class when the checkpoint stores none (e.g. CAM)")
    return parser


def main(args: list[str] | None = None) -> Path:
    """``wsol export`` entry point; errors are one line on stderr and exit status 2."""
    parser = build_parser()
    options = parser.parse_args(args)
    try:
        path = export_model(options.ckpt_path, options.export_format, options.output, options.image_size, options.model)
    except (FileNotFoundError, ValueError, ImportError) as err:
        parser.error(str(err))
    print(f"wrote {path}", file=sys.stderr)
    return path
