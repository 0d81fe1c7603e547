"""Markouts of fills against Hyperliquid's mid history and the per-client metrics built on them: taken
in from the outbox stream exactly once, each horizon computed when it has passed, missing history
given up after the grace, and a rebuild from the fills equal to the incremental figures."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import F

from core.events.services import outbox_relay_batch
from risk.client_risk.markouts import markouts_consume, markouts_drain, markouts_process_due
from risk.client_risk.midhistory import mid_record_many
from risk.client_risk.models import ClientMetrics, FillMarkout
from trading.models import Fill, Position
from trading.orders.input import order_input
from trading.orders.place import order_place

D = Decimal
pytestmark = pytest.mark.usefixtures("btc_mmr_0_004")
AGO = 1000.0  # the fills are moved this far into the past, so every horizon has passed


def _backdate(user: Any) -> float:
    Fill.objects.filter(user=user).update(created_at=F("created_at") - timedelta(seconds=AGO))
    return Fill.objects.filter(user=user).order_by("id").first().created_at.timestamp()


def _history(t0: float, points: list[tuple[float, str]]) -> None:
    mid_record_many({"BTC": [(t0 + dt, D(px)) for dt, px in points]})


def test_markouts_from_the_stream_at_each_horizon_in_bp_and_usdc(
    make_trader: Any, fund: Any, open_position: Any
) -> None:
    client = make_trader()
    fund(client, "50000")
    open_position(client, size="0.1", entry="80000", leverage=10)
    t0 = _backdate(client)
    _history(
        t0, [(-0.5, "80000"), (0.9, "80040"), (9.5, "80080"), (59.0, "79960"), (299.0, "80000"), (600, "1")]
    )
    outbox_relay_batch()
    assert markouts_consume(consumer_name="test", block_ms=1) == 1
    assert markouts_consume(consumer_name="test", block_ms=1) == 0  # acknowledged: nothing again
    row = FillMarkout.objects.get(user_id=client.pk)
    assert (row.side, row.size, row.price, row.source) == (1, D("0.1"), D("80000"), "INTERNAL")

    # five seconds after the fill only the 1 s horizon is due; the next look is at 10 s
    assert markouts_process_due(now=t0 + 5) == 1
    row.refresh_from_db()
    assert row.mid_at_fill == D("80000")
    assert (row.mo_1_bp, row.mo_1_usdc) == (D("5.0000"), D("4"))
    assert row.mo_10_bp is None and abs(row.next_due_at.timestamp() - (t0 + 10)) < 0.01
    assert markouts_process_due(now=t0 + 5) == 0  # not due again before 10 s

    markouts_drain()
    row.refresh_from_db()
    assert (row.mo_10_bp, row.mo_10_usdc) == (D("10.0000"), D("8"))
    assert (row.mo_60_bp, row.mo_60_usdc) == (D("-5.0000"), D("-4"))
    assert (row.mo_300_bp, row.mo_300_usdc) == (D("0.0000"), D("0"))
    assert row.missing == 0 and row.next_due_at is None and row.done_at is not None

    # a rebuild recomputes them from the mid history still kept: the same figures
    FillMarkout.objects.filter(pk=row.pk).update(mo_10_bp=D("99"))
    call_command("markouts_rebuild", "--days", "1", "--recompute")
    again = FillMarkout.objects.get(pk=row.pk)
    assert [again.mo_1_bp, again.mo_10_bp, again.mo_60_bp, again.mo_300_bp] == [D(5), D(10), D(-5), D(0)]


def test_a_horizon_without_history_waits_then_is_given_up(
    make_trader: Any, fund: Any, open_position: Any
) -> None:
    client = make_trader()
    fund(client, "50000")
    open_position(client, side="SELL", size="0.2", entry="50000", leverage=10)
    t0 = _backdate(client)
    # history up to 12 s after the fill, then the sampler stopped
    _history(t0, [(-0.2, "50000"), (0.5, "49990"), (9.0, "49900"), (12.0, "49900")])
    call_command("markouts_rebuild", "--days", "1")
    row = FillMarkout.objects.get(user_id=client.pk)
    # the client sold at 50,000: the mid falling 10 is 2 bp in their favour, 2 USDC on 0.2
    assert (row.mo_1_bp, row.mo_1_usdc) == (D("2.0000"), D("2"))
    assert row.mo_10_bp == D("20.0000")
    # 60 s and 300 s: the last sample is 48 s older than the horizon — given up, not guessed
    assert row.mo_60_bp is None and row.mo_300_bp is None
    assert row.missing == 0b1100 and row.next_due_at is None


def test_client_metrics_incremental_equal_a_rebuild(
    make_trader: Any, fund: Any, open_position: Any, set_quote: Any
) -> None:
    client = make_trader()
    fund(client, "50000")
    open_position(client, size="0.1", entry="80000", leverage=10)
    set_quote("BTC", "80100", bid="80100", ask="80101")
    order_place(  # closes the long: +10 realized
        user=client,
        inp=order_input(
            asset="BTC",
            side="SELL",
            order_type="MARKET",
            size="0.1",
            leverage=10,
            reduce_only=True,
            margin_mode="ISOLATED",
        ),
    )
    fills = list(Fill.objects.filter(user=client).order_by("id"))
    assert fills[1].realized_pnl == D("10")
    Fill.objects.filter(pk=fills[0].pk).update(created_at=F("created_at") - timedelta(seconds=AGO + 120))
    Fill.objects.filter(pk=fills[1].pk).update(created_at=F("created_at") - timedelta(seconds=AGO))
    Position.objects.filter(user=client).update(opened_at=F("opened_at") - timedelta(seconds=AGO + 120))
    t_buy = Fill.objects.get(pk=fills[0].pk).created_at.timestamp()
    t_sell = Fill.objects.get(pk=fills[1].pk).created_at.timestamp()
    # the buy: +8 bp at 1 s (a stale-quote fill at the default 5 bp), +8 bp at 60 s
    _history(t_buy, [(-0.1, "80000"), (0.5, "80064"), (59.5, "80064"), (299, "80064")])
    # the sell at 80,100: −32 / 80,100 = −3.995 bp at 1 s (the mid rose to 80,132) and at 60 s
    _history(t_sell, [(-0.1, "80100"), (0.5, "80132"), (59.5, "80132"), (299, "80132")])
    outbox_relay_batch()
    markouts_consume(consumer_name="test", block_ms=1)
    markouts_drain()
    m = ClientMetrics.objects.get(user_id=client.pk)
    assert (m.fills, m.measured, m.stale_fills) == (2, 2, 1)
    assert m.mo_60_bp == D("2.0025") and m.mo_1_bp == D("2.0025")  # (8 − 3.995) / 2
    assert m.win_rate == D("0.5000") and m.realized_pnl == D("10")
    assert m.mo_60_usdc == D("6.4") - D("3.2")
    assert m.avg_holding_seconds is not None and 119 < m.avg_holding_seconds < 121
    assert m.size_buckets["1k-10k"] == 2 and m.size_buckets["<100"] == 0
    incremental = {f: getattr(m, f) for f in ("fills", "mo_1_bp", "mo_60_bp", "win_rate", "stale_fills")}

    FillMarkout.objects.all().delete()
    ClientMetrics.objects.all().delete()
    call_command("markouts_rebuild", "--days", "1")
    rebuilt = ClientMetrics.objects.get(user_id=client.pk)
    assert {f: getattr(rebuilt, f) for f in incremental} == incremental
