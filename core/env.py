"""Strict access to environment variables.

Malformed values raise ``ImproperlyConfigured`` at start-up instead of being silently replaced by a
default: a typo in production must stop the process, not change its behaviour.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T")
_MISSING = object()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _get(name: str, default: object, cast: Callable[[str], T]) -> T:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        if default is _MISSING:
            raise ImproperlyConfigured(f"environment variable {name} is required")
        return default  # type: ignore[return-value]
    try:
        return cast(raw)
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"environment variable {name} is malformed: {exc}") from None


def env_str(name: str, default: object = _MISSING) -> str:
    return _get(name, default, str)


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"expected one of {sorted(_TRUE | _FALSE)}, got {raw!r}")


def env_bool(name: str, default: object = _MISSING) -> bool:
    return _get(name, default, _bool)


def env_int(name: str, default: object = _MISSING) -> int:
    return _get(name, default, int)


def env_list(name: str, default: object = _MISSING) -> list[str]:
    return _get(name, default, lambda raw: [item.strip() for item in raw.split(",") if item.strip()])
