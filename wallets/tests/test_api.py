"""Spec 06 through the trader API: owner-scoped objects, clear error codes, cursor pagination, schema."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.core import mail
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from wallets.tests.conftest import fund, outside_address, totp_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def api():
    def _client(user):
        client = APIClient()
        client.force_authenticate(user)
        return client

    return _client


def test_balances_and_logs_come_from_the_ledger(api, trader):
    fund(trader, "150.25")
    body = api(trader).get("/api/v1/wallet").json()
    assert body["total_balance"] == "150.250000" and body["available_balance"] == "150.250000"
    assert body["accounts"] == [{"kind": "cash", "sub": "", "asset": "USDC", "balance": "150.250000"}]
    logs = api(trader).get("/api/v1/balance-logs").json()
    assert logs["results"][0]["after"] == "150.250000" and "next" in logs


def test_a_withdrawal_through_the_api_from_request_to_email_confirmation(
    api, trader, django_capture_on_commit_callbacks
):
    fund(trader, "500")
    client = api(trader)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/api/v1/withdrawals",
            {
                "chain": "TRON",
                "asset": "USDT",
                "address": outside_address("TRON", "api"),
                "amount": "100",
                "totp_code": totp_for(trader),
            },
            format="json",
        )
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "AWAITING_CONFIRMATION"
    token = re.search(r"token=([\w\-]+)", mail.outbox[-1].body).group(1)
    with django_capture_on_commit_callbacks(execute=False):
        confirmed = APIClient().post("/api/v1/withdrawals/confirm", {"token": token}, format="json")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "APPROVED"
    again = APIClient().post("/api/v1/withdrawals/confirm", {"token": token}, format="json")
    assert again.status_code == 401 and again.json()["code"] == "INVALID_TOKEN"
    listing = client.get("/api/v1/withdrawals").json()
    assert [w["amount"] for w in listing["results"]] == ["100.000000"]


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"amount": "-1"}, "INVALID_AMOUNT"),
        ({"amount": "1.1234567"}, "INVALID_AMOUNT"),
        ({"chain": "BTC"}, "UNKNOWN_CHAIN"),
        ({"asset": "DAI"}, "UNKNOWN_ASSET"),
        ({"address": "not-an-address"}, "INVALID_ADDRESS"),
        ({"totp_code": "999999"}, "INVALID_OTP"),
        ({"amount": None}, "VALIDATION_ERROR"),
    ],
)
def test_bad_withdrawal_input_gets_a_clear_error_code(api, trader, change, code):
    fund(trader, "500")
    body = {
        "chain": "ETH",
        "asset": "USDC",
        "address": outside_address("ETH", "api"),
        "amount": "100",
        "totp_code": totp_for(trader),
    }
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    response = api(trader).post("/api/v1/withdrawals", body, format="json")
    assert response.status_code in (400, 403), response.json()
    assert response.json()["code"] == code
    assert api(trader).get("/api/v1/wallet").json()["available_balance"] == "500.000000"


def test_another_users_objects_are_not_found(api, trader, make_trader, django_capture_on_commit_callbacks):
    fund(trader, "500")
    with django_capture_on_commit_callbacks(execute=True):
        created = api(trader).post(
            "/api/v1/withdrawals",
            {
                "chain": "ETH",
                "asset": "USDC",
                "address": outside_address("ETH", "o"),
                "amount": "50",
                "totp_code": totp_for(trader),
            },
            format="json",
        )
    withdrawal_id = created.json()["id"]
    entry = api(trader).post(
        "/api/v1/withdrawal-addresses",
        {"chain": "ETH", "address": outside_address("ETH", "o"), "label": "mine"},
        format="json",
    )
    outsider = api(make_trader())
    assert outsider.get(f"/api/v1/withdrawals/{withdrawal_id}").status_code == 404
    assert outsider.post(f"/api/v1/withdrawals/{withdrawal_id}/cancel").json()["code"] == "NOT_FOUND"
    assert outsider.delete(f"/api/v1/withdrawal-addresses/{entry.json()['id']}").status_code == 404
    assert outsider.get("/api/v1/withdrawals").json()["results"] == []
    assert api(trader).get(f"/api/v1/withdrawals/{withdrawal_id}").status_code == 200


def test_whitelist_mode_allows_only_address_book_entries_older_than_24h(api, trader):
    from datetime import timedelta

    from django.utils import timezone

    from wallets.models import WithdrawalAddress

    fund(trader, "500")
    client = api(trader)
    address = outside_address("SOL", "book")
    assert (
        client.post(
            "/api/v1/withdrawal-addresses",
            {"chain": "SOL", "address": address, "label": "ledger"},
            format="json",
        ).status_code
        == 201
    )
    assert client.post(
        "/api/v1/withdrawal-addresses/whitelist",
        {"enabled": True, "totp_code": totp_for(trader)},
        format="json",
    ).json() == {"whitelist_only": True}
    body = {"chain": "SOL", "asset": "USDC", "address": address, "amount": "20"}
    response = client.post("/api/v1/withdrawals", {**body, "totp_code": totp_for(trader)}, format="json")
    assert response.json()["code"] == "ADDRESS_NOT_WHITELISTED"  # new entry: usable after 24 h
    WithdrawalAddress.objects.filter(user=trader).update(usable_at=timezone.now() - timedelta(seconds=1))
    response = client.post("/api/v1/withdrawals", {**body, "totp_code": totp_for(trader)}, format="json")
    assert response.status_code == 201
    other = {**body, "address": outside_address("SOL", "elsewhere"), "totp_code": totp_for(trader)}
    assert (
        client.post("/api/v1/withdrawals", other, format="json").json()["code"] == "ADDRESS_NOT_WHITELISTED"
    )


def test_deposit_addresses_and_deposits_endpoints(api, trader):
    client = api(trader)
    first = client.post("/api/v1/deposit-addresses", {"chain": "ETH"}, format="json").json()
    assert (
        client.post("/api/v1/deposit-addresses", {"chain": "ETH"}, format="json").json()["address"]
        == first["address"]
    )
    assert (
        client.post("/api/v1/deposit-addresses", {"chain": "XRP"}, format="json").json()["code"]
        == "UNKNOWN_CHAIN"
    )
    assert [a["chain"] for a in client.get("/api/v1/deposit-addresses").json()["results"]] == ["ETH"]
    assert client.get("/api/v1/deposits").json()["results"] == []


def test_the_money_endpoints_are_in_the_openapi_schema():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path in (
        "/api/v1/wallet",
        "/api/v1/withdrawals",
        "/api/v1/withdrawals/confirm",
        "/api/v1/deposits",
        "/api/v1/withdrawal-addresses",
    ):
        assert path in schema["paths"], path
    assert Decimal  # amounts are strings in the API (COERCE_DECIMAL_TO_STRING)
