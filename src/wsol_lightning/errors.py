"""Errors caused by the user's data, configuration or files: the CLI prints them as one line, exit status 2.

Every such error derives from :class:`UserError` and says what is wrong and what to do. Anything
else that escapes a command is a bug or an environment failure and keeps its traceback (status 1).
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix (a path, a key, a value, a file); the message is one line."""


class ConfigError(UserError, ValueError):
    """A configuration value is invalid (the message names the key)."""


class CheckpointError(UserError, ValueError):
    """A checkpoint is missing, unreadable, or does not fit the configuration (the message names it)."""


def find_user_error(error: BaseException) -> UserError | None:
    """``error`` or the first :class:`UserError` in its chain of causes (jsonargparse re-wraps errors)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, UserError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
