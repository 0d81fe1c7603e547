"""Fifty concurrent orders from one user never overdraw; the API is owner-scoped and shows no route."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from conftest import PASSWORD
from core.errors import ApplicationError
from trading.models import Order, Position
from trading.orders.input import order_input
from trading.orders.place import order_place
from wallets.ledger import AccountRef, account_balance
from wallets.models import AccountKind

D = Decimal


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_orders_from_one_user_never_overdraw(
    make_trader: Any, fund: Any, set_quote: Any, internalization_on: None
) -> None:
    trader = make_trader()
    fund(trader, "1000")  # room for about 11 orders of 0.01 BTC at 10x isolated (80 IM + fee each)
    set_quote("BTC", "80000", bid="80000", ask="80000")
    outcomes: list[str] = []
    barrier = threading.Barrier(50)

    def worker(i: int) -> None:
        try:
            barrier.wait()
            order = order_place(
                user=trader,
                inp=order_input(
                    asset="BTC",
                    side="BUY",
                    order_type="MARKET",
                    size="0.01",
                    leverage=10,
                    margin_mode="ISOLATED",
                    client_order_id=f"c-{i}",
                ),
            )
            outcomes.append(order.status)
        except ApplicationError as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    filled = outcomes.count("FILLED")
    assert len(outcomes) == 50 and filled + outcomes.count("INSUFFICIENT_MARGIN") == 50
    per_order = D("80") + D("0.36")  # IM + taker fee
    assert filled == int(D("1000") // per_order)
    cash = account_balance(AccountRef.user(trader.pk, AccountKind.CASH))
    position = Position.objects.get(user=trader, status="OPEN")
    assert cash == D("1000") - per_order * filled and cash >= 0
    assert position.size == D("0.01") * filled and position.isolated_margin == D("80") * filled


@pytest.fixture
def api(trader: Any) -> Client:
    client = Client()
    token = client.post(
        "/api/v1/auth/login", {"email": trader.email, "password": PASSWORD}, content_type="application/json"
    ).json()["access"]
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


@pytest.mark.usefixtures("internalization_on")
def test_placing_through_the_api_returns_a_receipt_without_the_route(api: Client, set_quote: Any) -> None:
    set_quote("BTC", "80000")
    response = api.post(
        "/api/v1/orders",
        {
            "symbol": "btc",
            "side": "BUY",
            "type": "MARKET",
            "size": "0.01",
            "client_order_id": "r1",
            "margin_mode": "ISOLATED",
            "leverage": 20,
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "FILLED" and body["symbol"] == "BTC" and "route" not in body
    account = api.get("/api/v1/account").json()
    assert len(account["positions"]) == 1 and account["positions"][0]["liquidation_price"] is not None
    assert D(account["isolated_margin"]) == D("40.0005") and D(account["equity"]) > D(account["cash"])
    assert api.get("/api/v1/orders?symbol=BTC&status=FILLED").json()["results"][0]["id"] == body["id"]
    assert api.get("/api/v1/fills").json()["results"][0]["order_id"] == body["id"]


@pytest.mark.usefixtures("internalization_on")
def test_errors_have_stable_codes_and_http_statuses(api: Client, set_quote: Any) -> None:
    set_quote("BTC", "80000")
    cases = [
        ({"symbol": "BTC", "side": "BUY", "type": "MARKET", "size": "0.0000001"}, 400, "INVALID_SIZE"),
        ({"symbol": "BTC", "side": "BUY", "type": "MARKET", "size": "0.0001"}, 400, "MIN_NOTIONAL"),
        ({"symbol": "BTC", "side": "HOLD", "type": "MARKET", "size": "1"}, 400, "VALIDATION_ERROR"),
        ({"symbol": "BTC", "side": "BUY", "type": "MARKET", "size": "1"}, 503, "NO_ROUTE"),
    ]
    for body, status, code in cases:
        response = api.post("/api/v1/orders", body, content_type="application/json")
        assert (response.status_code, response.json()["code"]) == (status, code), body


@pytest.mark.usefixtures("internalization_on")
def test_another_users_order_and_position_are_invisible(
    api: Client, make_trader: Any, fund: Any, set_quote: Any
) -> None:
    set_quote("BTC", "80000")
    other = make_trader()
    fund(other, "10000")
    order = order_place(
        user=other, inp=order_input(asset="BTC", side="BUY", order_type="MARKET", size="0.01")
    )
    position = Position.objects.get(user=other)
    assert api.get(f"/api/v1/orders/{order.pk}").status_code == 404
    assert api.post(f"/api/v1/orders/{order.pk}/cancel").status_code == 404
    assert (
        api.post(f"/api/v1/positions/{position.pk}/close", {}, content_type="application/json").status_code
        == 404
    )
    assert (
        api.post(
            f"/api/v1/positions/{position.pk}/margin",
            {"amount": "1", "idempotency_key": "x"},
            content_type="application/json",
        ).status_code
        == 404
    )
    assert api.get("/api/v1/orders").json()["results"] == []
    assert Order.objects.get(pk=order.pk).status == "FILLED"


def test_a_read_only_api_key_cannot_place_orders(trader: Any, set_quote: Any) -> None:
    import json
    import time

    from core.accounts import hmac_auth
    from core.accounts.api_keys import api_key_create

    key, secret = api_key_create(user=trader, label="ro", permissions=["read"])
    body = json.dumps({"symbol": "BTC", "side": "BUY", "type": "MARKET", "size": "0.01"}).encode()
    ts = str(int(time.time() * 1000))
    sig = hmac_auth.sign(secret, timestamp=ts, method="POST", path="/api/v1/orders", body=body)
    response = Client().post(
        "/api/v1/orders",
        body,
        content_type="application/json",
        HTTP_X_XBIT_APIKEY=key.key_id,
        HTTP_X_XBIT_TIMESTAMP=ts,
        HTTP_X_XBIT_SIGNATURE=sig,
    )
    assert response.status_code == 403 and response.json()["code"] == "API_KEY_PERMISSION"
    assert not Order.objects.exists()


@pytest.mark.usefixtures("internalization_on")
def test_margin_used_by_cross_positions_is_not_withdrawable(trader: Any, set_quote: Any) -> None:
    from trading.account import withdrawable_for
    from wallets.selectors import wallet_get

    set_quote("BTC", "80000", bid="80000", ask="80000")
    order_place(
        user=trader, inp=order_input(asset="BTC", side="BUY", order_type="MARKET", size="0.1", leverage=2)
    )
    # IM at mark = 0.1 × 80,000 / 2 = 4,000 stays behind the position
    cash = account_balance(AccountRef.user(trader.pk, AccountKind.CASH))
    assert withdrawable_for(trader.pk) == cash - D("4000")
    assert wallet_get(user_id=trader.pk).cross_margin_used == D("4000")
    # an unrealized profit is never withdrawable
    set_quote("BTC", "90000", bid="90000", ask="90000")
    assert withdrawable_for(trader.pk) == cash - D("4500")


def test_list_endpoints_document_their_cursor_envelope_and_refuse_a_non_integer_order_id(
    api: Client,
) -> None:
    """Found by `make fuzz`: the schema said a bare array (the body is {next, previous, results}), and a
    non-integer ``order_id`` filter was a 500."""
    schema = api.get("/api/schema/?format=json").json()
    for path in ("/api/v1/orders", "/api/v1/fills"):
        body = schema["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        ref = body["$ref"].rsplit("/", 1)[-1]
        assert {"next", "previous", "results"} <= set(schema["components"]["schemas"][ref]["properties"])
    response = api.get("/api/v1/fills?order_id=abc")
    assert response.status_code == 400 and response.json()["code"] == "VALIDATION_ERROR"
    assert api.get("/api/v1/fills?order_id=1").status_code == 200
