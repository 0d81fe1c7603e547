"""The marks risk decides on: the quote cache's last valid mark (also while HL is disconnected), or
the price a tripped price-jump breaker holds."""

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
