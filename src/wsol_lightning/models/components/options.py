"""One-line checks of a method's options: a bad value is a :class:`~wsol_lightning.errors.ConfigError` naming the key."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from wsol_lightning.errors import ConfigError


def require(condition: bool, key: str, requirement: str, value: Any) -> None:
    """Raise ``ConfigError("<key> must be <requirement>, got <value>")`` unless ``condition``."""
    if not condition:
        raise ConfigError(f"{key} must be {requirement}, got {value!r}")


def require_choice(key: str, value: Any, choices: Iterable[Any]) -> None:
    """``value`` is one of ``choices`` (the message lists them)."""
    choices = tuple(choices)
    require(value in choices, key, "one of " + ", ".join(repr(c) for c in choices), value)
