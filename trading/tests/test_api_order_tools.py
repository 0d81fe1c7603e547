"""The order tools on INTERNAL orders through the HTTP API: batch place / cancel (a result per order,
each independent), cancel all, modify in place (hold re-computed, margin re-checked), the dead-man's
switch (claimed once, idempotent) and the funding history from the ledger."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from conftest import PASSWORD
from core.audit.models import AuditEntry
from core.errors import ApplicationError
from trading.funding import FundingRate, funding_dues, funding_settle_positions, users_lock
from trading.marketdata import quote_update
from trading.models import Order, OrderEvent, Position, ScheduledCancel
from trading.orders.deadman import deadman_check
from trading.orders.input import order_input
from trading.orders.place import order_place
from trading.orders.tools_config import order_tools_config_update
from trading.tests.hl_venue import cash, holds

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("internalization_on")]
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


def rest(trader: Any, asset: str, price: str, size: str = "0.01", **extra: Any) -> Order:
    """A resting internal limit buy below the market."""
    return order_place(
        user=trader,
        inp=order_input(
            asset=asset, side="BUY", order_type="LIMIT", size=size, limit_price=price, leverage=10, **extra
        ),
    )


def test_a_batch_places_each_order_on_its_own_with_a_result_per_entry(
    api: Client, trader: Any, set_quote: Any
) -> None:
    set_quote("BTC", "80000")
    batch = [
        {"symbol": "BTC", "side": "BUY", "type": "MARKET", "size": "0.01", "client_order_id": "b1"},
        {"symbol": "BTC", "side": "BUY", "type": "MARKET", "size": "0.0000001"},  # bad size
        {"symbol": "BTC", "side": "BUY", "type": "LIMIT", "size": "0.01", "limit_price": "70000"},
        {"symbol": "NOPE", "side": "BUY", "type": "MARKET", "size": "1"},
        {"symbol": "BTC", "side": "HOLD"},
    ]
    response = api.post("/api/v1/orders/batch", {"orders": batch}, content_type=JSON)
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["ok"] for r in results] == [True, False, True, False, False]
    assert results[0]["order"]["status"] == "FILLED" and results[2]["order"]["status"] == "OPEN"
    assert [r["error"]["code"] for r in results if not r["ok"]] == [
        "INVALID_SIZE",
        "UNKNOWN_SYMBOL",
        "VALIDATION_ERROR",
    ]
    assert Order.objects.filter(user=trader).count() == 2
    # the same batch again: the entry with a client_order_id answers the same order, not a second one
    again = api.post("/api/v1/orders/batch", {"orders": batch[:1]}, content_type=JSON).json()["results"]
    assert again[0]["order_id"] == results[0]["order_id"]
    assert Order.objects.filter(user=trader).count() == 2


def test_a_batch_above_the_configured_size_is_refused_whole(api: Client, trader: Any, set_quote: Any) -> None:
    set_quote("BTC", "80000")
    entry = {"symbol": "BTC", "side": "BUY", "type": "LIMIT", "size": "0.01", "limit_price": "70000"}
    response = api.post("/api/v1/orders/batch", {"orders": [entry] * 21}, content_type=JSON)
    assert response.status_code == 400 and response.json()["code"] == "BATCH_TOO_LARGE"
    assert response.json()["details"]["max"] == 20 and not Order.objects.exists()
    with pytest.raises(ApplicationError) as refused:
        order_tools_config_update(changes={"batch_max_orders": 0}, acting_user=None, reason="tests")
    assert refused.value.details["field"] == "batch_max_orders"
    order_tools_config_update(changes={"batch_max_orders": 2}, acting_user=None, reason="smaller batches")
    assert AuditEntry.objects.get(action="trading.order_tools_config_update").reason == "smaller batches"
    response = api.post("/api/v1/orders/batch", {"orders": [entry] * 3}, content_type=JSON)
    assert response.status_code == 400 and response.json()["details"]["max"] == 2


def test_batch_cancel_answers_each_id_and_cancel_all_honours_the_asset(
    api: Client, trader: Any, make_trader: Any, fund: Any, set_quote: Any
) -> None:
    set_quote("BTC", "80000")
    set_quote("ETH", "3000")
    btc = [rest(trader, "BTC", "70000"), rest(trader, "BTC", "71000")]
    eth = rest(trader, "ETH", "2500", size="0.1")
    other = make_trader()
    fund(other, "10000")
    foreign = rest(other, "BTC", "70000")
    response = api.post(
        "/api/v1/orders/batch-cancel",
        {"order_ids": [btc[0].pk, foreign.pk, btc[0].pk, 999999]},
        content_type=JSON,
    )
    results = response.json()["results"]
    assert [(r["ok"], (r["error"] or {}).get("code")) for r in results] == [
        (True, None),
        (False, "NOT_FOUND"),
        (True, None),  # cancelling twice answers the cancelled order
        (False, "NOT_FOUND"),
    ]
    assert Order.objects.get(pk=foreign.pk).status == "OPEN"

    held = holds(trader)
    assert held > 0
    response = api.post("/api/v1/orders/cancel-all", {"symbol": "btc"}, content_type=JSON)
    assert [r["order_id"] for r in response.json()["results"]] == [btc[1].pk]
    assert Order.objects.get(pk=eth.pk).status == "OPEN"
    response = api.post("/api/v1/orders/cancel-all", {}, content_type=JSON)
    assert [(r["order_id"], r["order"]["status"]) for r in response.json()["results"]] == [
        (eth.pk, "CANCELLED")
    ]
    assert holds(trader) == 0 and cash(trader) == D(100_000)
    assert api.post("/api/v1/orders/cancel-all", {}, content_type=JSON).json()["results"] == []


def test_modifying_an_internal_order_moves_only_the_hold_difference(
    api: Client, trader: Any, set_quote: Any
) -> None:
    set_quote("BTC", "80000")
    order = rest(trader, "BTC", "70000")
    hold0 = order.hold_amount
    assert hold0 > 0 and holds(trader) == hold0
    response = api.post(
        f"/api/v1/orders/{order.pk}/modify", {"size": "0.02", "limit_price": "75000"}, content_type=JSON
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == order.pk and body["status"] == "OPEN" and body["replaces"] is None
    assert D(body["size"]) == D("0.02") and D(body["limit_price"]) == D("75000")
    order.refresh_from_db()
    # IM at 10x + maker fee, at the new price and size
    expected = D("0.02") * D("75000") / 10 + D("0.02") * D("75000") * D("0.00015")
    assert order.hold_amount == expected and holds(trader) == expected
    assert cash(trader) == D(100_000) - expected
    # the same request again changes nothing
    api.post(f"/api/v1/orders/{order.pk}/modify", {"size": "0.02", "limit_price": "75000"}, content_type=JSON)
    assert OrderEvent.objects.filter(order=order, status="MODIFIED").count() == 1
    # smaller (PATCH on the order is the same modification): the difference comes back
    response = api.patch(f"/api/v1/orders/{order.pk}", {"size": "0.01"}, content_type=JSON)
    assert response.status_code == 200 and D(response.json()["size"]) == D("0.01")
    order.refresh_from_db()
    assert holds(trader) == order.hold_amount == D("0.01") * D("75000") * (D("0.1") + D("0.00015"))
    # more than the account can hold: refused, the order as it was
    response = api.post(f"/api/v1/orders/{order.pk}/modify", {"size": "100"}, content_type=JSON)
    assert response.status_code == 400 and response.json()["code"] == "INSUFFICIENT_MARGIN"
    order.refresh_from_db()
    assert order.size == D("0.01") and holds(trader) == order.hold_amount
    # a price the book reaches fills at once, as a taker at the touch — never at a stale one
    set_quote("BTC", "80000", bid="79999", ask="80001")
    stale = int(time.time()) - 60
    quote_update("BTC", at=stale, bid=D("79999"), ask=D("80001"))
    response = api.post(f"/api/v1/orders/{order.pk}/modify", {"limit_price": "80500"}, content_type=JSON)
    assert response.status_code == 503 and response.json()["code"] == "STALE_PRICE"
    order.refresh_from_db()
    assert order.status == "OPEN" and order.limit_price == D("75000")
    set_quote("BTC", "80000")
    response = api.post(f"/api/v1/orders/{order.pk}/modify", {"limit_price": "80500"}, content_type=JSON)
    assert response.json()["status"] == "FILLED" and D(response.json()["avg_fill_price"]) == D("80001")
    assert holds(trader) == 0
    assert Position.objects.get(user=trader, status="OPEN").size == D("0.01")
    response = api.post(f"/api/v1/orders/{order.pk}/modify", {"limit_price": "79000"}, content_type=JSON)
    assert response.status_code == 409 and response.json()["code"] == "INVALID_STATE"


def test_a_post_only_order_cannot_be_modified_into_the_book(api: Client, trader: Any, set_quote: Any) -> None:
    set_quote("BTC", "80000")
    order = rest(trader, "BTC", "70000", tif="ALO")
    response = api.post(f"/api/v1/orders/{order.pk}/modify", {"limit_price": "81000"}, content_type=JSON)
    assert response.status_code == 400 and response.json()["code"] == "INVALID_PRICE"
    order.refresh_from_db()
    assert order.status == "OPEN" and order.limit_price == D("70000")
    response = api.post(f"/api/v1/orders/{order.pk}/modify", {}, content_type=JSON)
    assert response.status_code == 400 and response.json()["code"] == "VALIDATION_ERROR"


def test_the_dead_mans_switch_cancels_everything_once_at_its_time_unless_renewed(
    api: Client, trader: Any, set_quote: Any
) -> None:
    set_quote("BTC", "80000")
    orders = [rest(trader, "BTC", "70000"), rest(trader, "BTC", "69000")]
    now = timezone.now()
    too_soon = int((now + timedelta(seconds=2)).timestamp() * 1000)
    response = api.post("/api/v1/orders/schedule-cancel", {"time": too_soon}, content_type=JSON)
    assert response.status_code == 400 and response.json()["code"] == "SCHEDULE_TOO_SOON"
    at = now + timedelta(seconds=30)
    response = api.post("/api/v1/orders/schedule-cancel", {"time": at.isoformat()}, content_type=JSON)
    assert response.status_code == 200 and response.json()["time"] == int(at.timestamp() * 1000)
    assert api.get("/api/v1/orders/schedule-cancel").json()["time"] == int(at.timestamp() * 1000)
    # renewed before it was due: the earlier time does nothing
    later = at + timedelta(seconds=30)
    api.post("/api/v1/orders/schedule-cancel", {"time": int(later.timestamp() * 1000)}, content_type=JSON)
    assert deadman_check(now=at + timedelta(seconds=1)) == 0
    assert all(Order.objects.get(pk=o.pk).status == "OPEN" for o in orders)
    # due: every open order cancelled, once
    assert deadman_check(now=later + timedelta(seconds=1)) == 1
    assert all(Order.objects.get(pk=o.pk).status == "CANCELLED" for o in orders)
    assert holds(trader) == 0
    assert deadman_check(now=later + timedelta(seconds=2)) == 0
    state = api.get("/api/v1/orders/schedule-cancel").json()
    assert state["time"] is None and state["fired_count"] == 1 and state["last_fired_at"] is not None
    # cleared with null: nothing fires
    api.post(
        "/api/v1/orders/schedule-cancel", {"time": int(later.timestamp() * 1000) + 60_000}, content_type=JSON
    )
    assert (
        api.post("/api/v1/orders/schedule-cancel", {"time": None}, content_type=JSON).json()["time"] is None
    )
    assert ScheduledCancel.objects.get(user=trader).cancel_at is None


def test_a_dead_mans_switch_claimed_by_a_checker_that_died_is_finished_by_the_next(
    trader: Any, set_quote: Any
) -> None:
    set_quote("BTC", "80000")
    order = rest(trader, "BTC", "70000")
    due = timezone.now() - timedelta(seconds=1)
    # the state a checker leaves when it dies after its claim committed
    ScheduledCancel.objects.create(user=trader, cancel_at=None, firing_at=due)
    assert deadman_check() == 1
    assert Order.objects.get(pk=order.pk).status == "CANCELLED"
    row = ScheduledCancel.objects.get(user=trader)
    assert row.firing_at is None and row.last_fired_at == due and row.fired_count == 1


def test_funding_history_lists_the_users_payments_from_the_ledger(
    api: Client, trader: Any, make_trader: Any, fund: Any, set_quote: Any
) -> None:
    set_quote("BTC", "80000")
    set_quote("ETH", "3000")
    for asset, size in (("BTC", "0.01"), ("ETH", "0.2")):
        order_place(user=trader, inp=order_input(asset=asset, side="BUY", order_type="MARKET", size=size))
    other = make_trader()
    fund(other, "10000")
    order_place(user=other, inp=order_input(asset="BTC", side="SELL", order_type="MARKET", size="0.01"))
    instants = [
        timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=h) for h in (2, 1)
    ]
    rates = {
        "BTC": FundingRate(rate=D("0.0001"), price=D("80000")),
        "ETH": FundingRate(rate=D("-0.0002"), price=D("3000")),
    }
    for instant in instants:
        with transaction.atomic():
            positions = list(Position.objects.select_for_update().filter(status="OPEN").order_by("id"))
            users_lock(p.user_id for p in positions)
            dues = funding_dues(positions, rates, {p.pk: p.size for p in positions})
            funding_settle_positions(
                dues=dues, funding_time=instant, key=f"funding:{int(instant.timestamp())}:t"
            )
    body = api.get("/api/v1/funding").json()
    rows = body["results"]
    assert len(rows) == 4 and {"next", "previous"} <= set(body)
    # longs pay a positive rate, receive a negative one: 0.01 × 80,000 × 0.0001 and 0.2 × 3,000 × 0.0002
    assert sorted((r["symbol"], D(r["amount"])) for r in rows) == [
        ("BTC", D("-0.08")),
        ("BTC", D("-0.08")),
        ("ETH", D("0.12")),
        ("ETH", D("0.12")),
    ]
    assert {r["funding_time"][:13] for r in rows} == {i.isoformat()[:13] for i in instants}
    btc = api.get("/api/v1/funding?symbol=btc&limit=1").json()
    assert len(btc["results"]) == 1 and btc["results"][0]["symbol"] == "BTC" and btc["next"]
    assert len(api.get(btc["next"]).json()["results"]) == 1
    future = (timezone.now() + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert api.get("/api/v1/funding", {"since": future}).json()["results"] == []
    assert api.get("/api/v1/funding?since=nope").json()["code"] == "VALIDATION_ERROR"
