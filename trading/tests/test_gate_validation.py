"""While the order gate is closed (restart recovery, a gating reconciliation CRITICAL), a malformed order
is still the client's error on every order endpoint: the batch reports it per entry and a TWAP / split
answers it, instead of a 503 that tells the client to retry the same mistake. A well-formed order still
waits (SERVICE_UNAVAILABLE with the gate's reason); a reduction is never gated."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from conftest import PASSWORD
from core.platform.state import platform_ready_set
from trading.models import AlgoOrder, Order

pytestmark = pytest.mark.django_db
JSON = "application/json"
REASON = "reconciliation critical: exposure"
GOOD = {"symbol": "BTC", "side": "BUY", "type": "MARKET", "size": "0.01"}
MALFORMED: list[tuple[dict[str, Any], str]] = [
    ({"symbol": "NOPE", "side": "BUY", "type": "MARKET", "size": "0.01"}, "UNKNOWN_SYMBOL"),
    ({"symbol": "BTC", "side": "BUY", "type": "MARKET", "size": "0.0000001"}, "INVALID_SIZE"),
    ({"symbol": "BTC", "side": "BUY", "type": "LIMIT", "size": "0.01"}, "INVALID_PRICE"),
    ({"symbol": "BTC", "side": "BUY", "type": "MARKET", "size": "0.01", "leverage": 500}, "VALIDATION_ERROR"),
    (
        {"symbol": "BTC", "side": "BUY", "type": "MARKET", "size": "0.01", "leverage": 100},
        "LEVERAGE_EXCEEDED",
    ),
]


@pytest.fixture
def api(make_trader: Any, markets: None) -> Client:
    trader = make_trader()
    client = Client()
    token = client.post(
        "/api/v1/auth/login", {"email": trader.email, "password": PASSWORD}, content_type=JSON
    ).json()["access"]
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    platform_ready_set(ready=False, reason=REASON)
    return client


@pytest.mark.parametrize(("entry", "code"), MALFORMED)
def test_while_the_gate_is_closed_a_malformed_batch_entry_gets_its_own_code(
    api: Client, entry: dict[str, Any], code: str
) -> None:
    response = api.post("/api/v1/orders/batch", {"orders": [GOOD, entry]}, content_type=JSON)
    assert response.status_code == 200, response.json()
    good, bad = response.json()["results"]
    assert not good["ok"] and good["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert REASON in good["error"]["message"]
    assert bad["index"] == 1 and not bad["ok"] and bad["error"]["code"] == code, bad
    assert Order.objects.count() == 0


def test_while_the_gate_is_closed_a_batch_reduction_is_not_refused_by_the_gate(api: Client) -> None:
    reduction = {**GOOD, "side": "SELL", "reduce_only": True}
    response = api.post("/api/v1/orders/batch", {"orders": [reduction]}, content_type=JSON)
    (result,) = response.json()["results"]
    # it fails later (there is no position to reduce), but not at the gate
    assert result["error"] is None or result["error"]["code"] != "SERVICE_UNAVAILABLE", result


ALGO = {"type": "TWAP", "duration_seconds": 120, "slices": 4}


@pytest.mark.parametrize(("entry", "code"), [(e, c) for e, c in MALFORMED if e["type"] == "MARKET"])
def test_while_the_gate_is_closed_a_malformed_algo_order_is_still_the_clients_error(
    api: Client, entry: dict[str, Any], code: str
) -> None:
    response = api.post("/api/v1/algo-orders", {**entry, **ALGO}, content_type=JSON)
    assert response.status_code == 400 and response.json()["code"] == code, response.json()
    assert AlgoOrder.objects.count() == 0


def test_while_the_gate_is_closed_a_well_formed_algo_order_waits_with_the_reason(api: Client) -> None:
    body = {k: v for k, v in GOOD.items() if k != "type"}
    response = api.post("/api/v1/algo-orders", {**body, **ALGO}, content_type=JSON)
    assert response.status_code == 503 and response.json()["code"] == "SERVICE_UNAVAILABLE"
    assert REASON in response.json()["message"]
    assert AlgoOrder.objects.count() == 0
