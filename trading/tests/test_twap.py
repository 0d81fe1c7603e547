"""TWAP and split parent orders on the simulated Hyperliquid through the real SDK. The scheduler is driven
with an injected clock (a 2-minute TWAP runs in seconds); the children are real HL orders on the
simulator: spread over the window, the parent's average equal to the VWAP of HL's own fills, a cancel
that stops the rest, and crashes mid-TWAP that resume without a second child."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from trading.models import AlgoChild, AlgoOrder, Order, Position
from trading.orders import algo_scheduler, place
from trading.orders.algo_config import algo_config_update
from trading.orders.algo_scheduler import algo_tick
from trading.orders.hyperliquid import hl_orders_resolve
from trading.orders.twap import algo_order_cancel, algo_order_create
from trading.tests.hl_venue import Venue, hl_position, holds
from trading.venues.hl import HLFill, gateway

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
D = Decimal


@pytest.fixture
def algo_on(db: Any) -> None:
    algo_config_update(changes={"enabled": True}, acting_user=None, reason="tests: TWAP on")


@pytest.fixture
def whale(make_trader: Any, fund: Callable[[Any, str], None], algo_on: None) -> Any:
    """A verified trader (a 5 BTC order is above an unverified account's order cap) with 150k USDC."""
    user = make_trader(kyc_status="VERIFIED")
    fund(user, "150000")
    return user


def twap(user: Any, t0: datetime, **extra: Any) -> AlgoOrder:
    return algo_order_create(
        user=user,
        algo="TWAP",
        asset="BTC",
        side="BUY",
        size="5",
        duration_seconds=120,
        slices=12,
        leverage=10,
        margin_mode="ISOLATED",
        now=t0,
        **extra,
    )


def drive(venue: Venue, t0: datetime, seconds: range) -> dict[int, datetime]:
    """Scheduler passes at t0 + s for each s (the quote cache refreshed from HL's book as the feed
    would); returns when each child first appeared (slice → the pass's clock)."""
    seen: dict[int, datetime] = {}
    for s in seconds:
        venue.refresh_quote("BTC")
        now = t0 + timedelta(seconds=s)
        algo_tick(now=now)
        for n in AlgoChild.objects.filter(order__isnull=False).values_list("slice_index", flat=True):
            seen.setdefault(n, now)
    return seen


def hl_fills_since(start_ms: int) -> list[HLFill]:
    gw = gateway("trading")
    assert gw is not None
    return [f for f in gw.user_fills_by_time(start_ms) if f.coin == "BTC"]


def vwap(fills: list[HLFill]) -> Decimal:
    return sum((f.price * f.size for f in fills), D(0)) / sum((f.size for f in fills), D(0))


def fills_start() -> int:
    """From when HL's trades are this test's: a second back (clock margin), but after the last trade of
    the test before it (the sandbox is shared by the module)."""
    margin = int(time.time() * 1000) - 1000
    return max([margin] + [f.time_ms + 1 for f in hl_fills_since(margin)])


def assert_one_hl_order_per_child(parent: AlgoOrder, start_ms: int) -> list[Order]:
    """Every child slice has one order, each its own cloid and HL order, and HL traded nothing else."""
    orders = list(Order.objects.filter(algo_child__parent=parent).order_by("algo_child__slice_index"))
    assert Order.objects.filter(client_order_id__startswith=f"algo:{parent.pk}:").count() == len(orders)
    assert len({o.cloid for o in orders}) == len(orders) and all(o.route == "HYPERLIQUID" for o in orders)
    traded = {o.hl_oid for o in orders if o.filled_size}
    assert {f.oid for f in hl_fills_since(start_ms)} == traded
    return orders


def test_a_5_btc_twap_over_2_minutes_spreads_its_children_and_averages_hl_fills(
    venue: Venue, whale: Any
) -> None:
    start_ms = fills_start()
    before = hl_position("BTC")
    venue.refresh_quote("BTC")
    t0 = timezone.now()
    parent = twap(whale, t0)
    assert parent.status == "RUNNING" and parent.slices == 12 and parent.interval_ms == 10_000

    seen = drive(venue, t0, range(0, 131))

    parent.refresh_from_db()
    assert parent.status == "COMPLETED" and parent.filled_size == D(5) and parent.remaining_size == 0
    assert parent.children_sent == 12
    # slice n left at t0 + n × 10 s, not a pass earlier: the children spread over the 2 minutes
    assert seen == {n: t0 + timedelta(seconds=10 * n) for n in range(12)}
    children = list(AlgoChild.objects.filter(parent=parent).order_by("slice_index"))
    assert [c.scheduled_at for c in children] == [t0 + timedelta(seconds=10 * n) for n in range(12)]
    assert sum((c.size for c in children), D(0)) == D(5)
    assert max(c.size for c in children) - min(c.size for c in children) <= D("0.00001")
    orders = assert_one_hl_order_per_child(parent, start_ms)
    assert all(o.status == "FILLED" for o in orders)
    # the parent's average = the volume-weighted average of HL's own fills of its children
    hl_fills = hl_fills_since(start_ms)
    assert sum((f.size for f in hl_fills), D(0)) == D(5)
    assert parent.avg_price is not None and abs(parent.avg_price - vwap(hl_fills)) <= D("0.00000001")
    assert parent.fee_total == sum((o.fee_total for o in orders), D(0)) > 0
    assert hl_position("BTC") - before == D(5)
    position = Position.objects.get(user=whale, asset="BTC", source="HYPERLIQUID", status="OPEN")
    assert position.size == D(5) and holds(whale) == 0


def test_cancelling_a_twap_stops_the_remaining_children(venue: Venue, whale: Any) -> None:
    start_ms = fills_start()
    before = hl_position("BTC")
    venue.refresh_quote("BTC")
    t0 = timezone.now()
    parent = twap(whale, t0)
    drive(venue, t0, range(0, 25))  # slices 0, 1, 2
    cancelled = algo_order_cancel(user=whale, algo_id=parent.pk)
    assert cancelled.status == "CANCELLED" and cancelled.children_sent == 3
    assert algo_order_cancel(user=whale, algo_id=parent.pk).status == "CANCELLED"  # twice: the same

    drive(venue, t0, range(25, 140))

    parent.refresh_from_db()
    assert AlgoChild.objects.filter(parent=parent).count() == 3 and parent.children_sent == 3
    three = D(5) * 3 / 12
    assert (
        abs(parent.filled_size - three) <= D("0.00002") and parent.remaining_size == D(5) - parent.filled_size
    )
    assert_one_hl_order_per_child(parent, start_ms)
    assert hl_position("BTC") - before == parent.filled_size
    assert abs(parent.avg_price - vwap(hl_fills_since(start_ms))) <= D("0.00000001")  # type: ignore[operator]


def test_a_crash_after_the_send_before_the_record_resumes_without_a_second_child(
    venue: Venue, whale: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    start_ms = fills_start()
    before = hl_position("BTC")
    venue.refresh_quote("BTC")
    t0 = timezone.now()
    parent = twap(whale, t0)
    drive(venue, t0, range(0, 1))
    real_record = algo_scheduler.child_record

    def dies_after_the_send(**kwargs: Any) -> None:
        raise SystemError("worker killed after HL answered, before the slice was recorded")

    monkeypatch.setattr(algo_scheduler, "child_record", dies_after_the_send)
    venue.refresh_quote("BTC")
    algo_tick(now=t0 + timedelta(seconds=10))  # slice 1 filled on HL; the pass dies before recording it
    monkeypatch.setattr(algo_scheduler, "child_record", real_record)
    child = AlgoChild.objects.get(parent=parent, slice_index=1)
    assert child.order_id is None
    sent = Order.objects.get(client_order_id=f"algo:{parent.pk}:1")
    assert sent.status == "FILLED" and sent.hl_oid is not None
    parent.refresh_from_db()
    assert parent.next_slice == 1 and parent.lease_until is not None

    # the dead pass's lease holds the parent for 30 s; then a pass takes it over and records slice 1
    # from the order already placed (placing it again answers that order: no second HL order)
    assert algo_tick(now=t0 + timedelta(seconds=20)) == 0
    drive(venue, t0, range(41, 42))
    child.refresh_from_db()
    assert child.order_id == sent.pk
    drive(venue, t0, range(42, 150))

    parent.refresh_from_db()
    assert parent.status == "COMPLETED" and parent.filled_size == D(5) and parent.children_sent == 12
    assert_one_hl_order_per_child(parent, start_ms)
    assert hl_position("BTC") - before == D(5)
    assert abs(parent.avg_price - vwap(hl_fills_since(start_ms))) <= D("0.00000001")  # type: ignore[operator]


def test_a_crash_before_the_send_never_sends_the_child_and_later_slices_catch_up(
    venue: Venue, whale: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    start_ms = fills_start()
    before = hl_position("BTC")
    venue.refresh_quote("BTC")
    t0 = timezone.now()
    parent = twap(whale, t0)
    drive(venue, t0, range(0, 1))
    real_send = place.send_and_apply

    def dies_before_the_send(*, order: Order, quote: Any = None, signing: Any = None) -> Order:
        raise SystemError("worker killed after the order row committed, before the request left")

    monkeypatch.setattr(place, "send_and_apply", dies_before_the_send)
    venue.refresh_quote("BTC")
    algo_tick(now=t0 + timedelta(seconds=10))
    monkeypatch.setattr(place, "send_and_apply", real_send)
    orphan = Order.objects.get(client_order_id=f"algo:{parent.pk}:1")
    assert orphan.status == "ACCEPTED" and orphan.cloid and orphan.hl_submitted_at is not None
    gw = gateway("trading")
    assert gw is not None and gw.order_status(cloid=orphan.cloid).get("status") != "order"  # HL never saw it

    # resumed after the lease: slice 1 is recorded with the order as placed (in flight, never re-sent);
    # slices 2–3 go out at their times beside it
    drive(venue, t0, range(41, 42))
    assert AlgoChild.objects.get(parent=parent, slice_index=1).order_id == orphan.pk
    # the HL resolver settles the orphan once its request's expiry has passed (real time): never sent
    deadline = time.monotonic() + 30
    while Order.objects.get(pk=orphan.pk).status == "ACCEPTED" and time.monotonic() < deadline:
        hl_orders_resolve(older_than_s=0)
        time.sleep(1)
    orphan.refresh_from_db()
    assert orphan.status == "REJECTED" and orphan.filled_size == 0 and orphan.hl_oid is None
    # the next slices catch up its size (a TWAP child at most 3 slices), so the whole 5 BTC fills
    drive(venue, t0, range(42, 150))
    parent.refresh_from_db()
    assert parent.status == "COMPLETED" and parent.filled_size == D(5) and parent.children_sent == 12
    assert max(AlgoChild.objects.filter(parent=parent).values_list("size", flat=True)) > D(5) / 12
    assert_one_hl_order_per_child(parent, start_ms)
    assert hl_position("BTC") - before == D(5) and holds(whale) == 0
