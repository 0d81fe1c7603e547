"""HYPERLIQUID positions against the sandbox through the real SDK: internal and HL positions of one
user side by side, position sync with HL as the source of truth, the user stream's live and recovered
fills, dust closes, trade details reconciled, and slippage refusals."""

from __future__ import annotations

import random
import time
from decimal import Decimal
from typing import Any

import pytest

from core.errors import ApplicationError
from trading import margin
from trading.hl_accounts import positions_sync
from trading.models import Fill, HLPositionSync, Order, Position
from trading.orders.input import order_input
from trading.orders.place import order_place
from trading.positions import position_close
from trading.tests.hl_venue import Venue, hl_position, hl_trades, holds
from trading.venues.hl import gateway

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
D = Decimal


def test_internal_and_hl_positions_of_one_user_coexist(venue: Venue, trader: Any) -> None:
    _bid, _ask, mid = venue.refresh_quote("BTC")
    order_place(
        user=trader,
        inp=order_input(
            asset="BTC",
            side="BUY",
            order_type="MARKET",
            size=str(margin.floor_size(D(5_000) / mid, 5)),
            leverage=10,
        ),
    )
    venue.refresh_quote("BTC")
    order_place(
        user=trader,
        inp=order_input(
            asset="BTC",
            side="SELL",
            order_type="MARKET",
            size=str(margin.floor_size(D(20_000) / mid, 5)),
            leverage=10,
        ),
    )
    sources = dict(Position.objects.filter(user=trader, status="OPEN").values_list("source", "direction"))
    assert sources == {"INTERNAL": "LONG", "HYPERLIQUID": "SHORT"}


def test_many_users_hl_positions_sum_to_the_trading_accounts_positions(
    venue: Venue, make_trader: Any, fund: Any
) -> None:
    rng = random.Random(5)
    start = {a: hl_position(a) for a in ("BTC", "ETH")}
    users = []
    for _ in range(6):
        u = make_trader()
        fund(u, "200000")
        users.append(u)
    for _ in range(18):
        asset = rng.choice(["BTC", "ETH"])
        _bid, _ask, mid = venue.refresh_quote(asset)
        user = rng.choice(users)
        open_hl = Position.objects.filter(user=user, source="HYPERLIQUID", asset=asset, status="OPEN").first()
        if open_hl is not None and rng.random() < 0.3:
            position_close(user=user, position_id=open_hl.pk)
            continue
        notional = D(rng.choice([11_000, 14_000, 25_000]))
        size = margin.floor_size(notional / mid, 5 if asset == "BTC" else 4)
        order_place(
            user=user,
            inp=order_input(
                asset=asset,
                side=rng.choice(["BUY", "SELL"]),
                order_type="MARKET",
                size=str(size),
                leverage=10,
            ),
        )
    time.sleep(2.1)  # orders updated in the last 2 s count as in flight and are not compared yet
    rows = positions_sync()
    by_asset = {r.asset: r for r in rows}
    for asset in ("BTC", "ETH"):
        row = by_asset[asset]
        assert row.actual - start[asset] == row.expected, (asset, row)
    # the account started flat in this sandbox session only if no earlier test left positions; compare deltas
    assert HLPositionSync.objects.exists()


def test_an_order_in_flight_is_never_mistaken_for_a_mismatch(venue: Venue, trader: Any) -> None:
    """HL filled it, we have not applied it yet: the sync must not halt HL routing for that."""
    from routing.selectors import asset_routing

    _bid, _ask, mid = venue.refresh_quote("ETH")
    size = margin.floor_size(D(12_000) / mid, 4)
    order = order_place(
        user=trader, inp=order_input(asset="ETH", side="BUY", order_type="MARKET", size=str(size), leverage=5)
    )
    # simulate the window between HL's fill and our booking: the position is on HL, not yet in our book
    Position.objects.filter(pk=order.position_id).update(size=D("0.0001"))
    Order.objects.filter(pk=order.pk).update(status="ACCEPTED")
    rows = {r.asset: r for r in positions_sync()}
    assert "ETH" not in rows and not asset_routing("ETH").hl_halted
    Order.objects.filter(pk=order.pk).update(status="FILLED")
    Position.objects.filter(pk=order.position_id).update(size=size)


def test_a_resting_orders_fill_booked_just_after_hl_shows_it_raises_nothing(
    venue: Venue, trader: Any
) -> None:
    """The 60-minute soak's false alarm: a resting order filled on HL at 07:28:51.47; the sync read HL's
    position with it and our book without it (the user stream booked it milliseconds later): a P1
    position mismatch and a P0 hl_trading reconciliation for a fill in flight."""
    import threading
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from core.alerts.models import Alert

    _bid, _ask, mid = venue.refresh_quote("ETH")
    size = margin.floor_size(D(12_000) / mid, 4)
    order = order_place(
        user=trader, inp=order_input(asset="ETH", side="BUY", order_type="MARKET", size=str(size), leverage=5)
    )
    # HL's account holds exactly our book (earlier tests' positions stay on the shared sandbox) ...
    gw = gateway("trading")
    assert gw is not None
    venue.control(
        "position",
        {"address": gw.credentials.master, "coin": "ETH", "szi": str(size), "entryPx": str(mid)},
    )
    # ... then: a filled order from a while ago (not in flight), our book one fill behind HL's position
    Order.objects.filter(pk=order.pk).update(updated_at=timezone.now() - timedelta(minutes=5))
    Position.objects.filter(pk=order.position_id).update(size=size / 2)

    def booking_lands() -> None:  # the user stream books the fill, 0.2 s after the sync's first reading
        time.sleep(0.2)
        Position.objects.filter(pk=order.position_id).update(size=size)
        connection.close()

    booking = threading.Thread(target=booking_lands)
    booking.start()
    rows = {r.asset: r for r in positions_sync()}
    booking.join()
    assert rows["ETH"].status == "OK", rows["ETH"]
    assert not Alert.objects.filter(rule="hl.position_mismatch", subject="ETH").exists()


def test_a_position_changed_directly_on_hl_is_detected_and_halts_new_hl_opens(
    venue: Venue, trader: Any
) -> None:
    from routing.selectors import asset_routing

    rows = {r.asset: r for r in positions_sync()}
    gw = gateway("trading")
    assert gw is not None
    current = rows["BTC"].actual if "BTC" in rows else D(0)
    venue.control(
        "position",
        {"address": gw.credentials.master, "coin": "BTC", "szi": str(current + D("0.5")), "entryPx": "80000"},
    )
    HLPositionSync.objects.all().delete()  # start the confirmation count from this change
    rows = {r.asset: r for r in positions_sync()}
    assert rows["BTC"].status == "WARN" and not asset_routing("BTC").hl_halted  # first sighting: confirm
    rows = {r.asset: r for r in positions_sync()}
    assert rows["BTC"].status == "CRITICAL"  # it persisted: fail closed
    assert asset_routing("BTC").hl_halted
    from core.alerts.models import Alert

    assert Alert.objects.filter(rule="hl.position_mismatch", subject="BTC", severity="P0").exists()


def _rest_buy(trader: Any, venue: Venue, asset: str, notional: int) -> Order:
    bid, _ask, _mid = venue.refresh_quote(asset)
    limit = margin.round_price(bid * D("0.995"), 4)
    return order_place(
        user=trader,
        inp=order_input(
            asset=asset,
            side="BUY",
            order_type="LIMIT",
            size=str(margin.floor_size(D(notional) / limit, 4)),
            limit_price=str(limit),
            leverage=5,
        ),
    )


def _wait_filled(order: Order, seconds: float) -> Order:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        order.refresh_from_db()
        if order.status == "FILLED":
            return order
        time.sleep(0.1)
    return order


def test_the_user_stream_applies_resting_fills_live_and_recovers_missed_ones_after_a_drop(
    venue: Venue, trader: Any
) -> None:
    import threading

    from trading.hl_stream import UserStream

    stream = UserStream(backfill_every_s=3600, silence_s=3)
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    try:
        time.sleep(1.0)
        live = _rest_buy(trader, venue, "ETH", 12_000)
        venue.control("shock", {"coin": "ETH", "pct": -2})
        assert _wait_filled(live, 10).status == "FILLED"  # from the websocket, no backfill involved

        missed = _rest_buy(trader, venue, "ETH", 12_000)
        venue.control("ws/drop", {"reject_s": 2})
        venue.control("shock", {"coin": "ETH", "pct": -2})  # fills while we are disconnected
        assert _wait_filled(missed, 20).status == "FILLED"  # recovered by the backfill after reconnecting
    finally:
        stream.stop()
        thread.join(10)


def _open_hl(trader: Any, asset: str, side: str, notional: Decimal, venue: Venue) -> Position:
    from routing.services import routing_mode_switch

    routing_mode_switch(asset=asset, mode="HL_MODE", acting_user=None, reason="test", change_id=f"hl-{asset}")
    _bid, _ask, mid = venue.refresh_quote(asset)
    order_place(
        user=trader,
        inp=order_input(
            asset=asset,
            side=side,
            order_type="MARKET",
            size=str(margin.floor_size(notional / mid, 2)),
            leverage=5,
        ),
    )
    return Position.objects.get(user=trader, asset=asset, source="HYPERLIQUID", status="OPEN")


def test_a_position_worth_less_than_hls_minimum_closes_as_reduce_only_on_the_wire(
    venue: Venue, trader: Any
) -> None:
    position = _open_hl(trader, "SOL", "BUY", D(12), venue)
    venue.control("shock", {"coin": "SOL", "pct": -25})  # now worth ~9 USDC: below HL's 10 USDC minimum
    venue.refresh_quote("SOL")
    before = hl_position("SOL")
    order = position_close(user=trader, position_id=position.pk)
    assert order.status == "FILLED" and order.route == "HYPERLIQUID"
    position.refresh_from_db()
    assert position.status == "CLOSED"
    assert hl_position("SOL") == before - order.size


def test_a_dust_close_hl_cannot_take_is_refused_with_a_clear_400_and_nothing_traded(
    venue: Venue, trader: Any, make_trader: Any, fund: Any
) -> None:
    position = _open_hl(trader, "SOL", "BUY", D(12), venue)
    other = make_trader()
    fund(other, "10000")
    _open_hl(other, "SOL", "SELL", D(40), venue)  # the account is now net short SOL
    venue.control("shock", {"coin": "SOL", "pct": -25})
    venue.refresh_quote("SOL")
    before = hl_position("SOL")
    with pytest.raises(ApplicationError) as refused:
        position_close(user=trader, position_id=position.pk)
    assert refused.value.code == "MIN_NOTIONAL" and refused.value.http_status == 400
    assert "minimum" in refused.value.message
    position.refresh_from_db()
    assert position.status == "OPEN" and hl_position("SOL") == before and holds(trader) == 0


def test_trade_details_reconcile_when_part_of_the_order_was_booked_by_trade_id(
    venue: Venue, trader: Any
) -> None:
    """A resting order filled partly on the stream (rows with HL's trade id, fees booked with them) and
    the rest from HL's answer (one row without): the answer's row is explained by the other trades."""
    from trading.orders.hl_fills import fill_details_reconcile

    _bid, _ask, mid = venue.refresh_quote("SOL")
    order = order_place(
        user=trader,
        inp=order_input(
            asset="SOL",
            side="BUY",
            order_type="MARKET",
            size=str(margin.floor_size(D(40_000) / mid, 2)),
            leverage=10,
        ),
    )
    trades = hl_trades(order.hl_oid)
    assert len(trades) >= 2, "the order must cross more than one level"
    row = Fill.objects.get(order=order)
    # the first trade as the stream would have booked it: its own row, with its trade id and fee
    Fill.objects.filter(pk=row.pk).update(size=row.size - trades[0].size)
    row.pk, row.id, row.size, row.hl_tid, row.hl_fee = (
        None,
        None,
        trades[0].size,
        trades[0].tid,
        trades[0].fee,
    )
    row.save()
    assert fill_details_reconcile(order_id=order.pk, fills=trades) is True
    answered = Fill.objects.get(order=order, hl_tid__isnull=True)
    assert answered.hl_fee == sum((t.fee for t in trades[1:]), D(0))


def test_an_hl_order_finding_no_liquidity_within_its_limit_is_a_slippage_refusal_not_a_venue_error(
    venue: Venue, trader: Any
) -> None:
    """HL answers an IOC with nothing on its book within the limit price with an error; that is the
    market moving past the order's slippage (a 400 the client decides on), not a failure to retry."""
    _bid, _ask, mid = venue.refresh_quote("ETH")
    venue.control("shock", {"coin": "ETH", "pct": 15})  # HL moves; our quote has not seen it yet
    before = hl_position("ETH")
    with pytest.raises(ApplicationError) as refused:
        order_place(
            user=trader,
            inp=order_input(
                asset="ETH",
                side="BUY",
                order_type="MARKET",
                size=str(margin.floor_size(D(15_000) / mid, 4)),
                leverage=5,
            ),
        )
    assert refused.value.code == "SLIPPAGE_EXCEEDED" and refused.value.http_status == 400
    order = Order.objects.get(pk=refused.value.details["order_id"])
    assert order.status == "REJECTED" and order.filled_size == 0
    assert hl_position("ETH") == before and holds(trader) == 0
