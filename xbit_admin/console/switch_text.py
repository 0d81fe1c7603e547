"""Switch values as the desk reads them (the switches page, its history table and its CSV)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from xbit_admin.switches.registry import REGISTRY, display

FRACTION_SUFFIXES = ("_move", "_rate", "_ratio")  # number switches held as fractions (0.05 = 5 %)


def human(switch: Any, value: Any) -> str:
    """A switch value as the desk reads it: on/off, amounts with thousands separators and
    their unit, fractions as percentages — never a raw "10000" or "False"."""
    if value is None or value == "":
        return "—"
    if switch.kind == "bool" or isinstance(value, bool):
        text = str(value).strip().lower()
        return (
            "on"
            if text in ("true", "on", "1", "yes")
            else "off"
            if text in ("false", "off", "0", "no")
            else str(value)
        )
    if switch.kind in ("money", "number", "int"):
        try:
            number = Decimal(str(value))
        except (InvalidOperation, ValueError):
            return str(value)
        if switch.kind == "money":
            return f"{number:,.2f} USDC".replace(".00 USDC", " USDC")
        fraction = switch.name.endswith(FRACTION_SUFFIXES) or (
            switch.maximum is not None and switch.maximum <= 1
        )
        if switch.kind == "number" and fraction:
            return f"{(number * 100).normalize():f} %"
        return f"{number.normalize():,f}"
    return display(value)


def change_text(name: str, value: Any) -> str:
    """A recorded value of switch ``name`` (``key`` or ``key:scope``) in words; a switch no longer
    registered shows its stored value."""
    switch = REGISTRY.get(name.partition(":")[0])
    return human(switch, value) if switch is not None else display(value)
