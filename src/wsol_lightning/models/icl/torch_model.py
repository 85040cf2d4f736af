"""ICL network (Ki et al., ACCV 2020): the CAM network with an attention layer at each ADL position.

Each attention layer (:class:`ICLAttentionLayer`) is a non-local block (Wang et al., CVPR 2018;
identity at initialization) whose output ``Z`` gives the self-attention map ``a = mean_c Z``
(replacing ADL's channel mean of the block input, ICL abstract), followed in training by ADL's
random selection between the importance map ``sigmoid(a)`` and a drop mask that removes the most
discriminative part *and the background* (ICL abstract: "drop background regions in addition to the
most discriminative region"). The random selection is built from the shared ADL pieces in
:mod:`wsol_lightning.models.components.adl` (same draw rule: one draw per layer per step). At
evaluation the selection is the identity; the non-local blocks stay (they are learned layers) and the
map is the plain CAM.

The network also returns every position's ``Z`` and ``a`` so the losses in :mod:`.loss` can be
computed; :meth:`ICLNet.region_embeddings` projects masked-pooled features into the embedding space
of the contrastive attention loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from wsol_lightning.errors import ConfigError
from wsol_lightning.models.adl.torch_model import DEFAULT_ADL_POSITIONS, DEFAULT_POSITION_COUNT, NECK_POSITION
from wsol_lightning.models.cam.torch_model import CAMNet
from wsol_lightning.models.components import Backbone
from wsol_lightning.models.components.adl import (
    DrawMode,
    channel_mean_attention,
    draw_drop_selection,
    drop_mask,
    importance_map,
)
from wsol_lightning.models.components.non_local import NonLocalBlock
from wsol_lightning.models.components.options import require, require_choice
from wsol_lightning.models.icl.loss import (
    AttentionMasks,
    ThresholdReference,
    masked_average_pool,
    threshold_map,
)

#: ICL's positions are ADL's (our default: the paper's positions are not verified, see README).
DEFAULT_ICL_POSITIONS: dict[str, tuple[str, ...]] = dict(DEFAULT_ADL_POSITIONS)


class ICLOutput(NamedTuple):
    logits: torch.Tensor  # [B, num_classes]
    features: torch.Tensor  # [B, K, h, w], the map the CAM is read from
    attentions: dict[str, torch.Tensor]  # position -> a = mean_c Z, [B, 1, h_p, w_p], float32
    attended_features: dict[str, torch.Tensor]  # position -> Z (non-local output, before selection)


class RegionEmbeddings(NamedTuple):
    """Projected, L2-normalized embeddings ``[B, D]`` of the three attention regions."""

    foreground: torch.Tensor
    background: torch.Tensor
    dropped_foreground: torch.Tensor


class ICLAttentionLayer(nn.Module):
    """Non-local block, attention ``a = mean_c Z`` and ADL-style random selection (training only).

    In training with ``random_selection``: one draw per forward picks the drop mask (probability
    ``drop_rate``) or the importance map ``sigmoid(a)``; the drop mask is ADL's
    ``1[t < drop_threshold * max t]`` times, with ``drop_background``,
    ``1[t >= background_threshold * max t]``, where ``t`` is ``a`` min-max normalized
    (``threshold_reference="minmax"``) or ``a`` itself (``"max"``, ADL). Output ``Z * map``; in eval
    (or without random selection) ``Z``.

    Args:
        channels: input channels.
        use_non_local: insert the non-local block; ``False`` gives ADL's channel mean of the input.
        non_local_reduction: ``C' = channels // non_local_reduction`` embedding channels.
        random_selection: ADL's stochastic drop mask / importance map in training.
        drop_rate: probability of the drop mask.
        drop_threshold: ``gamma_d``, positions with ``a >= gamma_d * max a`` are dropped.
        background_threshold: ``gamma_bg``, positions with ``a < gamma_bg * max a`` are background.
        drop_background: the drop mask also removes the background (ICL); ``False``: ADL's mask.
        threshold_reference: ``"minmax"`` or ``"max"``, see :func:`.loss.threshold_map`.
        draw: ``"batch"`` (ADL's rule, one draw shared by the batch) or ``"sample"``.
    """

    def __init__(
        self,
        channels: int,
        use_non_local: bool = True,
        non_local_reduction: int = 2,
        random_selection: bool = True,
        drop_rate: float = 0.75,
        drop_threshold: float = 0.9,
        background_threshold: float = 0.2,
        drop_background: bool = True,
        threshold_reference: ThresholdReference = "minmax",
        draw: DrawMode = "batch",
    ) -> None:
        super().__init__()
        self.non_local: nn.Module = (
            NonLocalBlock(channels, max(1, channels // non_local_reduction)) if use_non_local else nn.Identity()
        )
        self.random_selection = random_selection
        self.drop_rate = drop_rate
        self.drop_threshold = drop_threshold
        self.background_threshold = background_threshold
        self.drop_background = drop_background
        self.threshold_reference = threshold_reference
        self.draw = draw

    def selection_drop_mask(self, attention: torch.Tensor) -> torch.Tensor:
        """The drop mask of the random selection (float ``[B, 1, h, w]``, 0 where dropped)."""
        thresholded = threshold_map(attention.detach(), self.threshold_reference)
        mask = drop_mask(thresholded, self.drop_threshold)
        if self.drop_background:
            mask = mask * (1.0 - drop_mask(thresholded, self.background_threshold))
        return mask

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(output, Z, a)``: the selected features, the non-local output and its attention map."""
        attended = self.non_local(x)
        attention = channel_mean_attention(attended)
        if not (self.training and self.random_selection):
            return attended, attended, attention
        use_drop = draw_drop_selection(x.shape[0], self.drop_rate, self.draw).to(x.device).view(-1, 1, 1, 1)
        selected = torch.where(use_drop, self.selection_drop_mask(attention), importance_map(attention))
        return attended * selected.to(attended.dtype), attended, attention

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_attention(x)[0]

    def extra_repr(self) -> str:
        return (
            f"random_selection={self.random_selection}, drop_rate={self.drop_rate}, "
            f"drop_threshold={self.drop_threshold}, background_threshold={self.background_threshold}, "
            f"drop_background={self.drop_background}, threshold_reference={self.threshold_reference!r}, "
            f"draw={self.draw!r}"
        )


class ProjectionHead(nn.Module):
    """``h``: Linear(C, C) - ReLU - Linear(C, D), then L2 normalization (ours, SimCLR-style).

    Args:
        in_channels: pooled feature channels ``C``.
        embedding_dim: embedding size ``D``.
    """

    def __init__(self, in_channels: int, embedding_dim: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_channels, in_channels), nn.ReLU(inplace=True), nn.Linear(in_channels, embedding_dim)
        )

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.layers(pooled).float(), dim=1)


class ICLNet(CAMNet):
    """CAM network (backbone -> neck -> GAP -> linear) with ICL attention layers and projection heads.

    Attention layers are inserted after loading the pretrained weights, so no pretrained weight
    moves. As in ADL's InceptionV3, the neck's dropout layers are removed.

    Args:
        backbone, num_classes: see :class:`~wsol_lightning.models.components.LocalizationNetwork`.
        backbone_units, apply_prob, foreground_threshold, use_non_local, non_local_reduction,
            random_selection, background_threshold, drop_background, threshold_reference, draw,
            embedding_dim: see :class:`~wsol_lightning.models.icl.ICL`.
        contrastive_units: ``"last"``, ``"all"`` or ``"none"`` (no projection head: the
            LightningModule passes it when the contrastive loss is off).
    """

    def __init__(
        self,
        backbone: Backbone | str,
        num_classes: int,
        backbone_units: Sequence[str] | None = None,
        contrastive_units: Literal["last", "all", "none"] = "last",
        embedding_dim: int = 128,
        use_non_local: bool = True,
        non_local_reduction: int = 2,
        random_selection: bool = True,
        apply_prob: float = 0.75,
        foreground_threshold: float = 0.9,
        background_threshold: float = 0.2,
        drop_background: bool = True,
        threshold_reference: ThresholdReference = "minmax",
        draw: DrawMode = "batch",
    ) -> None:
        super().__init__(backbone, num_classes)
        default = DEFAULT_ICL_POSITIONS.get(self.backbone.name) or self.backbone.last_units(DEFAULT_POSITION_COUNT)
        positions = list(default if backbone_units is None else backbone_units)
        self._validate(positions, contrastive_units, embedding_dim,
                       non_local_reduction, apply_prob, foreground_threshold, background_threshold, threshold_reference, draw)
        self.attention_units = tuple(p for p in self._forward_order() if p in positions)
        self.contrastive_units = {
            "last": self.attention_units[-1:], "all": self.attention_units, "none": ()
        }[contrastive_units]

        def make_layer(_unit: str, channels: int) -> ICLAttentionLayer:
            return ICLAttentionLayer(
                channels, use_non_local, non_local_reduction, random_selection, apply_prob, foreground_threshold,
                background_threshold, drop_background, threshold_reference, draw,
            )

        channels = {p: self.backbone.unit_channels[p] for p in positions if p != NECK_POSITION}
        self.backbone.insert_after([p for p in positions if p != NECK_POSITION], make_layer)
        neck_channels = self.classifier.fc.in_features
        if isinstance(self.neck, nn.Sequential):
            self.neck = nn.Sequential(*[m for m in self.neck if not isinstance(m, nn.Dropout)])
        self.neck_attention = make_layer(NECK_POSITION, neck_channels) if NECK_POSITION in positions else None
        channels[NECK_POSITION] = neck_channels
        self.projection_heads = nn.ModuleDict(
            {p: ProjectionHead(channels[p], embedding_dim) for p in self.contrastive_units}
        )

    def _forward_order(self) -> list[str]:
        return [*self.backbone.unit_names, NECK_POSITION]

    def _validate(
        self,
        positions: list[str],
        contrastive_units: str,
        embedding_dim: int,
        non_local_reduction: int,
        apply_prob: float,
        foreground_threshold: float,
        background_threshold: float,
        threshold_reference: str,
        draw: str,
    ) -> None:
        if not positions:
            raise ConfigError("backbone_units is empty; name at least one backbone unit or 'neck'")
        unknown = set(positions) - set(self._forward_order())
        if unknown:
            raise ConfigError(
                f"backbone_units has unknown units {sorted(unknown)}; {self.backbone.name} "
                f"(large_feature_map={self.backbone.large_feature_map}) has {self.backbone.unit_names} and {NECK_POSITION!r}"
            )
        require_choice("contrastive_units", contrastive_units, ("last", "all", "none"))
        require(embedding_dim >= 1, "embedding_dim", "positive", embedding_dim)
        require(non_local_reduction >= 1, "non_local_reduction", ">= 1", non_local_reduction)
        require(0.0 <= apply_prob <= 1.0, "apply_prob", "in [0, 1]", apply_prob)
        if not 0.0 <= background_threshold < foreground_threshold <= 1.0:
            raise ConfigError(
                "need 0 <= background_threshold < foreground_threshold <= 1, got "
                f"background_threshold={background_threshold}, foreground_threshold={foreground_threshold}"
            )
        require_choice("threshold_reference", threshold_reference, ("minmax", "max"))
        require_choice("draw", draw, ("batch", "sample"))

    @property
    def attention_layers(self) -> list[ICLAttentionLayer]:
        """Every attention layer, in forward order."""
        return [m for m in self.modules() if isinstance(m, ICLAttentionLayer)]

    def forward(self, images: torch.Tensor) -> ICLOutput:
        attentions: dict[str, torch.Tensor] = {}
        attended_features: dict[str, torch.Tensor] = {}
        x = self.backbone.normalize(images)
        previous = ""
        for name, unit in self.backbone.units.items():
            if isinstance(unit, ICLAttentionLayer):
                x, attended_features[previous], attentions[previous] = unit.forward_with_attention(x)
            else:
                x = unit(x)
                previous = name
        x = self.neck(x)
        if self.neck_attention is not None:
            x, attended_features[NECK_POSITION], attentions[NECK_POSITION] = self.neck_attention.forward_with_attention(x)
        return ICLOutput(self.classifier(x), x, attentions, attended_features)

    def region_embeddings(self, position: str, features: torch.Tensor, masks: AttentionMasks) -> RegionEmbeddings:
        """``z_r = normalize(h(sum M_r Z / sum M_r))`` for the three regions of ``features`` at ``position``."""
        head = self.projection_heads[position]
        return RegionEmbeddings(
            head(masked_average_pool(features, masks.foreground)),
            head(masked_average_pool(features, masks.background)),
            head(masked_average_pool(features, masks.dropped_foreground)),
        )
