"""Figures as a desk reads them: prices to the asset's tick, thousands separators."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from trading.selectors import MARKETS_CACHE

PERP_MAX_PRICE_DECIMALS = 6  # HL perps: a price has at most 6 − szDecimals decimals
SIGNIFICANT = 5  # and at most 5 significant figures (integers are always valid)


def _sz_decimals(asset: str) -> int | None:
    try:
        market = MARKETS_CACHE.get().by_asset.get(asset)
    except Exception:  # no markets table yet: plain formatting
        return None
    return market.sz_decimals if market is not None else None


def price_places(asset: str, value: Decimal) -> int | None:
    """Decimals of the asset's price tick at ``value`` (None when the asset is unknown)."""
    sz = _sz_decimals(asset)
    if sz is None or value == 0:
        return None
    return max(0, min(PERP_MAX_PRICE_DECIMALS - sz, SIGNIFICANT - 1 - value.adjusted()))


def price_text(asset: str, value: Any) -> str:
    if value is None or value == "":
        return "—"
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    places = price_places(asset, abs(number))
    if places is None:
        text = f"{number.normalize():,f}"
        return text
    return f"{number:,.{places}f}"
