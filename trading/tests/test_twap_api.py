"""TWAP / split orders through the trader API: refusals with stable codes (switched off, margin for the
whole size, bad slicing, the children's reserved client ids), list / detail with the children, cancel —
and a size split executed on the simulated HL in children of at most ``max_child_size``."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from conftest import PASSWORD
from trading.models import AlgoChild, AlgoOrder, Order
from trading.orders.algo_config import algo_config_update
from trading.orders.algo_scheduler import algo_tick
from trading.tests.hl_venue import Venue, hl_position

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
D = Decimal
TWAP = {
    "type": "TWAP",
    "symbol": "BTC",
    "side": "BUY",
    "size": "1",
    "duration_seconds": 120,
    "slices": 4,
    "leverage": 10,
    "margin_mode": "ISOLATED",
}


@pytest.fixture
def api(make_trader: Any, fund: Any) -> Client:
    trader = make_trader(kyc_status="VERIFIED")
    fund(trader, "20000")
    client = Client()
    token = client.post(
        "/api/v1/auth/login", {"email": trader.email, "password": PASSWORD}, content_type="application/json"
    ).json()["access"]
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def post(api: Client, body: dict[str, Any]) -> Any:
    return api.post("/api/v1/algo-orders", body, content_type="application/json")


def algo_on() -> None:
    algo_config_update(changes={"enabled": True}, acting_user=None, reason="tests: TWAP on")


def test_refusals_have_stable_codes(venue: Venue, api: Client) -> None:
    venue.refresh_quote("BTC")
    off = post(api, TWAP)
    assert off.status_code == 503 and off.json()["code"] == "SERVICE_UNAVAILABLE"  # off by default
    algo_on()
    cases = [
        # 20k USDC cannot carry 5 BTC (~500k) at 10x: the whole size is checked up front
        ({**TWAP, "size": "5"}, 400, "INSUFFICIENT_MARGIN"),
        ({**TWAP, "duration_seconds": None}, 400, "VALIDATION_ERROR"),
        ({**TWAP, "duration_seconds": 10}, 400, "VALIDATION_ERROR"),
        ({**TWAP, "slices": 60}, 400, "VALIDATION_ERROR"),  # 2 s apart: below the 5 s minimum
        ({**TWAP, "size": "0.01", "slices": 1}, 400, "MIN_NOTIONAL"),  # ~1k: below the parent minimum
        ({**TWAP, "size": "0.123456"}, 400, "INVALID_SIZE"),
        ({**TWAP, "type": "SPLIT"}, 400, "VALIDATION_ERROR"),  # a split needs max_child_size
        ({**TWAP, "type": "SPLIT", "max_child_size": "0.00005"}, 400, "VALIDATION_ERROR"),  # > 1000 children
    ]
    for body, status, code in cases:
        response = post(api, {k: v for k, v in body.items() if v is not None})
        assert (response.status_code, response.json()["code"]) == (status, code), (body, response.json())
    assert AlgoOrder.objects.count() == 0
    # the children's client ids are the scheduler's: a client's order may not take one
    stolen = api.post(
        "/api/v1/orders",
        {"symbol": "BTC", "side": "BUY", "type": "MARKET", "size": "0.001", "client_order_id": "algo:1:0"},
        content_type="application/json",
    )
    assert stolen.status_code == 400 and stolen.json()["code"] == "VALIDATION_ERROR"
    assert Order.objects.count() == 0


def test_a_split_runs_in_children_of_at_most_max_child_size_and_shows_its_progress(
    venue: Venue, api: Client
) -> None:
    algo_on()
    venue.refresh_quote("BTC")
    before = hl_position("BTC")
    body = {**TWAP, "type": "SPLIT", "size": "0.25", "max_child_size": "0.1", "client_order_id": "s-1"}
    del body["duration_seconds"], body["slices"]
    created = post(api, body)
    assert created.status_code == 201, created.json()
    parent = created.json()
    assert parent["status"] == "RUNNING" and parent["slices"] == 3 and D(parent["filled_size"]) == 0
    assert post(api, body).json()["id"] == parent["id"]  # the same client_order_id: the same parent
    conflict = post(api, {**body, "size": "0.3"})
    assert conflict.status_code == 409 and conflict.json()["code"] == "IDEMPOTENCY_CONFLICT"

    now = timezone.now()
    for s in range(6):
        venue.refresh_quote("BTC")
        algo_tick(now=now + timedelta(seconds=s))

    detail = api.get(f"/api/v1/algo-orders/{parent['id']}").json()
    assert detail["status"] == "COMPLETED" and D(detail["filled_size"]) == D("0.25")
    assert D(detail["remaining_size"]) == 0 and detail["children_sent"] == 3
    assert [D(c["size"]) for c in detail["children"]] == [D("0.1"), D("0.1"), D("0.05")]
    assert all(c["status"] == "FILLED" and c["order_id"] for c in detail["children"])
    fills = [(D(c["filled_size"]), D(c["avg_fill_price"])) for c in detail["children"]]
    expected = sum((s * p for s, p in fills), D(0)) / D("0.25")
    assert abs(D(detail["avg_price"]) - expected) <= D("0.00000001")
    assert hl_position("BTC") - before == D("0.25")
    listed = api.get("/api/v1/algo-orders").json()["results"]
    assert [p["id"] for p in listed] == [parent["id"]]
    # the children are ordinary orders of the trader's
    child_ids = {c["order_id"] for c in detail["children"]}
    assert child_ids <= {o["id"] for o in api.get("/api/v1/orders").json()["results"]}
    done = api.post(f"/api/v1/algo-orders/{parent['id']}/cancel")
    assert done.status_code == 409 and done.json()["code"] == "INVALID_STATE"


def test_cancel_through_the_api_stops_the_parent(venue: Venue, api: Client, make_trader: Any) -> None:
    algo_on()
    venue.refresh_quote("BTC")
    parent = post(api, TWAP).json()
    algo_tick(now=timezone.now())
    cancelled = api.post(f"/api/v1/algo-orders/{parent['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    assert cancelled.json()["children_sent"] == 1 and len(cancelled.json()["children"]) == 1
    for s in range(0, 130, 10):
        venue.refresh_quote("BTC")
        algo_tick(now=timezone.now() + timedelta(seconds=s))
    assert AlgoChild.objects.filter(parent_id=parent["id"]).count() == 1
    # someone else's parent is not found
    other = Client()
    stranger = make_trader()
    token = other.post(
        "/api/v1/auth/login", {"email": stranger.email, "password": PASSWORD}, content_type="application/json"
    ).json()["access"]
    other.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    assert other.get(f"/api/v1/algo-orders/{parent['id']}").status_code == 404
    assert other.post(f"/api/v1/algo-orders/{parent['id']}/cancel").status_code == 404
