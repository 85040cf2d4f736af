"""Hyperparameter search spaces as data: each method's ``SEARCH_SPACE`` next to its defaults.

A :class:`Param` names a model init argument (``model.init_args.<name>`` in a config), its type
and its range; ``wsol tune`` (:mod:`wsol_lightning.tune`) samples it with Optuna. Tuple arguments
(SPG's ``(high, low)`` thresholds) are searched element by element (``part``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True)
class Param:
    """One searched init argument: ``float``/``int`` in ``[low, high]`` (``log``: log-uniform) or a
    ``categorical`` of ``choices``; ``part`` is the element of a tuple argument."""

    name: str
    kind: Literal["float", "int", "categorical"]
    low: float = 0.0
    high: float = 1.0
    log: bool = False
    step: int = 1
    choices: tuple[Any, ...] = ()
    part: int | None = None
    note: str = ""

    @property
    def key(self) -> str:
        """The Optuna parameter name: ``name`` or ``name[part]``."""
        return self.name if self.part is None else f"{self.name}[{self.part}]"

    def suggest(self, trial: Any) -> Any:
        """This parameter's value for an ``optuna.Trial``."""
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=self.step, log=self.log)
        return trial.suggest_categorical(self.key, list(self.choices))

    def describe(self) -> str:
        """``lr  float  log-uniform [0.0001, 0.1]  note`` (for ``wsol tune --list-space``)."""
        if self.kind == "categorical":
            domain = "one of " + ", ".join(str(c) for c in self.choices)
        else:
            scale = "log-uniform" if self.log else "uniform"
            step = f" step {self.step}" if self.kind == "int" and self.step != 1 else ""
            domain = f"{scale} [{self.low:g}, {self.high:g}]{step}"
        return f"{self.key:28s} {self.kind:12s} {domain:34s} {self.note}".rstrip()


#: The learning rate, searched for every method (wsolevaluation: log-uniform over 1e-5..1; narrowed
#: to the fine-tuning regime of experiments/*.yaml, whose new layers run at 10x this rate).
LR = Param("lr", "float", 1e-4, 1e-1, log=True, note="backbone rate (heads: x head_lr_multiplier)")


def unit(name: str, note: str = "", low: float = 0.0, high: float = 1.0) -> Param:
    """A uniform float in ``[low, high]`` (default the unit interval)."""
    return Param(name, "float", low, high, note=note)


def weight(name: str, low: float, high: float, note: str = "") -> Param:
    """A log-uniform loss weight."""
    return Param(name, "float", low, high, log=True, note=note)


def thresholds(name: str, note: str = "") -> tuple[Param, Param]:
    """A ``(high, low)`` threshold pair, searched as high in [0.5, 0.95] and low in [0, 0.3]."""
    return (Param(name, "float", 0.5, 0.95, part=0, note=f"{note} high".strip()),
            Param(name, "float", 0.0, 0.3, part=1, note=f"{note} low".strip()))
