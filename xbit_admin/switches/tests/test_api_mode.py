"""api_mode (spec 10): REDUCE_ONLY lets a trader close, cancel, query and withdraw but refuses opening
orders with REDUCE_ONLY; MAINTENANCE answers 503 with the operator's message while the console and the
ops API keep working."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from conftest import PASSWORD  # the root conftest's personas
from core.accounts.roles import Role
from xbit_admin.switches.services import switch_set

ORDER = {
    "symbol": "BTC",
    "side": "BUY",
    "type": "MARKET",
    "size": "0.01",
    "margin_mode": "ISOLATED",
    "leverage": 20,
}


@pytest.fixture
def api(trader: Any) -> Client:
    client = Client()
    token = client.post(
        "/api/v1/auth/login", {"email": trader.email, "password": PASSWORD}, content_type="application/json"
    ).json()["access"]
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


@pytest.mark.usefixtures("internalization_on")
def test_reduce_only_refuses_opens_but_lets_a_trader_close_cancel_query_and_withdraw(
    api: Client, set_quote: Any, make_staff: Any
) -> None:
    set_quote("BTC", "80000")
    opened = api.post("/api/v1/orders", {**ORDER, "client_order_id": "o1"}, content_type="application/json")
    assert opened.status_code == 201, opened.content
    switch_set(
        name="api_mode", value="REDUCE_ONLY", acting_user=make_staff(Role.SUPER_ADMIN), reason="level 2"
    )

    refused = api.post("/api/v1/orders", {**ORDER, "client_order_id": "o2"}, content_type="application/json")
    assert refused.status_code == 403 and refused.json()["code"] == "REDUCE_ONLY"
    assert "reduce_only" in refused.json()["message"]

    assert api.get("/api/v1/account").status_code == 200  # queries
    position_id = api.get("/api/v1/positions").json()[0]["id"]
    closing = api.post(
        "/api/v1/orders",
        {**ORDER, "side": "SELL", "reduce_only": True, "client_order_id": "c1", "size": "0.005"},
        content_type="application/json",
    )
    assert closing.status_code == 201 and closing.json()["status"] == "FILLED", closing.content
    closed = api.post(f"/api/v1/positions/{position_id}/close", {}, content_type="application/json")
    assert closed.status_code in (200, 201), closed.content
    # withdrawals reach their own validation (never refused by the API mode)
    withdrawal = api.post("/api/v1/withdrawals", {}, content_type="application/json")
    assert withdrawal.json().get("code") not in ("REDUCE_ONLY", "MAINTENANCE")


@pytest.mark.usefixtures("internalization_on")
def test_reduce_only_refuses_leverage_changes_and_margin_removal_but_lets_margin_in(
    api: Client, set_quote: Any, make_staff: Any
) -> None:
    set_quote("BTC", "80000")
    opened = api.post("/api/v1/orders", {**ORDER, "client_order_id": "m1"}, content_type="application/json")
    assert opened.status_code == 201, opened.content
    position_id = api.get("/api/v1/positions").json()[0]["id"]
    margin_before = api.get("/api/v1/positions").json()[0]["isolated_margin"]
    switch_set(name="api_mode", value="REDUCE_ONLY", acting_user=make_staff(Role.SUPER_ADMIN), reason="l2")

    leverage = api.post(
        "/api/v1/leverage",
        {"symbol": "BTC", "margin_mode": "ISOLATED", "leverage": 40},
        content_type="application/json",
    )
    assert leverage.status_code == 403 and leverage.json()["code"] == "REDUCE_ONLY"
    assert "changing leverage" in leverage.json()["message"]
    for amount in ("-1", "abc", None):
        body = {"idempotency_key": f"out-{amount}"} | ({} if amount is None else {"amount": amount})
        out = api.post(f"/api/v1/positions/{position_id}/margin", body, content_type="application/json")
        assert out.status_code == 403 and out.json()["code"] == "REDUCE_ONLY", (amount, out.content)
    assert api.get("/api/v1/positions").json()[0]["isolated_margin"] == margin_before  # nothing moved

    added = api.post(
        f"/api/v1/positions/{position_id}/margin",
        {"amount": "5", "idempotency_key": "in-1"},
        content_type="application/json",
    )
    assert added.status_code == 200, added.content
    assert added.json()["isolated_margin"] != margin_before


def test_maintenance_answers_503_with_the_message_while_the_console_works(
    api: Client, console_as: Any
) -> None:
    console = console_as(Role.SUPER_ADMIN)
    switch_set(
        name="api_maintenance_message",
        value="Back at 14:00 UTC.",
        acting_user=console.staff_user,
        reason="db",
    )
    switch_set(
        name="api_mode", value="MAINTENANCE", acting_user=console.staff_user, reason="database at risk"
    )

    for response in (
        api.get("/api/v1/account"),
        api.post("/api/v1/orders", ORDER, content_type="application/json"),
    ):
        assert response.status_code == 503
        assert response.json() == {"code": "MAINTENANCE", "message": "Back at 14:00 UTC.", "details": {}}
    assert console.get("/").status_code == 200
    assert console.get("/switches/").status_code == 200
    assert api.get("/api/v1/ops/routing").json().get("code") != "MAINTENANCE"

    switch_set(name="api_mode", value="OPEN", acting_user=console.staff_user, reason="done")
    assert api.get("/api/v1/account").status_code == 200
