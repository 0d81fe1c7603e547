"""A HYPERLIQUID position liquidated end to end: risk detects it at its trigger mark, the close goes
through the platform's trading account on the sandbox at HL's prices (real SDK), the margin is zeroed and
HL's actual P&L vs XBIT's becomes a drift record."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from trading import margin
from trading.models import Position
from trading.orders.input import order_input
from trading.orders.place import order_place
from trading.tests.hl_venue import Venue, hl_position, sandbox_url, venue  # noqa: F401 - fixtures
from wallets.ledger import AccountRef, account_balance
from wallets.models import AccountKind

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
D = Decimal


def test_a_hyperliquid_position_is_liquidated_on_hl_with_drift_recorded(venue: Venue, trader: Any) -> None:  # noqa: F811
    """Risk detects a crossed isolated HL position at its trigger mark; the close goes through the trading
    account at HL's prices; the whole margin is zeroed; HL's actual P&L vs XBIT's (at the trigger mark)
    becomes a drift record."""
    from risk.detection import liquidation_sweep
    from risk.liquidation_execute import liquidations_drain
    from risk.models import DeviationLog, LiquidationRecord, LiquidationTrigger

    _bid, _ask, mid = venue.refresh_quote("BTC")
    before = hl_position("BTC")
    order_place(
        user=trader,
        inp=order_input(
            asset="BTC",
            side="BUY",
            order_type="MARKET",
            size=str(margin.floor_size(D(20_000) / mid, 5)),
            leverage=20,
            margin_mode="ISOLATED",
        ),
    )
    position = Position.objects.get(user=trader, source="HYPERLIQUID", status="OPEN")
    assert position.liquidation_price is not None
    crossed = position.liquidation_price * D("0.999")
    venue.refresh_quote("BTC")  # HL's own book is unchanged: the close fills near the old price
    liquidation_sweep(marks={"BTC": crossed}, wake=False)
    trigger = LiquidationTrigger.objects.get(position_id=position.pk)
    liquidations_drain(budget_s=20)
    trigger.refresh_from_db()
    position.refresh_from_db()
    assert trigger.status == "COMPLETED", (
        trigger.status,
        trigger.errors if hasattr(trigger, "errors") else "",
    )
    assert position.status == "LIQUIDATED" and position.size == 0
    assert hl_position("BTC") == before  # the trading account is flat again for this user's share
    record = LiquidationRecord.objects.get(position=position)
    assert record.venue == "HYPERLIQUID" and record.margin_zeroed > 0 and record.hl_pnl is not None
    assert record.drift_amount == record.hl_pnl - record.xbit_pnl
    assert (
        account_balance(
            AccountRef.user(trader.pk, AccountKind.ISOLATED_MARGIN, sub=f"position:{position.pk}")
        )
        == 0
    )
    if abs(record.drift_amount) > 10:
        assert DeviationLog.objects.filter(asset="BTC").exists()
