"""Funding settlement (spec 04): longs pay shorts on a positive rate at size × oracle × rate, isolated
margin moves (and the liquidation price with it), cross moves cash, exactly once per (position, time)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from risk import funding as funding_module
from risk.funding import funding_run, funding_time_for
from risk.models import FundingRun, FundingSettlement
from trading.marketdata import quote_update
from trading.models import Position
from wallets.models import BalanceLog

D = Decimal
pytestmark = pytest.mark.usefixtures("btc_mmr_0_004")


def rate(asset: str, value: str, oracle: str) -> None:
    quote_update(asset, funding_rate=D(value), oracle=D(oracle))


def test_a_long_pays_and_its_isolated_margin_and_liquidation_price_move(
    trader: Any, open_position: Any, balance: Any
) -> None:
    position = open_position(trader, size="0.1", entry="80000", leverage=10)
    rate("BTC", "0.025", "80000")  # 0.1 × 80,000 × 2.5 % = 200: spec 03's funding example
    run = funding_run(funding_time=timezone.now())
    assert run.status == "COMPLETED" and run.rates["BTC"] == {"rate": "0.025", "price": "80000"}
    position.refresh_from_db()
    assert position.isolated_margin == D("600")
    assert f"{position.liquidation_price:.2f}" == "74297.19"  # (80,000 − 6,000) / 0.996
    assert position.cum_funding_all_time == D("-200") and position.cum_funding_since_open == D("-200")
    assert balance("isolated_margin", trader, sub=f"position:{position.pk}") == D("600")
    assert balance("bbook_pnl") == D("200")
    row = FundingSettlement.objects.get(position=position)
    assert (row.rate, row.price, row.payment, row.collected, row.size) == (
        D("0.025"),
        D("80000"),
        D("-200"),
        D("-200"),
        D("0.1"),
    )
    assert BalanceLog.objects.filter(user=trader, type="funding").count() == 1


def test_a_cross_short_receives_into_cash(
    make_trader: Any, fund: Any, open_position: Any, balance: Any
) -> None:
    user = make_trader()
    fund(user, "10000")
    open_position(user, side="SELL", size="0.1", entry="80000", leverage=10, margin_mode="CROSS")
    cash = balance("cash", user)
    rate("BTC", "0.0001", "81000")  # 0.1 × 81,000 × 0.01 % = 0.81 on the ORACLE price
    funding_run(funding_time=timezone.now())
    assert balance("cash", user) == cash + D("0.81") and balance("bbook_pnl") == D("-0.81")


def test_a_negative_rate_pays_longs(trader: Any, open_position: Any, balance: Any) -> None:
    position = open_position(trader, size="0.1", entry="80000", leverage=10)
    rate("BTC", "-0.0002", "80000")
    funding_run(funding_time=timezone.now())
    position.refresh_from_db()
    assert position.isolated_margin == D("801.6") and balance("bbook_pnl") == D("-1.6")


def test_a_position_opened_after_the_funding_instant_pays_nothing_and_one_open_before_pays_in_full(
    trader: Any, make_trader: Any, fund: Any, open_position: Any
) -> None:
    early = open_position(trader, size="0.1", entry="80000", leverage=10)
    instant = timezone.now()
    late_user = make_trader()
    fund(late_user, "10000")
    late = open_position(late_user, size="0.1", entry="80000", leverage=10)
    rate("BTC", "0.0001", "80000")
    funding_run(funding_time=instant)
    assert FundingSettlement.objects.filter(position=early, payment=D("-0.8")).exists()
    assert not FundingSettlement.objects.filter(position=late).exists()


def test_running_twice_pays_once(trader: Any, open_position: Any, balance: Any) -> None:
    position = open_position(trader, size="0.1", entry="80000", leverage=10)
    rate("BTC", "0.0001", "80000")
    instant = timezone.now()
    funding_run(funding_time=instant)
    FundingRun.objects.filter(funding_time=instant).update(status="RUNNING")  # as if it never finished
    funding_run(funding_time=instant)
    position.refresh_from_db()
    assert position.isolated_margin == D("799.2") and FundingSettlement.objects.count() == 1
    assert balance("bbook_pnl") == D("0.8")


def test_a_crash_half_way_then_a_rerun_pays_every_position_exactly_once(
    make_trader: Any, fund: Any, open_position: Any, balance: Any, monkeypatch: Any
) -> None:
    users = []
    for _ in range(4):
        user = make_trader()
        fund(user, "10000")
        open_position(user, size="0.1", entry="80000", leverage=10)
        users.append(user)
    rate("BTC", "0.0001", "80000")
    instant = timezone.now()
    chunks = {"n": 0}

    def crash_on_third_chunk() -> None:
        chunks["n"] += 1
        if chunks["n"] == 3:
            raise RuntimeError("worker killed")

    monkeypatch.setattr(funding_module, "_test_crash_hook", crash_on_third_chunk)
    with pytest.raises(RuntimeError):
        funding_run(funding_time=instant, chunk=1)
    assert FundingSettlement.objects.count() == 2  # the third chunk rolled back whole
    monkeypatch.setattr(funding_module, "_test_crash_hook", lambda: None)
    run = funding_run(funding_time=instant, chunk=1)
    assert run.status == "COMPLETED" and FundingSettlement.objects.count() == 4
    assert balance("bbook_pnl") == D("3.2")
    for user in users:
        position = Position.objects.get(user=user)
        assert position.isolated_margin == D("799.2")


def test_funding_instants_are_on_the_hour() -> None:
    from datetime import UTC, datetime

    assert funding_time_for(datetime(2026, 1, 1, 13, 59, 59, tzinfo=UTC), 3600) == datetime(
        2026, 1, 1, 13, tzinfo=UTC
    )
    assert funding_time_for(datetime(2026, 1, 1, 14, 0, 0, tzinfo=UTC), 8 * 3600) == datetime(
        2026, 1, 1, 8, tzinfo=UTC
    )


def test_positions_settle_on_what_they_held_at_the_instant_even_when_closed_since(
    trader: Any, make_trader: Any, fund: Any, open_position: Any, balance: Any, set_quote: Any
) -> None:
    """The run comes after HL's instant (issue 18): a partial close since pays on the size held at the
    instant, and a position closed since still pays — from cash, its margin having gone back there."""
    from trading.positions import position_close

    reduced = open_position(trader, size="0.1", entry="80000", leverage=10)
    other = make_trader()
    fund(other, "10000")
    closed = open_position(other, size="0.1", entry="80000", leverage=10)
    instant = timezone.now()
    set_quote("BTC", "80000", bid="80000", ask="80001")
    position_close(user=trader, position_id=reduced.pk, size="0.075")
    position_close(user=other, position_id=closed.pk)
    cash = balance("cash", other)
    rate("BTC", "0.0001", "80000")
    funding_run(funding_time=instant)
    by_position = {r.position_id: r for r in FundingSettlement.objects.all()}
    assert (by_position[reduced.pk].size, by_position[reduced.pk].payment) == (D("0.1"), D("-0.8"))
    assert (by_position[closed.pk].size, by_position[closed.pk].collected) == (D("0.1"), D("-0.8"))
    assert balance("cash", other) == cash - D("0.8")
    reduced.refresh_from_db()
    assert reduced.size == D("0.025") and reduced.isolated_margin == D("200") - D("0.8")
