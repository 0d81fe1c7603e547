"""The marks risk decides on: the quote cache's last valid mark (also while HL is disconnected), or
the price a tripped price-jump breaker holds.

Liquidation is the exception to the held price: a held price is, by construction, away from where the
market trades (orders keep filling on HL at the new level), so it is never a price to liquidate at. An
asset whose price is held liquidates nobody until the breaker confirms the new level (N normal
updates), then detection runs at that level."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from risk.models import CircuitBreaker
from trading.marketdata import get_quotes


def held_prices() -> dict[str, Decimal]:
    """Assets whose price-jump breaker holds the last valid price (``risk.breakers.price_jump_event``
    stores it in the breaker row)."""
    out = {}
    for scope, details in CircuitBreaker.objects.filter(
        kind=CircuitBreaker.Kind.PRICE_JUMP, state=CircuitBreaker.State.TRIPPED
    ).values_list("scope", "details"):
        if details.get("held_price"):
            out[scope] = Decimal(details["held_price"])
    return out


def effective_marks(assets: Iterable[str]) -> dict[str, Decimal]:
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
    held = held_prices()
    return {asset: mark for asset, mark in effective_marks(assets).items() if asset not in held}
