"""Restart recovery: new orders wait (503 with the reason) until the start-up checks pass; reductions
are never blocked; the gate command opens it and reports how long that took."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from conftest import PASSWORD
from core.platform.state import platform_ready, platform_ready_set
from trading.tests.conftest import hl_meta, markets  # noqa: F401 - the markets an order is checked against

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(make_trader: Any, markets: None) -> Client:  # noqa: F811
    trader = make_trader()
    client = Client()
    token = client.post(
        "/api/v1/auth/login", {"email": trader.email, "password": PASSWORD}, content_type="application/json"
    ).json()["access"]
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def test_new_orders_are_refused_with_the_reason_until_the_platform_is_ready(api: Client) -> None:
    platform_ready_set(
        ready=False, reason="The platform is starting: resyncing with Hyperliquid and reconciling."
    )
    response = api.post(
        "/api/v1/orders",
        {"symbol": "BTC", "side": "BUY", "type": "MARKET", "size": "0.01"},
        content_type="application/json",
    )
    assert response.status_code == 503
    assert response.json()["code"] == "SERVICE_UNAVAILABLE" and "resyncing" in response.json()["message"]
    # a reduction is never blocked by the gate (it fails later here only because there is no position)
    response = api.post(
        "/api/v1/orders",
        {"symbol": "BTC", "side": "SELL", "type": "MARKET", "size": "0.01", "reduce_only": True},
        content_type="application/json",
    )
    assert response.json()["code"] != "SERVICE_UNAVAILABLE"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"symbol": "NOPE", "side": "BUY", "type": "MARKET", "size": "0.01"}, "UNKNOWN_SYMBOL"),
        ({"symbol": "BTC", "side": "BUY", "type": "MARKET", "size": "0.0000001"}, "INVALID_SIZE"),
        ({"symbol": "BTC", "side": "BUY", "type": "LIMIT", "size": "0.01"}, "INVALID_PRICE"),
    ],
)
def test_while_the_gate_is_closed_a_malformed_order_is_still_the_clients_error(
    api: Client, body: dict[str, str], code: str
) -> None:
    platform_ready_set(ready=False, reason="reconciliation critical: exposure")
    response = api.post("/api/v1/orders", body, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == code, response.json()


def test_the_gate_command_opens_the_platform_when_the_checks_pass(settings: Any) -> None:
    settings.PLATFORM_READY_CHECKS = ["risk.reconciliation.startup_check"]
    platform_ready_set(ready=False, reason="starting")
    out = StringIO()
    call_command("platform_ready", "--once", stdout=out)
    assert platform_ready().ready
    assert "platform ready: serving" in out.getvalue()


def test_a_blocking_check_keeps_the_gate_closed(settings: Any, monkeypatch: Any) -> None:
    from core.platform.management.commands import platform_ready as command

    settings.PLATFORM_READY_CHECKS = ["core.platform.tests.test_recovery_gate.failing_check"]
    ok, reason, _details = command.run_checks()
    assert not ok and reason == "ledger does not balance"


def failing_check() -> tuple[bool, str]:
    return False, "ledger does not balance"
