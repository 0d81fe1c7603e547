"""Net exposure from the ledger's events (spec 05): set-not-add, idempotent, equal to a recompute from
PostgreSQL, with today's INTERNAL net loss and minute snapshots."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from core.events.models import OutboxEvent
from core.events.services import Event, handle_once
from risk.exposure import (
    daily_net_loss,
    exposure_compare,
    exposure_current,
    exposure_handle,
    exposure_recompute,
    exposure_snapshot_take,
)
from risk.models import ExposureAsset, ExposureSnapshot

D = Decimal
pytestmark = pytest.mark.usefixtures("btc_mmr_0_004")


def deliver(*, twice: bool = False) -> int:
    """What the relay + consumer do: every outbox event to the handler, once per event id."""
    handled = 0
    for row in OutboxEvent.objects.filter(topic__in=["trading.fill", "trading.liquidation"]).order_by("id"):
        event = Event(str(row.event_id), row.topic, row.aggregate, row.payload)
        for _ in range(2 if twice else 1):
            handled += handle_once(consumer="risk-exposure", event=event, handler=exposure_handle)
    return handled


def test_exposure_follows_fills_and_agrees_with_a_recompute(
    make_trader: Any, fund: Any, open_position: Any, set_quote: Any
) -> None:
    a, b = make_trader(), make_trader()
    fund(a, "50000")
    fund(b, "50000")
    open_position(a, size="0.1", entry="80000", leverage=10)
    open_position(b, side="SELL", size="0.05", entry="80000", leverage=10, margin_mode="CROSS")
    open_position(a, size="0.1", entry="82000", leverage=10)  # add-on: entry averages
    deliver(twice=True)  # at-least-once delivery: duplicates change nothing
    assert exposure_recompute() == {}
    set_quote("BTC", "81000")
    btc = exposure_current()["BTC"]
    assert btc.long_size == D("0.2") and btc.short_size == D("0.05")
    assert btc.net_notional == D("0.15") * D("81000")
    # users: long 0.2 @ 81,000 avg → 0; short 0.05 @ 80,000 → −50; the B-book holds the other side
    assert btc.bbook_upnl == -(
        D("0.2") * 81000 - (D("0.1") * 80000 + D("0.1") * 82000) + (D("0.05") * 80000 - D("0.05") * 81000)
    )


def test_averaged_entries_with_many_decimals_agree_with_a_recompute_to_the_last_digit(
    make_trader: Any, fund: Any, open_position: Any
) -> None:
    """Add-ons average the entry to 8 decimals, so size × entry has up to 16: the incremental totals keep
    them all, and the reconciliation's recompute finds no rounding difference to call a mismatch."""
    a, b = make_trader(), make_trader()
    fund(a, "50000")
    fund(b, "50000")
    for size, entry in (
        ("0.00137", "80124"),
        ("0.00291", "81235"),
        ("0.01003", "79877"),
        ("0.00019", "80003"),
    ):
        open_position(a, size=size, entry=entry, leverage=10)
        open_position(b, side="SELL", size=size, entry=entry, leverage=10, margin_mode="CROSS")
    deliver()
    btc = ExposureAsset.objects.get(asset="BTC")
    assert btc.long_cost != btc.long_cost.quantize(D("0.000001"))  # more digits than a USDC amount carries
    assert exposure_recompute() == {}


def test_the_reconciliation_check_waits_for_events_in_flight_and_finds_a_change_without_one(
    make_trader: Any, fund: Any, open_position: Any
) -> None:
    from trading.models import Position

    a = make_trader()
    fund(a, "50000")
    position = open_position(a, size="0.1", entry="80000", leverage=10)
    # the fill is committed, its event not yet consumed: not a mismatch, just not there yet
    assert exposure_compare() == {}
    deliver()
    assert exposure_compare() == {}
    Position.objects.filter(pk=position.pk).update(size=D("0.2"))  # a change no event announced
    diffs = exposure_compare()
    assert list(diffs) == ["BTC"] and f"position {position.pk}" in diffs["BTC"]


def test_liquidation_removes_the_position_and_counts_the_whole_margin_as_client_loss(
    trader: Any, open_position: Any
) -> None:
    from risk.detection import liquidation_sweep
    from risk.liquidation_execute import liquidations_drain

    open_position(trader, size="0.1", entry="80000", leverage=10)
    liquidation_sweep(marks={"BTC": D("72280")}, wake=False)
    liquidations_drain()
    deliver()
    assert exposure_recompute() == {}
    assert exposure_current(marks={"BTC": D("72280")})["BTC"].long_size == 0
    # the platform gained the 800 margin and the 3.6 opening fee today
    assert daily_net_loss() == D("-803.6")


def test_a_recompute_repairs_a_missed_event_and_snapshots_are_stored(
    trader: Any, open_position: Any, set_quote: Any
) -> None:
    open_position(trader, size="0.1", entry="80000", leverage=10)
    diffs = exposure_recompute()
    assert "BTC" in diffs  # nothing delivered yet
    exposure_recompute(apply=True)
    assert exposure_recompute() == {}
    deliver()  # the late events must not double count
    assert exposure_recompute() == {}
    set_quote("BTC", "80000")
    assert exposure_snapshot_take() >= 1
    snap = ExposureSnapshot.objects.get(asset="BTC")
    assert snap.long_notional == D("8000") and snap.net_notional == D("8000")
