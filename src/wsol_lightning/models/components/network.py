"""The one question every method's network answers: given images and classes, its logits and maps.

Evaluation, ``predict``, the CAM visualizer and ``export`` ask a network only this, through
:meth:`LocalizationNetwork.localize` (the map of one class per image) and
:meth:`LocalizationNetwork.localize_all_classes` (every class's map, for export). Maps are raw:
not resized, not normalized; :mod:`wsol_lightning.cam` does both exactly as the standard
evaluation.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import NamedTuple

import torch
from torch import nn

NO_EXTRAS: MappingProxyType = MappingProxyType({})


class LocalizationOutput(NamedTuple):
    """What :meth:`LocalizationNetwork.localize` returns."""

    logits: torch.Tensor  #: ``[B, C]`` classification logits
    maps: torch.Tensor  #: ``[B, h, w]`` raw localization map of ``classes[b]`` for image ``b``
    classes: torch.Tensor  #: ``[B]`` the localized classes (the given ones, or the top-1 classes)
    extras: MappingProxyType = NO_EXTRAS  #: method outputs the evaluation reads (DANet: level logits)


class LocalizationNetwork(nn.Module):
    """Base of the methods' pure-torch networks (no Lightning).

    A network's first arguments are ``backbone`` (a
    :class:`~wsol_lightning.models.components.Backbone`, or a backbone name for a random-init one
    with 14x14 maps at 224 px) and ``num_classes``. A subclass implements :meth:`localize` with the method's own map (ACoL's fused branches, SPA's
    SCG, DANet's level fusion, MCIS's co-attention, ...); it overrides
    :meth:`localize_all_classes` when every class's map comes out of one forward pass, and
    :attr:`maps_depend_on_batch` when an image's map depends on the other images of its batch.
    """

    def localize(self, images: torch.Tensor, classes: torch.Tensor | None = None) -> LocalizationOutput:
        """Logits and the raw map of ``classes[b]`` for image ``b`` (``None``: each image's top-1 class).

        Args:
            images: RGB images in ``[0, 1]``, ``[B, 3, H, W]`` (the network normalizes them).
            classes: int64 ``[B]`` or ``None``.
        """
        raise NotImplementedError

    def localize_all_classes(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B, C]`` and the raw maps of every class ``[B, C, h, w]``.

        The default runs :meth:`localize` on the batch repeated once per class (exact, ``C`` times
        the cost); networks whose maps of all classes come out of one pass override it.
        """
        if self.maps_depend_on_batch:
            raise ValueError(
                f"{type(self).__name__}'s maps depend on the other images of a batch, so the maps of one "
                "image alone are not defined (see the method's README for the setting that removes this)"
            )
        logits = self.localize(images).logits
        batch_size, num_classes = logits.shape
        repeated = images.repeat_interleave(num_classes, dim=0)
        classes = torch.arange(num_classes, device=images.device).repeat(batch_size)
        maps = self.localize(repeated, classes).maps
        return logits, maps.reshape(batch_size, num_classes, *maps.shape[-2:])

    @property
    def maps_depend_on_batch(self) -> bool:
        """Whether an image's map depends on the other images of its batch (then it cannot be exported)."""
        return False


def top1_classes(logits: torch.Tensor, classes: torch.Tensor | None) -> torch.Tensor:
    """``classes``, or the top-1 class of every image when ``classes`` is ``None``."""
    return logits.argmax(dim=1) if classes is None else classes


class ClassMapNetwork(LocalizationNetwork):
    """A network whose forward output has ``logits [B, C]`` and ``class_maps [B, C, h, w]`` (its CAM).

    The map of class ``c`` is ``class_maps[:, c]``; every class comes out of one pass.
    """

    def localize(self, images: torch.Tensor, classes: torch.Tensor | None = None) -> LocalizationOutput:
        """Logits and the class map of ``classes[b]`` (default: the top-1 class)."""
        out = self(images)
        classes = top1_classes(out.logits, classes)
        maps = out.class_maps[torch.arange(len(classes), device=classes.device), classes]
        return LocalizationOutput(out.logits, maps, classes)

    def localize_all_classes(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self(images)
        return out.logits, out.class_maps
