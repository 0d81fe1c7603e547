"""Take-profit / stop-loss on the mark for INTERNAL positions: attached through the API, fired once on a
mark crossing (however many checkers race, and after a checker died mid-way), the closing order placed
through the normal order path; the other trigger of a closed position is cancelled."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from conftest import PASSWORD
from trading.marketdata import Quote, get_quote, quote_delete
from trading.models import Order, Position, TpslOrder
from trading.orders.input import order_input
from trading.orders.place import order_place
from trading.orders.triggers import TpslTrigger, tpsl_check, tpsl_check_all, tpsl_resume

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


def open_position(trader: Any, side: str = "BUY", size: str = "0.01") -> Position:
    order_place(
        user=trader, inp=order_input(asset="BTC", side=side, order_type="MARKET", size=size, leverage=10)
    )
    return Position.objects.get(user=trader, asset="BTC", status="OPEN")


def attach(api: Client, position: Position, kind: str, trigger: str, **extra: Any) -> Any:
    return api.post(
        f"/api/v1/positions/{position.pk}/tpsl",
        {"type": kind, "trigger_price": trigger, **extra},
        content_type=JSON,
    )


def get_quote_or_fail(asset: str, set_quote: Any, mark: str = "3000") -> Quote:
    """Publish ``mark`` for ``asset`` as the feed would, and hand back the quote a mark hook gets."""
    set_quote(asset, mark)
    quote = get_quote(asset)
    assert quote is not None
    return quote


def tpsl_orders(trader: Any) -> list[Order]:
    return list(Order.objects.filter(user=trader, client_order_id__startswith="xbit-tpsl-"))


def test_a_stop_loss_fires_once_on_the_mark_and_the_take_profit_goes_with_the_position(
    api: Client, trader: Any, set_quote: Any
) -> None:
    set_quote("BTC", "80000")
    position = open_position(trader)
    # a long's stop-loss above the mark, or its take-profit below it, would fire at once: refused
    response = attach(api, position, "STOP_LOSS", "81000")
    assert response.status_code == 400 and response.json()["code"] == "INVALID_TRIGGER"
    assert attach(api, position, "TAKE_PROFIT", "79000").json()["code"] == "INVALID_TRIGGER"
    assert attach(api, position, "STOP_LOSS", "78000.5").json()["code"] == "INVALID_PRICE"
    sl = attach(api, position, "STOP_LOSS", "78000")
    tp = attach(api, position, "TAKE_PROFIT", "85000")
    assert (sl.status_code, tp.status_code) == (201, 201), sl.content
    assert attach(api, position, "STOP_LOSS", "78000").json()["id"] == sl.json()["id"]  # a retry
    assert sl.json()["side"] == "SELL" and sl.json()["trigger_above"] is False and tp.json()["trigger_above"]
    assert [r["id"] for r in api.get("/api/v1/tpsl?status=ACTIVE").json()["results"]] == [
        tp.json()["id"],
        sl.json()["id"],
    ]

    set_quote("BTC", "79000")  # falling, not there yet
    assert tpsl_check_all() == 0 and not tpsl_orders(trader)
    set_quote("BTC", "77900", bid="77899", ask="77901")  # crossed
    assert tpsl_check_all() == 1
    row = TpslOrder.objects.get(pk=sl.json()["id"])
    assert row.status == "PLACED" and row.trigger_mark == D("77900") and row.order is not None
    close = row.order
    assert close.reduce_only and close.side == "SELL" and close.status == "FILLED"
    assert close.avg_fill_price == D("77899") and close.size == D("0.01")
    position.refresh_from_db()
    assert position.status == "CLOSED"
    # a second pass fires nothing; the take-profit of the closed position is cancelled
    set_quote("BTC", "77000")
    assert tpsl_check_all() == 0 and len(tpsl_orders(trader)) == 1
    assert TpslOrder.objects.get(pk=tp.json()["id"]).status == "CANCELLED"
    listed = {r["id"]: r for r in api.get("/api/v1/tpsl").json()["results"]}
    assert listed[sl.json()["id"]]["order_id"] == close.pk and listed[sl.json()["id"]]["status"] == "PLACED"


def test_a_partial_take_profit_on_a_short_reduces_it_by_its_size(
    api: Client, trader: Any, set_quote: Any
) -> None:
    set_quote("BTC", "80000")
    position = open_position(trader, side="SELL", size="0.02")
    tp = attach(api, position, "TAKE_PROFIT", "76000", size="0.005")
    assert tp.status_code == 201 and tp.json()["side"] == "BUY" and tp.json()["trigger_above"] is False
    set_quote("BTC", "76500")
    assert tpsl_check_all() == 0
    set_quote("BTC", "75990")
    assert tpsl_check_all() == 1
    position.refresh_from_db()
    assert position.status == "OPEN" and position.size == D("0.015")
    assert TpslOrder.objects.get(pk=tp.json()["id"]).order.size == D("0.005")  # type: ignore[union-attr]


def test_racing_checkers_fire_a_trigger_exactly_once(api: Client, trader: Any, set_quote: Any) -> None:
    set_quote("BTC", "80000")
    position = open_position(trader)
    attach(api, position, "STOP_LOSS", "78000")
    set_quote("BTC", "77000")
    barrier = threading.Barrier(8)
    fired: list[int] = []

    def checker() -> None:
        try:
            barrier.wait()
            fired.append(tpsl_check("BTC", D("77000")))
        finally:
            connection.close()

    threads = [threading.Thread(target=checker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(fired) == 1 and len(tpsl_orders(trader)) == 1
    position.refresh_from_db()
    assert position.status == "CLOSED"


def test_a_trigger_whose_checker_died_is_resumed_without_a_second_order(
    api: Client, trader: Any, set_quote: Any
) -> None:
    set_quote("BTC", "80000")
    position = open_position(trader, size="0.02")
    a = TpslOrder.objects.get(pk=attach(api, position, "STOP_LOSS", "78000", size="0.01").json()["id"])
    b = TpslOrder.objects.get(pk=attach(api, position, "STOP_LOSS", "77000", size="0.01").json()["id"])
    set_quote("BTC", "76000")
    long_ago = timezone.now() - timedelta(minutes=1)
    # a: claimed, then the checker died before placing; b: died after placing, before recording it
    TpslOrder.objects.filter(pk__in=[a.pk, b.pk]).update(status="TRIGGERED", triggered_at=long_ago)
    placed = order_place(
        user=trader,
        inp=order_input(
            asset="BTC",
            side="SELL",
            order_type="MARKET",
            size="0.01",
            margin_mode=position.margin_mode,
            reduce_only=True,
            client_order_id=b.client_order_id,
            position_id=position.pk,
        ),
        by="system",
    )
    assert tpsl_check_all() == 0  # nothing ACTIVE to fire; both resumed
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.status == b.status == "PLACED" and b.order_id == placed.pk and a.order_id != placed.pk
    assert len(tpsl_orders(trader)) == 2
    assert tpsl_resume() == 0 and len(tpsl_orders(trader)) == 2
    position.refresh_from_db()
    assert position.status == "CLOSED"


def test_a_cancelled_trigger_never_fires_and_cancel_all_takes_triggers_too(
    api: Client, trader: Any, set_quote: Any
) -> None:
    set_quote("BTC", "80000")
    position = open_position(trader)
    first = attach(api, position, "STOP_LOSS", "78000").json()["id"]
    second = attach(api, position, "TAKE_PROFIT", "90000").json()["id"]
    response = api.post(f"/api/v1/tpsl/{first}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "CANCELLED"
    assert api.post(f"/api/v1/tpsl/{first}/cancel").json()["status"] == "CANCELLED"
    body = api.post("/api/v1/orders/cancel-all", {}, content_type=JSON).json()
    assert body["tpsl_cancelled"] == [second] and body["results"] == []
    set_quote("BTC", "70000")
    assert tpsl_check_all() == 0 and not tpsl_orders(trader)
    assert (
        api.post(
            f"/api/v1/positions/{position.pk + 1000}/tpsl",
            {"type": "STOP_LOSS", "trigger_price": "1"},
            content_type=JSON,
        ).status_code
        == 404
    )


def test_the_feed_loop_fires_a_trigger_on_the_mark_it_is_handed(
    api: Client, trader: Any, set_quote: Any
) -> None:
    set_quote("BTC", "80000")
    position = open_position(trader)
    sl = attach(api, position, "STOP_LOSS", "78000").json()["id"]
    loop = TpslTrigger()
    try:
        loop.on_mark("ETH", get_quote_or_fail("ETH", set_quote))  # no trigger on ETH: nothing to do
        loop.on_mark("BTC", get_quote_or_fail("BTC", set_quote, mark="79000"))
        time.sleep(0.5)
        assert TpslOrder.objects.get(pk=sl).status == "ACTIVE"
        loop.on_mark("BTC", get_quote_or_fail("BTC", set_quote, mark="77500"))
        deadline = time.monotonic() + 10
        while TpslOrder.objects.get(pk=sl).status == "ACTIVE" and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        loop.stop(wait=5)
    assert TpslOrder.objects.get(pk=sl).status == "PLACED"
    position.refresh_from_db()
    assert position.status == "CLOSED" and len(tpsl_orders(trader)) == 1


def test_a_trigger_refused_for_want_of_a_price_is_placed_once_the_price_is_back(
    api: Client, trader: Any, set_quote: Any
) -> None:
    set_quote("BTC", "80000")
    position = open_position(trader)
    sl = attach(api, position, "STOP_LOSS", "78000").json()["id"]
    quote_delete(["BTC"])  # the crossing mark was seen, then the cache lost the asset
    assert tpsl_check("BTC", D("77000")) == 1
    row = TpslOrder.objects.get(pk=sl)
    assert row.status == "TRIGGERED" and row.order is None and not tpsl_orders(trader)
    set_quote("BTC", "77000")
    assert tpsl_resume(now=timezone.now() + timedelta(seconds=11)) == 1
    row.refresh_from_db()
    assert row.status == "PLACED" and row.order is not None and row.order.status == "FILLED"
