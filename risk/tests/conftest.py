"""Risk fixtures: the trading fixtures (markets from the sandbox's meta, quotes, funded traders), an
asset with spec 03's single-tier mmr 0.004, and helpers to open positions through the order path."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from trading.tests.conftest import fund, hl_meta, internalization_on, markets, set_quote, trader  # noqa: F401

D = Decimal


@pytest.fixture
def btc_mmr_0_004(markets: None) -> None:  # noqa: F811
    """BTC on a single-tier table with max leverage 125 → mmr 1/(2·125) = 0.004 (spec 03's examples)."""
    from core.live_config import invalidate
    from trading.models import MarginTable, Market

    MarginTable.objects.update_or_create(
        table_id=125, defaults={"tiers": [{"lowerBound": "0.0", "maxLeverage": 125}], "description": "test"}
    )
    Market.objects.filter(asset="BTC").update(margin_table_id=125)
    invalidate("markets")


@pytest.fixture
def open_position(internalization_on: None, set_quote: Callable[..., None]) -> Callable[..., Any]:  # noqa: F811
    """Open an INTERNAL position through the real order path at exactly ``entry`` (ask = entry for a
    buy, bid = entry for a sell)."""
    from trading.models import Position
    from trading.orders.input import order_input
    from trading.orders.place import order_place

    def _open(
        user: Any,
        *,
        asset: str = "BTC",
        side: str = "BUY",
        size: str,
        entry: str,
        leverage: int,
        margin_mode: str = "ISOLATED",
    ) -> Any:
        e = D(entry)
        if side == "BUY":
            set_quote(asset, entry, bid=str(e - 1), ask=entry)
        else:
            set_quote(asset, entry, bid=entry, ask=str(e + 1))
        order = order_place(
            user=user,
            inp=order_input(
                asset=asset,
                side=side,
                order_type="MARKET",
                size=size,
                leverage=leverage,
                margin_mode=margin_mode,
            ),
        )
        assert order.status == "FILLED" and order.route == "INTERNAL", (order.status, order.error_message)
        return Position.objects.get(user=user, asset=asset, status="OPEN", margin_mode=margin_mode)

    return _open


@pytest.fixture
def balance() -> Callable[..., Decimal]:
    from wallets.ledger import AccountRef, account_balance

    def _balance(code: str, user: Any = None, sub: str = "") -> Decimal:
        if user is not None:
            return account_balance(AccountRef.user(user.pk, code, sub=sub))
        return account_balance(AccountRef.platform(code, sub=sub))

    return _balance
