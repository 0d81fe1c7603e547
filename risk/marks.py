"""The marks risk decides on: the quote cache's last valid mark (also while HL is disconnected), or
the price a tripped price-jump breaker holds.

Liquidation is the exception to the held price: a held price is, by construction, away from where the
market trades (orders keep filling on HL at the new level), so it is never a price to liquidate at. An
asset whose price is held liquidates nobody until the breaker confirms the new level (N normal
updates), then detection runs at that level."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from trading.marketdata import get_quotes


def effective_marks(assets: Iterable[str]) -> dict[str, Decimal]:
    from risk.breakers import held_prices

    names = sorted(set(assets))
    if not names:
        return {}
    quotes = get_quotes(names)
    held = held_prices()
    out: dict[str, Decimal] = {}
    for asset in names:
        if asset in held:
            out[asset] = held[asset]
            continue
        quote = quotes.get(asset)
        if quote is not None and quote.mark:
            out[asset] = quote.mark
    return out


def liquidation_marks(assets: Iterable[str]) -> dict[str, Decimal]:
    """The marks liquidation may act on: the effective marks without the assets whose price a tripped
    price-jump breaker holds (a position opened at the new level would look bankrupt at the held one)."""
    from risk.breakers import held_prices

    held = held_prices()
    return {asset: mark for asset, mark in effective_marks(assets).items() if asset not in held}
