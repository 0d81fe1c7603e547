"""Decimal quantities: one place defines every quantum.

USDC amounts carry 6 decimal places (the token's own precision); prices and sizes follow HL's rules
and are validated by ``trading.margin``. Conversions from HL's strings go straight to ``Decimal``;
a float never touches money.
"""

from __future__ import annotations

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
