"""The fixed decimal context and the argument checks of the margin model (``trading.margin``,
``trading.margin_cross``).

Pure (spec 03; style rules 7 and 11): no Django, no I/O, no floats. Every public function of the margin
model runs in one fixed decimal context (:data:`EXACT_CONTEXT`, applied by :func:`exact`) so a result
never depends on whatever context the caller left active, and so the 1/(2L) rates and the liquidation
prices carry far more digits than the 1 bp agreement with HL that spec 03 asks for.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from decimal import (
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    getcontext,
    localcontext,
)
from typing import Any, ParamSpec, TypeVar

__all__ = [
    "EXACT_CONTEXT",
    "checked_leverage",
    "decimals_of",
    "exact",
    "finite",
    "hl_decimal",
    "non_negative",
    "positive",
]

# 50 digits: far beyond any USDC amount, so products and sums of realistic inputs are exact and the
# only rounding left is in the divisions, ~1e-49 relative. The traps turn a NaN, a zero divisor or an
# overflow into an exception instead of a silently poisoned result.
EXACT_CONTEXT = Context(prec=50, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow])

_P = ParamSpec("_P")
_R = TypeVar("_R")


# The context each thread entered for its outermost margin call: a call made inside it (the margin
# functions call one another, ~20 times per order) runs in it as it is, instead of copying
# EXACT_CONTEXT again (~2 % of an order's CPU). Only while it is still the active context: a caller
# that switched contexts (``localcontext``, ``setcontext``) inside gets EXACT_CONTEXT afresh.
_entered = threading.local()


def exact(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``fn`` in :data:`EXACT_CONTEXT`."""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        outer = getattr(_entered, "context", None)
        if outer is not None and getcontext() is outer:
            return fn(*args, **kwargs)
        with localcontext(EXACT_CONTEXT) as context:
            _entered.context = context
            try:
                return fn(*args, **kwargs)
            finally:
                _entered.context = outer

    return wrapper


def finite(value: Decimal, name: str) -> Decimal:
    """``value`` itself, once checked to be a finite Decimal."""
    # A float here would already be a rounding error (style rule 7), so it is refused, not converted.
    if not isinstance(value, Decimal):
        raise TypeError(f"{name} must be a Decimal, got {type(value).__name__}")
    if not value.is_finite():
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def positive(value: Decimal, name: str) -> Decimal:
    if finite(value, name) <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def non_negative(value: Decimal, name: str) -> Decimal:
    if finite(value, name) < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def checked_leverage(value: int, name: str = "leverage") -> int:
    """``value`` itself, once checked to be an int leverage of at least 1."""
    # bool is an int subclass; True as a leverage is a bug, not 1x.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def decimals_of(value: Decimal) -> int:
    """The number of decimal places ``value`` needs (trailing zeros do not count)."""
    exponent = value.normalize().as_tuple().exponent
    if not isinstance(exponent, int):
        raise ValueError(f"not a finite number: {value}")
    return max(0, -exponent)


def hl_decimal(value: Any, name: str) -> Decimal:
    """A number from HL's JSON as a Decimal."""
    # HL sends numbers as strings; a JSON float would already have lost digits.
    if isinstance(value, Decimal | int | str) and not isinstance(value, bool):
        return finite(Decimal(value), name)
    raise TypeError(f"{name} must be a decimal string, got {value!r}")
