"""Decimal quantities: one place defines every quantum.

USDC amounts carry 6 decimal places (the token's own precision); prices and sizes follow HL's rules
and are validated by ``trading.margin``. Conversions from HL's strings go straight to ``Decimal``;
a float never touches money.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation

USDC_DECIMALS = 6
USDC_QUANTUM = Decimal(1).scaleb(-USDC_DECIMALS)
PRICE_MAX_DECIMALS = 8
SIZE_MAX_DECIMALS = 8

# Database column shapes shared by every app: enough integer digits for platform totals.
MONEY_MAX_DIGITS = 28
MONEY_DECIMAL_PLACES = USDC_DECIMALS
PRICE_MAX_DIGITS = 28
PRICE_DECIMAL_PLACES = PRICE_MAX_DECIMALS
SIZE_MAX_DIGITS = 28
SIZE_DECIMAL_PLACES = SIZE_MAX_DECIMALS

ZERO = Decimal(0)


def to_decimal(value: object) -> Decimal:
    """Parse an HL string / int / Decimal. Floats are refused: they cannot represent money exactly."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, (bool, float)):
        raise TypeError(f"refusing {type(value).__name__} as a money quantity: {value!r}")
    elif isinstance(value, int | str):
        try:
            result = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"not a decimal number: {value!r}") from None
    else:
        raise TypeError(f"cannot convert {type(value).__name__} to Decimal")
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return result


def q_usdc(amount: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """Round to USDC's 6 decimals (banker's rounding unless the caller needs a direction)."""
    return amount.quantize(USDC_QUANTUM, rounding=rounding)


def q_usdc_down(amount: Decimal) -> Decimal:
    """Round toward zero: used where rounding up would pay out money that does not exist."""
    return amount.quantize(USDC_QUANTUM, rounding=ROUND_DOWN)


def has_at_most_decimals(amount: Decimal, places: int) -> bool:
    exponent = amount.normalize().as_tuple().exponent
    return isinstance(exponent, int) and -exponent <= places


def fmt_usdc(amount: Decimal) -> str:
    return f"{q_usdc(amount):,.2f}"


# --- numbers typed by people and programs (API bodies, console forms) ------------------------------


@dataclass(frozen=True)
class DecimalShape:
    """How many integer digits and decimal places an input may have (the column's scale; integer
    digits bounded so that no amount derived from it leaves its column, see below)."""

    integer_digits: int
    decimal_places: int

    @classmethod
    def of_column(cls, max_digits: int, decimal_places: int) -> DecimalShape:
        return cls(max_digits - decimal_places, decimal_places)


# Inputs are bounded tighter than their columns (28 digits): a price below 10^10 times a size below
# 10^10 is below 10^20, so a notional, fee or margin computed from them fits a money column (10^22)
# and the decimal context's 28 significant digits at 6 decimals; money inputs stay below 10^15 USDC.
PRICE_INPUT = DecimalShape(10, PRICE_DECIMAL_PLACES)
SIZE_INPUT = DecimalShape(10, SIZE_DECIMAL_PLACES)
MONEY_INPUT = DecimalShape(15, MONEY_DECIMAL_PLACES)
# A configuration value typed in the console, before its service holds it to its own column.
CONFIG_INPUT = DecimalShape(MONEY_MAX_DIGITS - MONEY_DECIMAL_PLACES, PRICE_DECIMAL_PLACES)

# Plain ASCII decimal notation only: no exponent, no "_", no sign but a leading "-", no surrounding
# whitespace, no "NaN"/"Infinity", no digits of other scripts (``Decimal`` takes "١٢" and "1_0").
_PLAIN_DECIMAL = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?", re.ASCII)
_MAX_INPUT_CHARS = 64


class DecimalInputError(ValueError, InvalidOperation):
    """A typed number was refused; ``reason`` is stable (clients and tests switch on it). Also an
    ``InvalidOperation``, so code that caught ``Decimal(raw)``'s refusal catches this one."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def decimal_from_text(
    text: object, shape: DecimalShape, *, signed: bool = False, allow_zero: bool = False
) -> Decimal:
    """Parse a number someone typed: a string in plain decimal notation within ``shape``. ``signed``
    allows a leading "-" (never on zero: "-0" is refused); ``allow_zero`` allows 0."""
    if not isinstance(text, str):
        raise DecimalInputError("not_a_string", 'must be a decimal string such as "12.5"')
    match = _PLAIN_DECIMAL.fullmatch(text) if len(text) <= _MAX_INPUT_CHARS else None
    if match is None:
        raise DecimalInputError(
            "format", 'must be a plain decimal number (digits 0-9, one optional ".", no exponent)'
        )
    sign, integer, fraction = match.group(1), match.group(2).lstrip("0"), (match.group(3) or "").rstrip("0")
    if sign and not signed:
        raise DecimalInputError("negative", "must not be negative")
    if len(integer) > shape.integer_digits:
        raise DecimalInputError(
            "too_many_digits", f"must be below 10^{shape.integer_digits} ({shape.integer_digits} digits)"
        )
    if len(fraction) > shape.decimal_places:
        raise DecimalInputError("too_many_decimals", f"at most {shape.decimal_places} decimal places")
    value = Decimal(text)  # plain ASCII notation: Decimal reads it exactly as written
    if value == ZERO and (sign or not allow_zero):
        raise DecimalInputError("zero", "must not be zero" if not sign else '"-0" is not a number')
    return value


def decimal_from_input(
    value: object, shape: DecimalShape, *, signed: bool = False, allow_zero: bool = False
) -> Decimal:
    """``decimal_from_text`` for a string; a ``Decimal`` or ``int`` from our own code is held to the same
    shape and sign rules. Floats are refused (money is never a float)."""
    if isinstance(value, str):
        return decimal_from_text(value, shape, signed=signed, allow_zero=allow_zero)
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise DecimalInputError("not_a_string", 'must be a decimal string such as "12.5"')
    number = Decimal(value)
    if not number.is_finite():
        raise DecimalInputError("format", "must be a finite number")
    return decimal_from_text(format(number, "f"), shape, signed=signed, allow_zero=allow_zero)
