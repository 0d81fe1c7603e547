"""Issue #17, finding 4 (spec 08: rate limits per key and per IP, Redis-backed, atomic). Every API answer
tells the client its budget (``RateLimit-*`` headers); beyond it the answer is 429 ``RATE_LIMITED`` with
``Retry-After``. Order placement and reads have separate budgets; a budget is counted per API key, per
user (all of a user's keys and sessions) and per client address. The schema documents all of it."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from conftest import PASSWORD
from core.accounts import hmac_auth
from core.accounts.api_keys import api_key_create

pytestmark = pytest.mark.django_db

ROOMY = {"key": [1000, 60], "user": [1000, 60], "ip": [1000, 60]}


def limits(settings: Any, **budgets: dict[str, list[float]]) -> None:
    settings.API_RATE_LIMITS = {"orders": dict(ROOMY), "reads": dict(ROOMY), "writes": dict(ROOMY)}
    for budget, scopes in budgets.items():
        settings.API_RATE_LIMITS[budget] = {**ROOMY, **scopes}
    settings.API_RATE_LIMITS_LIFTED = False


def signed(
    client: Client, key: Any, secret: str, method: str, path: str, body: bytes = b"", **extra: Any
) -> Any:
    timestamp = str(int(time.time() * 1000))
    signature = hmac_auth.sign(
        secret, timestamp=timestamp, method=method, path=path, query_string="", body=body
    )
    headers = {
        "HTTP_X_XBIT_APIKEY": key.key_id,
        "HTTP_X_XBIT_TIMESTAMP": timestamp,
        "HTTP_X_XBIT_SIGNATURE": signature,
    }
    if method == "GET":
        return client.get(path, **headers, **extra)
    return client.post(path, body, content_type="application/json", **headers, **extra)


def jwt_client(user: Any, ip: str = "127.0.0.1") -> Client:
    client = Client(REMOTE_ADDR=ip)
    token = client.post(
        "/api/v1/auth/login", {"email": user.email, "password": PASSWORD}, content_type="application/json"
    ).json()["access"]
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


def test_reads_beyond_a_keys_budget_are_429_with_retry_after(settings: Any, make_trader: Any) -> None:
    limits(settings, reads={"key": [3, 60]})
    key, secret = api_key_create(user=make_trader(), label="bot", permissions=["read", "trade"])
    client = Client()
    remaining = []
    for _ in range(3):
        response = signed(client, key, secret, "GET", "/api/v1/me")
        assert response.status_code == 200
        assert response["RateLimit-Limit"] == "3"
        remaining.append(int(response["RateLimit-Remaining"]))
        assert int(response["RateLimit-Reset"]) >= 1
    assert remaining == [2, 1, 0]
    refused = signed(client, key, secret, "GET", "/api/v1/me")
    assert refused.status_code == 429
    body = refused.json()
    assert body["code"] == "RATE_LIMITED"
    assert body["details"]["budget"] == "reads" and body["details"]["scope"] == "key"
    assert 1 <= int(refused["Retry-After"]) <= 20 and refused["RateLimit-Remaining"] == "0"


def test_order_placement_and_reads_have_separate_budgets(settings: Any, make_trader: Any) -> None:
    limits(settings, reads={"user": [2, 60]}, orders={"user": [2, 60]})
    client = jwt_client(make_trader())
    order = {"symbol": "BTC", "side": "BUY", "type": "MARKET", "size": "0.001"}
    assert [client.get("/api/v1/me").status_code for _ in range(3)] == [200, 200, 429]
    placed = [
        client.post("/api/v1/orders", order, content_type="application/json").status_code for _ in range(3)
    ]
    assert 429 not in placed[:2] and placed[2] == 429, placed
    cancel = client.post("/api/v1/orders/999999/cancel")
    assert cancel.status_code == 429 and cancel.json()["details"]["budget"] == "orders"
    assert client.get("/api/v1/orders").status_code == 429  # a read: the reads budget is spent


def test_one_address_shares_its_budget_across_users(settings: Any, make_trader: Any) -> None:
    limits(settings, reads={"ip": [4, 60]})
    alice, bob = jwt_client(make_trader(), "192.0.2.10"), jwt_client(make_trader(), "192.0.2.10")
    statuses = [c.get("/api/v1/me").status_code for c in (alice, bob, alice, bob, alice)]
    assert statuses == [200, 200, 200, 200, 429]
    assert alice.get("/api/v1/me").json()["details"]["scope"] == "ip"
    elsewhere = jwt_client(make_trader(), "192.0.2.11")
    assert elsewhere.get("/api/v1/me").status_code == 200


def test_a_users_keys_and_sessions_share_the_user_budget(settings: Any, make_trader: Any) -> None:
    limits(settings, reads={"user": [3, 60]})
    trader = make_trader()
    first, first_secret = api_key_create(user=trader, label="a", permissions=["read"])
    second, second_secret = api_key_create(user=trader, label="b", permissions=["read"])
    session = jwt_client(trader)
    assert signed(Client(), first, first_secret, "GET", "/api/v1/me").status_code == 200
    assert signed(Client(), second, second_secret, "GET", "/api/v1/me").status_code == 200
    assert session.get("/api/v1/me").status_code == 200
    refused = signed(Client(), first, first_secret, "GET", "/api/v1/me")
    assert refused.status_code == 429 and refused.json()["details"]["scope"] == "user"


def test_the_budget_refills_over_its_period(settings: Any, make_trader: Any) -> None:
    limits(settings, reads={"user": [2, 1]})  # two a second
    client = jwt_client(make_trader())
    assert [client.get("/api/v1/me").status_code for _ in range(3)] == [200, 200, 429]
    time.sleep(0.6)  # one request's worth refilled
    assert client.get("/api/v1/me").status_code == 200


def test_anonymous_calls_count_against_the_address(settings: Any, db: Any) -> None:
    limits(settings, writes={"ip": [2, 60]})
    client = Client(REMOTE_ADDR="198.51.100.7")
    body = {"email": "nobody@xbit.test", "password": "wrong-password-1"}
    statuses = [
        client.post("/api/v1/auth/login", body, content_type="application/json").status_code for _ in range(3)
    ]
    assert statuses == [401, 401, 429]


def test_lifted_limits_still_answer_the_headers_and_never_refuse(settings: Any, make_trader: Any) -> None:
    limits(settings, reads={"user": [1, 60], "ip": [1, 60]})
    settings.API_RATE_LIMITS_LIFTED = True
    client = jwt_client(make_trader())
    for _ in range(5):
        response = client.get("/api/v1/me")
        assert response.status_code == 200 and "RateLimit-Limit" in response


def test_malformed_limits_stop_the_process() -> None:
    from django.core.exceptions import ImproperlyConfigured

    from core.rate_limit import parse_limits

    assert parse_limits('{"orders": {"key": [5, 1]}}')["orders"]["key"] == (5, 1.0)
    for bad in [
        '{"order": {"key": [5, 1]}}',
        '{"orders": {"device": [5, 1]}}',
        '{"orders": {"key": [0, 1]}}',
        "[1]",
        "{",
    ]:
        with pytest.raises(ImproperlyConfigured):
            parse_limits(bad)


def test_the_schema_documents_budgets_429_and_413() -> None:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    checked = 0
    for path, item in schema["paths"].items():
        if not path.startswith("/api/v1/"):
            continue
        for method, op in item.items():
            responses = op["responses"]
            where = f"{method.upper()} {path}"
            assert "429" in responses and "Retry-After" in responses["429"]["headers"], where
            assert "RATE_LIMITED" in responses["429"]["description"], where
            success = [r for status, r in responses.items() if status.startswith("2")]
            assert success, where
            for response in success:
                assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(
                    response.get("headers", {})
                ), where
            assert "400" in responses, f"{where}: a NUL character in the path or query is a 400"
            if "requestBody" in op:
                assert "413" in responses and "REQUEST_TOO_LARGE" in responses["413"]["description"], where
            checked += 1
    assert checked > 50


def test_the_demo_traders_fit_the_default_budgets() -> None:
    """``make run``'s traders (``simulate_traders --rate 3``, up to 20 of them, all from 127.0.0.1): an
    action is at most three requests (a read or two and an order), so the address spends ≤ 9 reads and
    ≤ 3 orders a second — well inside the address's sustained rates; a trader far less."""
    from core.rate_limit import DEFAULT_LIMITS

    def per_second(budget: str, scope: str) -> float:
        limit, period = DEFAULT_LIMITS[budget][scope]
        return limit / period

    actions_per_second, reads_per_action, orders_per_action = 3 * 1.5, 2, 1  # the rate's jitter: ×0.5–1.5
    assert actions_per_second * reads_per_action < per_second("reads", "ip") / 2
    assert actions_per_second * orders_per_action < per_second("orders", "ip") / 2
    assert actions_per_second * orders_per_action < per_second("orders", "user") / 2  # one busy trader
