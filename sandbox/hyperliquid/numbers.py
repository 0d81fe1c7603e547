"""Decimal helpers: HL's tick/lot rules and HL-style number strings."""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation

ZERO = Decimal(0)
ONE = Decimal(1)
MICRO = Decimal("0.000001")
PERP_MAX_DECIMALS = 6
_POW10 = {n: Decimal(1).scaleb(-n) for n in range(-12, 20)}


def D(value: object) -> Decimal:
    """Decimal from str/int/Decimal (floats go through repr so 0.1 stays 0.1)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


def parse_decimal(value: object) -> Decimal | None:
    try:
        d = D(value)
    except (InvalidOperation, ValueError, TypeError):
        return None
    if not d.is_finite():
        return None
    return d


def fs(value: Decimal | int | None) -> str:
    """HL-style number string: plain notation, trailing zeros stripped, integers as ``"12.0"``."""
    if value is None:
        return "0.0"
    d = D(value)
    if d == 0:
        return "0.0"
    s = format(d.normalize(), "f")
    if "." not in s:
        s += ".0"
    return s


def fs_px(value: Decimal) -> str:
    """Price/size string as HL prints them in books and fills (no forced ``.0``)."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def usd(value: Decimal) -> Decimal:
    """Round a USDC amount to 6 decimals (HL's USDC precision)."""
    return value.quantize(MICRO, rounding=ROUND_HALF_UP)


def fs_usd(value: Decimal) -> str:
    return fs(usd(value))


def fs_q(value: Decimal, places: int = 8) -> str:
    return fs(value.quantize(_POW10[places], rounding=ROUND_HALF_UP))


def sig_decimals(px: float, sz_decimals: int) -> int:
    """Number of decimals a valid price near ``px`` may have (5 significant figures, 6 - szDecimals max)."""
    max_dec = PERP_MAX_DECIMALS - sz_decimals
    if px <= 0:
        return max_dec
    exponent = math.floor(math.log10(px))
    return max(0, min(max_dec, 4 - exponent))


def round_px(px: float | Decimal, sz_decimals: int, mode: str = "nearest") -> Decimal:
    """Round to a valid HL perp price: ``mode`` is "nearest", "up" or "down"."""
    fpx = float(px)
    dec = sig_decimals(fpx, sz_decimals)
    rounding = {"nearest": ROUND_HALF_UP, "up": ROUND_CEILING, "down": ROUND_FLOOR}[mode]
    d = D(px) if isinstance(px, Decimal) else Decimal(repr(fpx))
    out = d.quantize(_POW10[dec], rounding=rounding)
    # rounding up can add a significant figure (9999.95 -> 10000.0): re-quantize at the new magnitude
    dec2 = sig_decimals(float(out), sz_decimals)
    if dec2 < dec:
        out = out.quantize(_POW10[dec2], rounding=rounding)
    return out


def tick_for(px: Decimal, sz_decimals: int) -> Decimal:
    return _POW10[sig_decimals(float(px), sz_decimals)]


def valid_px(px: Decimal, sz_decimals: int) -> bool:
    if px <= 0:
        return False
    exp = px.normalize().as_tuple().exponent
    assert isinstance(exp, int)
    decimals = max(0, -exp)
    if decimals > PERP_MAX_DECIMALS - sz_decimals:
        return False
    if decimals == 0:
        return True  # integer prices are always valid
    digits = px.normalize().as_tuple().digits
    return len(digits) <= 5


def valid_sz(sz: Decimal, sz_decimals: int) -> bool:
    if sz <= 0:
        return False
    exp = sz.normalize().as_tuple().exponent
    assert isinstance(exp, int)
    return -exp <= sz_decimals


def round_sz(sz: Decimal, sz_decimals: int) -> Decimal:
    return sz.quantize(_POW10[sz_decimals], rounding=ROUND_DOWN)


def pow10(n: int) -> Decimal:
    return _POW10[n]
