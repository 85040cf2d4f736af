"""WSOL methods, one folder per paper, all on :class:`WSOLModule`."""

from __future__ import annotations

from wsol_lightning.models.acol import ACoL
from wsol_lightning.models.adl import ADL
from wsol_lightning.models.base import WSOLModule
from wsol_lightning.models.cam import CAM
from wsol_lightning.models.cutmix import CutMix
from wsol_lightning.models.danet import DANet
from wsol_lightning.models.has import HaS
from wsol_lightning.models.i2c import I2C
from wsol_lightning.models.icl import ICL
from wsol_lightning.models.mcis import MCIS
from wsol_lightning.models.spa import SPA
from wsol_lightning.models.spg import SPG

_MODELS: dict[str, type[WSOLModule]] = {
    "acol": ACoL,
    "adl": ADL,
    "cam": CAM,
    "cutmix": CutMix,
    "danet": DANet,
    "has": HaS,
    "i2c": I2C,
    "icl": ICL,
    "mcis": MCIS,
    "spa": SPA,
    "spg": SPG,
}


def available_models() -> list[str]:
    """Names accepted by :func:`get_model`."""
    return sorted(_MODELS)


def model_class(name: str) -> type[WSOLModule]:
    """The LightningModule class of a method by its folder name (``"cam"``, ``"acol"``, ...)."""
    try:
        return _MODELS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(available_models())}") from None


def get_model(name: str, **kwargs: object) -> WSOLModule:
    """Instantiate a method by its folder name."""
    return model_class(name)(**kwargs)


__all__ = [
    "ACoL",
    "ADL",
    "CAM",
    "CutMix",
    "DANet",
    "HaS",
    "I2C",
    "ICL",
    "MCIS",
    "SPA",
    "SPG",
    "WSOLModule",
    "available_models",
    "get_model",
    "model_class",
]
