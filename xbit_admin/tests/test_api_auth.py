"""Trader API authentication: HMAC-signed API keys (spec 08) and JWT with rotating refresh tokens."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.test import Client

from conftest import PASSWORD
from core.accounts import hmac_auth
from core.accounts.api_keys import api_key_create
from core.accounts.models import ApiKey, RefreshToken, SecurityEvent

pytestmark = pytest.mark.django_db


def signed_get(
    client: Client,
    key: ApiKey,
    secret: str,
    path: str,
    *,
    query: str = "",
    ts: int | None = None,
    signature: str | None = None,
    window: str | None = None,
    **extra: Any,
) -> Any:
    timestamp = str(ts if ts is not None else int(time.time() * 1000))
    sig = signature or hmac_auth.sign(
        secret, timestamp=timestamp, method="GET", path=path, query_string=query
    )
    headers = {
        "HTTP_X_XBIT_APIKEY": key.key_id,
        "HTTP_X_XBIT_TIMESTAMP": timestamp,
        "HTTP_X_XBIT_SIGNATURE": sig,
    }
    if window is not None:
        headers["HTTP_X_XBIT_RECV_WINDOW"] = window
    return client.get(path + (f"?{query}" if query else ""), **headers, **extra)


@pytest.fixture
def key_and_secret(make_trader: Any) -> tuple[ApiKey, str]:
    return api_key_create(user=make_trader(), label="bot", permissions=["read"])


def test_a_correct_signature_is_accepted(key_and_secret: tuple[ApiKey, str]) -> None:
    key, secret = key_and_secret
    response = signed_get(Client(), key, secret, "/api/v1/me", query="b=2&a=1")
    assert response.status_code == 200, response.content
    assert response.json()["email"] == key.user.email


def test_a_wrong_signature_is_rejected(key_and_secret: tuple[ApiKey, str]) -> None:
    key, _secret = key_and_secret
    response = signed_get(Client(), key, "not-the-secret", "/api/v1/me")
    assert response.status_code == 401
    assert response.json()["code"] == "INVALID_SIGNATURE"


def test_a_signature_over_other_parameters_is_rejected(key_and_secret: tuple[ApiKey, str]) -> None:
    key, secret = key_and_secret
    timestamp = str(int(time.time() * 1000))
    sig = hmac_auth.sign(secret, timestamp=timestamp, method="GET", path="/api/v1/me", query_string="a=1")
    response = Client().get(
        "/api/v1/me?a=2",
        HTTP_X_XBIT_APIKEY=key.key_id,
        HTTP_X_XBIT_TIMESTAMP=timestamp,
        HTTP_X_XBIT_SIGNATURE=sig,
    )
    assert response.json()["code"] == "INVALID_SIGNATURE"


def test_an_expired_timestamp_is_rejected(key_and_secret: tuple[ApiKey, str]) -> None:
    key, secret = key_and_secret
    old = int(time.time() * 1000) - 6_000
    response = signed_get(Client(), key, secret, "/api/v1/me", ts=old)
    assert response.status_code == 401 and response.json()["code"] == "TIMESTAMP_EXPIRED"
    # a wider receive window (max 60 s) accepts the same age
    response = signed_get(Client(), key, secret, "/api/v1/me", ts=old, window="10000")
    assert response.status_code == 200


def test_a_future_timestamp_is_rejected(key_and_secret: tuple[ApiKey, str]) -> None:
    key, secret = key_and_secret
    response = signed_get(Client(), key, secret, "/api/v1/me", ts=int(time.time() * 1000) + 2_000)
    assert response.status_code == 401 and response.json()["code"] == "TIMESTAMP_IN_FUTURE"


def test_a_receive_window_above_the_maximum_is_rejected(key_and_secret: tuple[ApiKey, str]) -> None:
    key, secret = key_and_secret
    response = signed_get(Client(), key, secret, "/api/v1/me", window="60001")
    assert response.status_code == 401 and response.json()["code"] == "INVALID_SIGNATURE"


def test_a_replayed_request_is_rejected(key_and_secret: tuple[ApiKey, str]) -> None:
    key, secret = key_and_secret
    ts = int(time.time() * 1000)
    assert signed_get(Client(), key, secret, "/api/v1/me", ts=ts).status_code == 200
    response = signed_get(Client(), key, secret, "/api/v1/me", ts=ts)
    assert response.status_code == 401 and response.json()["code"] == "REPLAYED_REQUEST"


def test_a_revoked_key_is_rejected(key_and_secret: tuple[ApiKey, str]) -> None:
    key, secret = key_and_secret
    key.revoked_at = key.created_at
    key.save()
    response = signed_get(Client(), key, secret, "/api/v1/me")
    assert response.status_code == 401 and response.json()["code"] == "API_KEY_REVOKED"


def test_a_key_is_limited_to_its_permissions(key_and_secret: tuple[ApiKey, str]) -> None:
    key, secret = key_and_secret  # read only
    ts = str(int(time.time() * 1000))
    body = json.dumps({"permissions": ["read"]}).encode()
    sig = hmac_auth.sign(secret, timestamp=ts, method="POST", path="/api/v1/api-keys", body=body)
    response = Client().post(
        "/api/v1/api-keys",
        body,
        content_type="application/json",
        HTTP_X_XBIT_APIKEY=key.key_id,
        HTTP_X_XBIT_TIMESTAMP=ts,
        HTTP_X_XBIT_SIGNATURE=sig,
    )
    assert response.status_code == 403 and response.json()["code"] == "API_KEY_PERMISSION"


def test_an_ip_allow_list_is_enforced(make_trader: Any) -> None:
    key, secret = api_key_create(
        user=make_trader(), label="ip", permissions=["read"], ip_allowlist=["10.1.2.3"]
    )
    response = signed_get(Client(), key, secret, "/api/v1/me")
    assert response.status_code == 403 and response.json()["code"] == "IP_NOT_ALLOWED"
    response = signed_get(Client(), key, secret, "/api/v1/me", REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 200


def test_the_secret_is_stored_encrypted_and_shown_once(make_trader: Any) -> None:
    trader = make_trader()
    client = Client()
    tokens = client.post(
        "/api/v1/auth/login", {"email": trader.email, "password": PASSWORD}, content_type="application/json"
    ).json()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {tokens['access']}"}
    created = client.post(
        "/api/v1/api-keys",
        {"label": "x", "permissions": ["read", "trade"]},
        content_type="application/json",
        **auth,
    )
    assert created.status_code == 201
    secret = created.json()["secret"]
    row = ApiKey.objects.get(key_id=created.json()["key_id"])
    assert secret not in row.secret_encrypted
    listed = client.get("/api/v1/api-keys", **auth).json()
    assert "secret" not in json.dumps(listed)
    assert SecurityEvent.objects.filter(user=trader, kind=SecurityEvent.Kind.API_KEY_CREATED).exists()


def test_no_credentials_get_401_with_a_code(db: Any) -> None:
    response = Client().get("/api/v1/me")
    assert response.status_code == 401 and response.json()["code"] == "NOT_AUTHENTICATED"


def test_jwt_login_and_refresh_rotation(make_trader: Any) -> None:
    trader = make_trader()
    client = Client()
    pair = client.post(
        "/api/v1/auth/login", {"email": trader.email, "password": PASSWORD}, content_type="application/json"
    ).json()
    assert client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {pair['access']}").status_code == 200
    rotated = client.post(
        "/api/v1/auth/refresh", {"refresh": pair["refresh"]}, content_type="application/json"
    )
    assert rotated.status_code == 200
    assert rotated.json()["refresh"] != pair["refresh"]


def test_a_reused_refresh_token_revokes_its_whole_family(make_trader: Any) -> None:
    trader = make_trader()
    client = Client()
    pair = client.post(
        "/api/v1/auth/login", {"email": trader.email, "password": PASSWORD}, content_type="application/json"
    ).json()
    second = client.post(
        "/api/v1/auth/refresh", {"refresh": pair["refresh"]}, content_type="application/json"
    ).json()
    replay = client.post(
        "/api/v1/auth/refresh", {"refresh": pair["refresh"]}, content_type="application/json"
    )
    assert replay.status_code == 401 and replay.json()["code"] == "INVALID_TOKEN"
    # the legitimate latest token died with the family
    after = client.post(
        "/api/v1/auth/refresh", {"refresh": second["refresh"]}, content_type="application/json"
    )
    assert after.status_code == 401
    assert not RefreshToken.objects.filter(user=trader, revoked_at__isnull=True).exists()
    assert SecurityEvent.objects.filter(user=trader, kind=SecurityEvent.Kind.TOKEN_REUSE).exists()


def test_an_access_token_is_short_lived(settings: Any) -> None:
    assert settings.JWT_ACCESS_TTL.total_seconds() < 3600


def test_staff_cannot_use_the_trader_login(make_staff: Any) -> None:
    from core.accounts.roles import Role

    staff = make_staff(Role.SUPER_ADMIN)
    response = Client().post(
        "/api/v1/auth/login", {"email": staff.email, "password": PASSWORD}, content_type="application/json"
    )
    assert response.status_code == 401
