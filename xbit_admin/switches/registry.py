"""The switch catalogue (spec 10): every control switch with its type, default, who may change it,
what it does, and the adapter that reads and writes it in the store of the app that owns it.

Adapters (``adapters.py``) read and write through each owner's services; a switch whose owner cannot
answer is listed as unavailable instead of failing. A scoped switch (``routing_mode`` per
asset, ``withdrawals_enabled`` per chain) is addressed as ``name:scope``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from core.errors import ApplicationError, ErrorCode

KINDS = ("bool", "enum", "money", "number", "int", "list", "text")

Getter = Callable[[str], Any]
Setter = Callable[[str, Any, Any, str], None]  # scope, value, acting_user, reason


def _always() -> bool:
    return True


def _no_scopes() -> list[str]:
    return [""]


@dataclass(frozen=True)
class Switch:
    name: str
    label: str
    kind: str
    default: Any
    permission: str  # the StaffPermission codename that may change it
    description: str
    get: Getter
    set: Setter
    owner: str
    choices: tuple[str, ...] = ()
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    scopes: Callable[[], list[str]] = _no_scopes
    available: Callable[[], bool] = _always
    scoped: bool = False
    consequences: dict[str, str] = field(default_factory=dict)  # value → what happens

    def key(self, scope: str) -> str:
        return f"{self.name}:{scope}" if self.scoped else self.name

    def is_available(self) -> bool:
        try:
            return bool(self.available())
        except Exception:  # an owner half-built (missing table, import error) is simply unavailable
            return False

    def clean(self, value: Any) -> Any:
        """Validate and normalise to a JSON value (money and numbers as canonical strings)."""
        kind = self.kind
        try:
            if kind == "bool":
                if isinstance(value, bool):
                    return value
                text = str(value).strip().lower()
                if text in ("true", "on", "1", "yes"):
                    return True
                if text in ("false", "off", "0", "no"):
                    return False
                raise ValueError
            if kind == "enum":
                text = str(value).strip().upper()
                if text not in self.choices:
                    raise ValueError
                return text
            if kind in ("money", "number"):
                if isinstance(value, bool):
                    raise ValueError
                number = Decimal(str(value).strip().replace(",", "").replace("_", ""))
                if not number.is_finite():
                    raise ValueError
                self._bounds(number)
                return to_json(number)
            if kind == "int":
                if isinstance(value, bool):
                    raise ValueError
                number = Decimal(str(value).strip())
                if number != number.to_integral_value():
                    raise ValueError
                self._bounds(number)
                return int(number)
            if kind == "list":
                items = value if isinstance(value, list | tuple) else str(value).replace(",", " ").split()
                return sorted({str(item).strip().upper() for item in items if str(item).strip()})
            if kind == "text":
                text = str(value).strip()
                if not text or len(text) > 500:
                    raise ValueError
                return text
        except (ValueError, InvalidOperation, TypeError):
            pass
        expected = f"one of {', '.join(self.choices)}" if kind == "enum" else f"a {kind} value"
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR,
            f"{self.label}: {value!r} is not {expected}.",
            {"switch": self.name, "field": "value"},
        )

    def _bounds(self, number: Decimal) -> None:
        if self.minimum is not None and number < self.minimum:
            raise ValueError
        if self.maximum is not None and number > self.maximum:
            raise ValueError

    def read(self, scope: str) -> Any:
        return to_json(self.get(scope))

    def consequence(self, scope: str, value: Any) -> str:
        """What the confirmation dialog says will happen."""
        where = f" ({scope})" if scope else ""
        text = self.consequences.get(str(value), "")
        return f"{self.label}{where} → {display(value)}. {text or self.description}".strip()


def to_json(value: Any) -> Any:
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return text
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def display(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(none)"
    if value is None or value == "":
        return "—"
    return str(value)


REGISTRY: dict[str, Switch] = {}


def register(switch: Switch) -> Switch:
    """Add (or replace, so re-registration in tests is harmless) a switch."""
    if switch.kind not in KINDS:
        raise ValueError(f"unknown switch kind {switch.kind!r}")
    REGISTRY[switch.name] = switch
    return switch


def resolve(key: str) -> tuple[Switch, str]:
    """``name`` or ``name:scope`` → (switch, scope). Unknown names and scopes are NOT_FOUND."""
    name, _, scope = key.partition(":")
    switch = REGISTRY.get(name)
    if switch is None or switch.scoped != bool(scope):
        raise ApplicationError(ErrorCode.NOT_FOUND, f"Unknown switch {key!r}.", {"switch": key})
    if switch.scoped and switch.is_available() and scope not in switch.scopes():
        raise ApplicationError(ErrorCode.NOT_FOUND, f"Unknown scope {scope!r} for {name}.", {"switch": key})
    return switch, scope
