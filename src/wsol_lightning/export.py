"""``wsol export``: a checkpoint as a TorchScript or ONNX model returning logits and class maps.

The exported model's ``forward(images)`` takes RGB images in ``[0, 1]``, ``[B, 3, S, S]`` (``S`` the
checkpoint's ``data.crop_size`` unless ``--image_size`` says otherwise; read the image as RGB,
resize it to ``S`` x ``S``, divide by 255: the model normalizes with its backbone's own constants)
and returns

* ``logits`` ``[B, C]``: exactly the classification of ``predict``;
* ``class_maps`` ``[B, C, h, w]``: the raw localization map of every class (not resized, not
  normalized: resize to ``S`` with bicubic interpolation, min-max normalize, then threshold, as
  :mod:`wsol_lightning.cam` and :class:`~wsol_lightning.callbacks.WSOLPredictionWriter` do).

The exported forward is the network's
:meth:`~wsol_lightning.models.components.LocalizationNetwork.localize_all_classes`: networks whose
every class map comes out of one pass (CAM, ADL, ICL, HaS, CutMix, SPG, I2C, DANet, MCIS's
single map, SPA without SCG) export it; the others (ACoL's class-driven erasing, SPA's SCG, MCIS's
co-attention with self-pairs only) run their own ``localize`` on the batch repeated once per class,
exact at ``C`` times the cost. A network whose maps depend on the other images of the batch
(``maps_depend_on_batch``: MCIS co-attention with test partners, cross-image SCG) is refused.

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
    """A method's network as ``forward(images) -> (logits [B, C], class_maps [B, C, h, w])``.

    Args:
        module: the LightningModule (its network is put in eval mode).

    Raises:
        ValueError: the network's maps depend on the other images of the batch.
    """

    def __init__(self, module: WSOLModule) -> None:
        super().__init__()
        network = module.model
        if network.maps_depend_on_batch:
            raise ValueError(
                f"{type(module).__name__}'s maps depend on the other images of a batch with this checkpoint's "
                "settings, so a model of one image cannot reproduce them (see the method's README for the "
                "setting that removes the dependence, e.g. MCIS num_test_partners: 0, SPA scg_cross_image: false)"
            )
        self.network = network.eval()

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network.localize_all_classes(images)


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


def main(args: list[str] | None = None) -> int:
    """``wsol export`` entry point (exit status 0); errors are one line on stderr and exit status 2."""
    parser = build_parser()
    options = parser.parse_args(args)
    try:
        path = export_model(options.ckpt_path, options.export_format, options.output, options.image_size, options.model)
    except (FileNotFoundError, ValueError, ImportError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}", file=sys.stderr)
    return 0
