"""The order tools on HYPERLIQUID orders against the simulated HL through the real SDK: a modify is HL's
cancel-and-replace (the old order gone from HL, the replacement resting at the new price, the hold moved,
a repeated request answering the same replacement); cancel all and the dead-man's switch take HL and
internal orders alike; a take-profit on an HL position fires once on the mark and closes it on HL."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from conftest import PASSWORD
from trading import margin
from trading.models import Order, OrderEvent, Position, ScheduledCancel, TpslOrder
from trading.orders.cancel import order_cancel
from trading.orders.deadman import deadman_check
from trading.orders.input import order_input
from trading.orders.modify import MODIFY_REQUESTED
from trading.orders.place import order_place
from trading.orders.triggers import tpsl_check_all
from trading.tests.hl_venue import Venue, cash, hl_position, holds
from trading.venues.hl import gateway

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
D = Decimal
JSON = "application/json"


@pytest.fixture
def api(trader: Any) -> Client:
    client = Client()
    token = client.post(
        "/api/v1/auth/login", {"email": trader.email, "password": PASSWORD}, content_type=JSON
    ).json()["access"]
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def hl_open_orders() -> dict[int, dict[str, Any]]:
    gw = gateway("trading")
    assert gw is not None
    return {int(o["oid"]): o for o in gw.open_orders()}


def rest_on_hl(trader: Any, venue: Venue, asset: str = "ETH", depth: str = "0.9") -> Order:
    bid, _ask, _mid = venue.refresh_quote(asset)
    limit = margin.round_price(bid * D(depth), 4)
    order = order_place(
        user=trader,
        inp=order_input(
            asset=asset,
            side="BUY",
            order_type="LIMIT",
            size=str(margin.floor_size(D(12_000) / limit, 4)),
            limit_price=str(limit),
            leverage=5,
        ),
    )
    assert order.route == "HYPERLIQUID" and order.status == "OPEN" and order.hl_oid in hl_open_orders()
    return order


def test_modifying_an_hl_order_cancels_and_replaces_it_on_hl(api: Client, venue: Venue, trader: Any) -> None:
    old = rest_on_hl(trader, venue)
    bid, _ask, _mid = venue.refresh_quote("ETH")
    new_price = margin.round_price(bid * D("0.92"), 4)
    # a replacement that would be refused is refused before anything is cancelled on HL
    small = api.post(f"/api/v1/orders/{old.pk}/modify", {"size": "0.0001"}, content_type=JSON)
    assert small.status_code == 400 and small.json()["code"] == "MIN_NOTIONAL"
    assert old.hl_oid in hl_open_orders() and Order.objects.get(pk=old.pk).status == "OPEN"
    response = api.post(f"/api/v1/orders/{old.pk}/modify", {"limit_price": str(new_price)}, content_type=JSON)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["replaces"] == old.pk and body["id"] != old.pk and body["status"] == "OPEN"
    assert D(body["limit_price"]) == new_price and D(body["size"]) == old.size
    old.refresh_from_db()
    new = Order.objects.get(pk=body["id"])
    assert old.status == "CANCELLED" and new.route == "HYPERLIQUID" and new.hl_oid != old.hl_oid
    on_hl = hl_open_orders()
    assert old.hl_oid not in on_hl and D(on_hl[new.hl_oid]["limitPx"]) == new_price  # type: ignore[index]
    # one hold: the replacement's, at its price
    assert holds(trader) == new.hold_amount > 0 and cash(trader) == D(100_000) - new.hold_amount
    # the same request again (a lost answer): the same replacement, nothing new on HL
    again = api.post(f"/api/v1/orders/{old.pk}/modify", {"limit_price": str(new_price)}, content_type=JSON)
    assert again.json()["id"] == new.pk and len(hl_open_orders()) == len(on_hl)
    assert Order.objects.filter(user=trader).count() == 2


def test_cancel_all_and_the_dead_mans_switch_take_hl_and_internal_orders_alike(
    api: Client, venue: Venue, trader: Any
) -> None:
    first = rest_on_hl(trader, venue)
    _bid, _ask, mid = venue.refresh_quote("BTC")
    internal = order_place(
        user=trader,
        inp=order_input(
            asset="BTC",
            side="BUY",
            order_type="LIMIT",
            size="0.001",
            limit_price=str(margin.round_price(mid * D("0.8"), 5)),
        ),
    )
    assert internal.route == "INTERNAL" and internal.status == "OPEN"
    body = api.post("/api/v1/orders/cancel-all", {}, content_type=JSON).json()
    assert sorted((r["order_id"], r["order"]["status"]) for r in body["results"]) == [
        (first.pk, "CANCELLED"),
        (internal.pk, "CANCELLED"),
    ]
    assert first.hl_oid not in hl_open_orders() and holds(trader) == 0

    second = rest_on_hl(trader, venue)
    at = timezone.now() + timedelta(seconds=6)
    response = api.post(
        "/api/v1/orders/schedule-cancel", {"time": int(at.timestamp() * 1000)}, content_type=JSON
    )
    assert response.status_code == 200
    assert deadman_check() == 0 and second.hl_oid in hl_open_orders()
    assert deadman_check(now=at + timedelta(milliseconds=1)) == 1
    second.refresh_from_db()
    assert second.status == "CANCELLED" and second.hl_oid not in hl_open_orders() and holds(trader) == 0
    assert ScheduledCancel.objects.get(user=trader).fired_count == 1


def test_a_take_profit_on_an_hl_position_fires_once_and_closes_it_on_hl(
    api: Client, venue: Venue, trader: Any
) -> None:
    _bid, _ask, mid = venue.refresh_quote("BTC")
    size = margin.floor_size(D(20_000) / mid, 5)
    before = hl_position("BTC")
    opened = order_place(
        user=trader,
        inp=order_input(asset="BTC", side="BUY", order_type="MARKET", size=str(size), leverage=10),
    )
    assert opened.route == "HYPERLIQUID" and opened.status == "FILLED"
    position = Position.objects.get(user=trader, source="HYPERLIQUID", asset="BTC", status="OPEN")
    trigger = margin.round_price(mid * D("1.01"), 5)
    response = api.post(
        f"/api/v1/positions/{position.pk}/tpsl",
        {"type": "TAKE_PROFIT", "trigger_price": str(trigger)},
        content_type=JSON,
    )
    assert response.status_code == 201, response.content
    assert tpsl_check_all() == 0  # the mark has not moved there
    venue.control("shock", {"coin": "BTC", "pct": 2})
    _bid, _ask, mark = venue.refresh_quote("BTC")
    assert mark >= trigger
    assert tpsl_check_all() == 1
    row = TpslOrder.objects.get(pk=response.json()["id"])
    assert row.status == "PLACED" and row.order is not None
    close = row.order
    assert close.route == "HYPERLIQUID" and close.reduce_only and close.status == "FILLED"
    assert close.size == size and close.avg_fill_price is not None and close.avg_fill_price > mid
    position.refresh_from_db()
    assert position.status == "CLOSED" and position.realized_pnl > 0
    assert hl_position("BTC") == before
    assert tpsl_check_all() == 0
    assert Order.objects.filter(user=trader, client_order_id__startswith="xbit-tpsl-").count() == 1


def test_a_modify_that_died_between_the_cancel_and_the_replacement_is_finished_by_its_retry(
    api: Client, venue: Venue, trader: Any
) -> None:
    old = rest_on_hl(trader, venue)
    bid, _ask, _mid = venue.refresh_quote("ETH")
    new_price = margin.round_price(bid * D("0.91"), 4)
    # what a process leaves when it dies after HL cancelled the order, before the replacement was placed
    OrderEvent.objects.create(
        order=old, status=MODIFY_REQUESTED, detail={"size": str(old.size), "limit_price": str(new_price)}
    )
    order_cancel(user=trader, order_id=old.pk)
    assert holds(trader) == 0
    response = api.post(f"/api/v1/orders/{old.pk}/modify", {"limit_price": str(new_price)}, content_type=JSON)
    assert response.status_code == 200, response.content
    new = Order.objects.get(pk=response.json()["id"])
    assert response.json()["replaces"] == old.pk and new.status == "OPEN" and new.limit_price == new_price
    assert new.hl_oid in hl_open_orders() and holds(trader) == new.hold_amount
    assert (
        api.post(f"/api/v1/orders/{old.pk}/modify", {"limit_price": "1"}, content_type=JSON).json()["id"]
        == new.pk
    )


def test_one_cancel_refused_by_hl_leaves_the_others_cancelled(api: Client, venue: Venue, trader: Any) -> None:
    first = rest_on_hl(trader, venue)
    second = rest_on_hl(trader, venue, depth="0.89")
    # a refusal (a 5xx is sent again: test_hl_execution's cancel tests)
    venue.control("fail", {"mode": "err", "path": "exchange", "count": 1})
    body = api.post(
        "/api/v1/orders/batch-cancel", {"order_ids": [first.pk, second.pk]}, content_type=JSON
    ).json()
    venue.control("faults/clear")
    assert [(r["order_id"], r["ok"]) for r in body["results"]] == [(first.pk, False), (second.pk, True)]
    assert body["results"][0]["error"]["code"] == "VENUE_ERROR"
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == "OPEN" and second.status == "CANCELLED"
    on_hl = hl_open_orders()
    assert first.hl_oid in on_hl and second.hl_oid not in on_hl
    assert holds(trader) == first.hold_amount
