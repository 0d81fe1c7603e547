"""TWAP / split scheduler rules: passes in several processes claim disjoint parents (skip-locked, leased),
a randomized schedule is the same in every process, margin for the whole size is checked up front
against what the user's other running parents still need, and a child refused for margin stops its
parent."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from core.errors import ApplicationError
from trading import margin
from trading.account import account_view
from trading.models import AlgoChild, AlgoOrder
from trading.orders.algo_config import algo_config_update
from trading.orders.algo_scheduler import algo_claim, algo_tick
from trading.orders.input import order_input
from trading.orders.place import order_place
from trading.orders.twap import algo_order_cancel, algo_order_create, slice_due_at
from trading.tests.hl_venue import Venue

D = Decimal


@pytest.fixture
def algo_on(db: Any) -> None:
    algo_config_update(changes={"enabled": True}, acting_user=None, reason="tests: TWAP on")


def twap(user: Any, size: str, **extra: Any) -> AlgoOrder:
    params: dict[str, Any] = {
        "user": user,
        "algo": "TWAP",
        "asset": "BTC",
        "side": "BUY",
        "size": size,
        "duration_seconds": 120,
        "slices": 4,
        "leverage": 10,
        "margin_mode": "ISOLATED",
    }
    return algo_order_create(**{**params, **extra})


@pytest.mark.django_db(transaction=True)
def test_concurrent_scheduler_passes_claim_disjoint_parents(
    make_trader: Any, fund: Any, set_quote: Any, algo_on: None
) -> None:
    trader = make_trader()
    fund(trader, "100000")
    set_quote("BTC", "80000")
    t0 = timezone.now()
    ids = {twap(trader, "0.2", now=t0).pk for _ in range(8)}
    claims: list[list[int]] = []
    barrier = threading.Barrier(4)

    def scheduler() -> None:
        try:
            barrier.wait()
            claims.append(algo_claim(now=t0, limit=3))
        finally:
            connection.close()

    threads = [threading.Thread(target=scheduler) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [pk for claim in claims for pk in claim]
    assert len(claimed) == len(set(claimed)) == 8 and set(claimed) == ids  # each parent exactly once
    assert algo_claim(now=t0 + timedelta(seconds=29)) == []  # leased for 30 s
    assert set(algo_claim(now=t0 + timedelta(seconds=31))) == ids  # passes that died are taken over


@pytest.mark.django_db(transaction=True)
def test_a_randomized_schedule_is_the_same_in_every_process_and_keeps_its_order(
    make_trader: Any, fund: Any, set_quote: Any, algo_on: None
) -> None:
    trader = make_trader()
    fund(trader, "100000")
    set_quote("BTC", "80000")
    t0 = timezone.now()
    parent = twap(trader, "0.6", slices=12, randomize=True, now=t0)
    assert parent.jitter_ms == 2000  # 20 % of the 10 s interval (randomize_share)
    times = [slice_due_at(parent, n) for n in range(12)]
    again = AlgoOrder.objects.get(pk=parent.pk)  # another process reading the row
    assert [slice_due_at(again, n) for n in range(12)] == times
    assert times[0] == t0 and times == sorted(times) and len(set(times)) == 12
    shifts = [times[n] - (t0 + timedelta(seconds=10 * n)) for n in range(12)]
    assert all(abs(s) <= timedelta(seconds=2) for s in shifts) and any(shifts)


@pytest.mark.django_db(transaction=True)
def test_margin_for_the_whole_size_is_checked_against_other_running_parents(
    make_trader: Any, fund: Any, set_quote: Any, algo_on: None
) -> None:
    trader = make_trader()
    fund(trader, "10000")
    set_quote("BTC", "80000")
    first = twap(trader, "0.8")  # ~6.8k of IM + fee at mark + 5 % slippage
    assert first.margin_estimate > D(6700)
    with pytest.raises(ApplicationError) as refused:
        twap(trader, "0.8")
    assert refused.value.code == "INSUFFICIENT_MARGIN"
    assert D(refused.value.details["reserved_by_running_parents"]) == first.margin_estimate
    assert AlgoOrder.objects.count() == 1
    algo_order_cancel(user=trader, algo_id=first.pk)  # a cancelled parent needs nothing more
    assert twap(trader, "0.8").status == "RUNNING"


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_child_refused_for_margin_stops_the_parent(
    venue: Venue, make_trader: Any, fund: Any, algo_on: None
) -> None:
    trader = make_trader(kyc_status="VERIFIED")
    fund(trader, "15000")
    _bid, _ask, mid = venue.refresh_quote("BTC")
    t0 = timezone.now()
    parent = twap(trader, "1", now=t0)
    algo_tick(now=t0)
    parent.refresh_from_db()
    assert parent.children_sent == 1 and parent.filled_size == D("0.25")
    # the trader spends the rest of the margin on another order while the TWAP runs
    available = account_view(trader.pk)["available_to_trade"]
    size = margin.floor_size((available - D(800)) / (mid * D("1.06") / 10), 5)  # type: ignore[operator]
    order_place(
        user=trader,
        inp=order_input(
            asset="BTC", side="BUY", order_type="MARKET", size=str(size), leverage=10, margin_mode="ISOLATED"
        ),
    )
    for s in (30, 60, 90, 120):
        venue.refresh_quote("BTC")
        algo_tick(now=t0 + timedelta(seconds=s))
    parent.refresh_from_db()
    assert parent.status == "FAILED" and parent.error_code == "INSUFFICIENT_MARGIN"
    assert parent.filled_size == D("0.25") and parent.next_at is None
    refused = AlgoChild.objects.get(parent=parent, slice_index=1)
    assert refused.error_code == "INSUFFICIENT_MARGIN" and refused.order is not None
    assert refused.order.status == "REJECTED" and refused.order.filled_size == 0
    assert AlgoChild.objects.filter(parent=parent).count() == 2
