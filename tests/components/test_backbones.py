from __future__ import annotations

import pytest
import torch

from wsol_lightning.errors import ConfigError
from wsol_lightning.models.components import BACKBONES, PretrainedWeightsNotFoundError, build_backbone

CHANNELS = {"vgg16": 512, "resnet50": 2048, "inception_v3": 768, "resnet18": 512, "efficientnet_lite0": 1280,
            "timm/resnet18": 512, "timm/convnext_atto": 320}


@pytest.mark.parametrize("name", [*BACKBONES, "timm/resnet18", "timm/convnext_atto"])
@pytest.mark.parametrize("large", [False, True])
def test_feature_map_sizes_at_224(name: str, large: bool) -> None:
    backbone = build_backbone(name, large_feature_map=large).eval()
    with torch.no_grad():
        out = backbone(torch.zeros(1, 3, 224, 224))
    expected = 28 if large else 14
    assert out.shape == (1, backbone.out_channels, expected, expected)
    assert backbone.out_channels == CHANNELS[name] and backbone.large_feature_map == large


def test_each_backbone_declares_its_input_normalization() -> None:
    assert build_backbone("efficientnet_lite0").mean == (0.5, 0.5, 0.5)
    assert build_backbone("efficientnet_lite0").std == (0.5, 0.5, 0.5)
    assert build_backbone("resnet18").mean == (0.485, 0.456, 0.406)
    backbone = build_backbone("efficientnet_lite0")
    images = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(backbone.normalize(images), (images - 0.5) / 0.5)


def test_timm_backbones_expose_their_stages_and_refuse_models_without_dilation() -> None:
    backbone = build_backbone("timm/resnet18")
    assert backbone.unit_names[-2:] == ["layer3", "layer4"]  # a plain sequence: attachable units
    assert build_backbone("timm/convnext_atto").unit_names[:2] == ["stem", "stages_0"]
    with pytest.raises(ConfigError, match="output_stride=16"):
        build_backbone("timm/vit_tiny_patch16_224")
    with pytest.raises(ConfigError, match="no_such_net"):
        build_backbone("timm/no_such_net")


def test_resnet_layer4_is_in_the_head_lr_group() -> None:
    backbone = build_backbone("resnet18")
    names = backbone.head_lr_parameter_names()
    assert names and all(n.startswith("units.layer4_") for n in names)


def test_taps_insert_and_run_from() -> None:
    backbone = build_backbone("resnet18").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out, taps = backbone.forward_features(x, taps=["layer3_1"])
        torch.testing.assert_close(backbone.run_from(taps["layer3_1"], "layer3_1"), out)
    inserted = backbone.insert_after(["layer3_1"], lambda name, ch: torch.nn.Identity())
    assert inserted == ["layer3_1_inserted"] and backbone.unit_names.index("layer3_1_inserted") == backbone.unit_names.index("layer3_1") + 1
    with pytest.raises(KeyError, match="nope"):
        backbone.forward_features(x, taps=["nope"])


def test_pretrained_without_cached_weights_says_where_to_put_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(PretrainedWeightsNotFoundError, match=str(tmp_path / "hub" / "checkpoints")):
        build_backbone("resnet18", pretrained=True)


def test_pretrained_loads_cached_weights(tmp_path, monkeypatch) -> None:
    from torchvision import models as tvm

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reference = tvm.resnet18()
    path = tmp_path / "hub" / "checkpoints" / tvm.ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    backbone = build_backbone("resnet18", pretrained=True)
    torch.testing.assert_close(backbone.units["stem"][0].weight, reference.conv1.weight)


def test_unknown_backbone() -> None:
    with pytest.raises(ValueError, match="unknown backbone 'vgg19'"):
        build_backbone("vgg19")
