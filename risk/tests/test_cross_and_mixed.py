"""Cross liquidation order, mixed isolated + cross, INTERNAL before HYPERLIQUID, escalation."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from core.alerts.models import Alert
from risk.detection import liquidation_sweep
from risk.liquidation_execute import liquidations_drain
from risk.models import CircuitBreaker, LiquidationRecord, LiquidationTrigger
from routing.models import RoutingConfig, RoutingState
from trading.models import Position
from trading.orders.hyperliquid import available as hl_available

D = Decimal
pytestmark = pytest.mark.usefixtures("btc_mmr_0_004")


def test_cross_closes_the_most_losing_position_first_and_stops_once_healthy(
    make_trader: Any, fund: Any, open_position: Any, balance: Any, set_quote: Any
) -> None:
    user = make_trader()
    fund(user, "2130")
    btc = open_position(user, size="0.1", entry="80000", leverage=10, margin_mode="CROSS")
    eth = open_position(
        user, asset="ETH", side="SELL", size="1", entry="3000", leverage=10, margin_mode="CROSS"
    )
    cash = balance("cash", user)
    # cash 2,125.05 after fees; BTC −2,000 (most losing), ETH −50: equity 75.05 ≤ MM 24 + 61 → BTC
    # closes; then equity 75.05 > ETH's MM 61 (mmr 2 %): ETH survives
    marks = {"BTC": D("60000"), "ETH": D("3050")}
    report = liquidation_sweep(marks=marks, wake=False)
    assert report["created"] == 1
    trigger = LiquidationTrigger.objects.get()
    assert trigger.kind == "CROSS" and trigger.plan[0] == btc.pk
    liquidations_drain()
    trigger.refresh_from_db()
    btc.refresh_from_db()
    eth.refresh_from_db()
    assert trigger.status == "COMPLETED"
    assert btc.status == "LIQUIDATED" and eth.status == "OPEN"
    record = LiquidationRecord.objects.get()
    assert record.position_id == btc.pk and record.loss == D("2000") and record.margin_zeroed == 0
    assert (record.platform_share, record.reserve_share) == (D("1600"), D("400"))
    # the liquidation fee rule: a taker close, fee 0.1 × 60,000 × 0.045 % = 2.7 from cash (cross)
    assert record.fee == D("2.7") and balance("cash", user) == cash - D("2000") - D("2.7") >= 0


def test_an_isolated_liquidation_never_touches_cross_collateral(
    make_trader: Any, fund: Any, open_position: Any, balance: Any
) -> None:
    user = make_trader()
    fund(user, "5000")
    iso = open_position(user, size="0.1", entry="80000", leverage=10)
    cross = open_position(user, asset="ETH", size="1", entry="3000", leverage=5, margin_mode="CROSS")
    cash = balance("cash", user)
    liquidation_sweep(marks={"BTC": D("72000"), "ETH": D("3000")}, wake=False)
    liquidations_drain()
    iso.refresh_from_db()
    cross.refresh_from_db()
    assert iso.status == "LIQUIDATED" and cross.status == "OPEN"
    assert balance("cash", user) == cash


def test_a_bankrupt_cross_account_stops_at_zero_and_the_reserve_pays_the_rest(
    make_trader: Any, fund: Any, open_position: Any, balance: Any
) -> None:
    user = make_trader()
    fund(user, "1000")
    position = open_position(user, size="0.1", entry="80000", leverage=10, margin_mode="CROSS")
    cash = balance("cash", user)
    liquidation_sweep(marks={"BTC": D("60000")}, wake=False)  # loss 2,000 > cash
    liquidations_drain()
    position.refresh_from_db()
    trigger = LiquidationTrigger.objects.get()
    assert position.status == "LIQUIDATED" and balance("cash", user) == 0
    assert trigger.loss == cash and trigger.bankrupt_amount == D("2000") - cash


@pytest.mark.skipif(hl_available(), reason="HL execution is available: see the HL liquidation tests")
def test_an_hl_liquidation_that_cannot_reach_hl_retries_then_escalates_with_p0_and_hl_mode(
    trader: Any, open_position: Any
) -> None:
    position = open_position(trader, size="0.1", entry="80000", leverage=10)
    Position.objects.filter(pk=position.pk).update(source="HYPERLIQUID")  # as if HL held it
    from risk.config import risk_config_update

    risk_config_update(changes={"liquidation_retry_delay_ms": 0}, acting_user=None, reason="tests")
    liquidation_sweep(marks={"BTC": D("72000")}, wake=False)
    trigger = LiquidationTrigger.objects.get()
    assert trigger.venue == "HYPERLIQUID" and trigger.priority > 0
    for _ in range(5):
        liquidations_drain()
    trigger.refresh_from_db()
    assert trigger.status == "ESCALATED" and trigger.attempts == 4 and len(trigger.errors) == 4
    assert "VENUE_ERROR" in trigger.errors[-1]["error"] or "not available" in trigger.errors[-1]["error"]
    alert = Alert.objects.get(rule="risk.liquidation_escalated")
    assert alert.severity == "P0"
    assert RoutingConfig.objects.get(asset="BTC").routing_mode == "HL_MODE"
    breaker = CircuitBreaker.objects.get(kind="LIQUIDATION_FAILURE", scope="BTC")
    assert breaker.state == "TRIPPED"
    assert "liquidation_failure" in RoutingState.objects.get(asset="BTC").force_hl_reasons


def test_internal_triggers_run_before_hyperliquid_ones(
    make_trader: Any, fund: Any, open_position: Any
) -> None:
    a, b = make_trader(), make_trader()
    fund(a, "5000")
    fund(b, "5000")
    hl_position = open_position(a, size="0.1", entry="80000", leverage=10)
    Position.objects.filter(pk=hl_position.pk).update(source="HYPERLIQUID")
    internal = open_position(b, size="0.1", entry="80000", leverage=10)
    liquidation_sweep(marks={"BTC": D("72000")}, wake=False)
    from risk.liquidation_triggers import liquidation_claim

    first = liquidation_claim()
    assert first is not None and first.startswith(f"liq:iso:{internal.pk}:")
