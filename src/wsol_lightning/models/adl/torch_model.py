"""ADL network: the CAM network with attention-based dropout layers inserted (Choe & Shim, CVPR 2019)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from wsol_lightning.errors import ConfigError
from wsol_lightning.models.cam.torch_model import CAMNet
from wsol_lightning.models.components import Backbone
from wsol_lightning.models.components.adl import AttentionBasedDropout, DrawMode

#: Position name for "after the neck" (the last 1024-channel conv of the VGG/Inception heads).
NECK_POSITION = "neck"

#: wsolevaluation's insertion points (ADL note §3), as backbone unit names.
DEFAULT_ADL_POSITIONS: dict[str, tuple[str, ...]] = {
    # after pool3, after conv4_3 (before pool4), after conv5_3 (14x14 and 28x28 alike)
    "vgg16": ("pool3", "conv4", "conv5"),
    # after layer3 block 0, layer4 block 0 and layer4's last block (= official TF "31 41 5")
    "resnet50": ("layer3_0", "layer4_0", "layer4_2"),
    "resnet18": ("layer3_0", "layer4_0", "layer4_1"),
    # after Mixed_5d (before the extra 14x14 pool), Mixed_6e, and the 2nd added 1024-ch conv
    "inception_v3": ("Mixed_5d", "Mixed_6e", NECK_POSITION),
    # ours: after the last stride-16 stage, the dilated stage and the 1x1 head conv's BN
    "efficientnet_lite0": ("blocks_4", "blocks_5", "bn2"),
}
#: Positions on backbones the table does not list (``timm/<name>``): the last three units.
DEFAULT_POSITION_COUNT = 3


class ADLNet(CAMNet):
    """CAM network (backbone -> neck -> GAP -> linear) with ADL after the named units.

    ADL is parameter-free, so inserting it after loading the pretrained weights keeps every weight
    where it was (no index shift, ADL note pitfall 4). For InceptionV3 the neck's dropout layers
    are removed, as in wsolevaluation's ``InceptionAdl``. At evaluation every ADL is the identity
    and the map is the plain CAM.

    Args:
        backbone, num_classes: see :class:`~wsol_lightning.models.components.LocalizationNetwork`.
        backbone_units, apply_prob, foreground_threshold, draw, pretrained_classifier: see
            :class:`~wsol_lightning.models.adl.ADL`.
    """

    def __init__(
        self,
        backbone: Backbone | str,
        num_classes: int,
        backbone_units: Sequence[str] | None = None,
        apply_prob: float = 0.75,
        foreground_threshold: float = 0.9,
        draw: DrawMode = "batch",
        pretrained_classifier: bool = False,
    ) -> None:
        super().__init__(backbone, num_classes, pretrained_classifier)
        name = self.backbone.name
        default = DEFAULT_ADL_POSITIONS.get(name) or self.backbone.last_units(DEFAULT_POSITION_COUNT)
        positions = list(default if backbone_units is None else backbone_units)
        if not positions:
            raise ConfigError("backbone_units is empty; name at least one backbone unit or 'neck'")
        unknown = set(positions) - set(self.backbone.unit_names) - {NECK_POSITION}
        if unknown:
            raise ConfigError(
                f"backbone_units has unknown units {sorted(unknown)}; {name} "
                f"(large_feature_map={self.backbone.large_feature_map}) has {self.backbone.unit_names} "
                f"and {NECK_POSITION!r}"
            )

        def make_adl(_unit: str = "", _channels: int = 0) -> AttentionBasedDropout:
            return AttentionBasedDropout(apply_prob, foreground_threshold, draw)

        self.backbone.insert_after([p for p in positions if p != NECK_POSITION], make_adl)
        if isinstance(self.neck, nn.Sequential):
            self.neck = nn.Sequential(*[m for m in self.neck if not isinstance(m, nn.Dropout)])
        if NECK_POSITION in positions:
            self.neck = nn.Sequential(self.neck, make_adl())

    @property
    def adl_layers(self) -> list[AttentionBasedDropout]:
        """Every inserted ADL, in forward order."""
        return [m for m in self.modules() if isinstance(m, AttentionBasedDropout)]
