"""Issue #17, finding 6: a Content-Security-Policy on console pages, ``Cache-Control: no-store`` on pages
and answers with personal data, ``/metrics`` behind its token everywhere, demo TOTP secrets printed
once, the API's 404 in JSON even with DEBUG on."""

from __future__ import annotations

import base64
import hashlib
import io
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from conftest import PASSWORD
from core.accounts.roles import Role

pytestmark = pytest.mark.django_db


def _directives(header: str) -> dict[str, str]:
    return {part.strip().split(" ", 1)[0]: part.strip() for part in header.split(";") if part.strip()}


def test_console_pages_carry_a_content_security_policy(console_as: Any) -> None:
    for response in (Client().get("/login/"), console_as(Role.SUPPORT).get("/users/")):
        assert response.status_code == 200
        policy = _directives(response["Content-Security-Policy"])
        assert policy["default-src"] == "default-src 'self'"
        assert policy["script-src"] == "script-src 'self'"  # no inline script, no eval
        assert policy["object-src"] == "object-src 'none'"
        assert policy["frame-ancestors"] == "frame-ancestors 'none'"
        assert policy["base-uri"] == "base-uri 'none'"
        assert policy["form-action"] == "form-action 'self'"


def test_pages_and_answers_with_personal_data_are_not_stored(console_as: Any, make_trader: Any) -> None:
    trader = make_trader()
    support = console_as(Role.SUPPORT)
    for path in ("/users/", f"/users/{trader.pk}/"):
        response = support.get(path)
        assert response.status_code == 200, path
        assert "no-store" in response["Cache-Control"], path
    client = Client()
    token = client.post(
        "/api/v1/auth/login", {"email": trader.email, "password": PASSWORD}, content_type="application/json"
    ).json()["access"]
    response = client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]


def test_metrics_need_a_token_even_where_none_is_configured(settings: Any) -> None:
    settings.METRICS_BEARER_TOKEN = ""
    assert Client().get("/metrics").status_code == 401
    settings.METRICS_BEARER_TOKEN = "scrape-me"
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200


def test_an_unknown_api_path_answers_the_json_error_with_debug_on(settings: Any) -> None:
    settings.DEBUG = True
    response = Client().get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == "NOT_FOUND"


def test_seed_demo_prints_the_totp_secrets_once_when_it_creates_them(monkeypatch: Any, settings: Any) -> None:
    import base64

    from core.accounts.management.commands import seed_demo

    monkeypatch.setattr(seed_demo, "DEMO_SEEDERS", [])
    first, second = io.StringIO(), io.StringIO()
    call_command("seed_demo", stdout=first)
    secrets = [
        base64.b32encode(device.bin_key).decode().rstrip("=")
        for device in TOTPDevice.objects.filter(user__email__endswith="@xbit.local")
    ]
    assert len(secrets) == len(seed_demo.DEMO_STAFF)
    assert all(secret in first.getvalue() for secret in secrets)
    call_command("seed_demo", stdout=second)
    assert not any(secret in second.getvalue() for secret in secrets), second.getvalue()
    assert "make totp" in second.getvalue()


def test_demo_totp_secrets_do_not_follow_from_the_code(monkeypatch: Any, settings: Any) -> None:
    """The demo secrets were derived from SECRET_KEY, whose local default is in the repository."""
    from core.accounts.management.commands import seed_demo

    monkeypatch.setattr(seed_demo, "DEMO_SEEDERS", [])
    call_command("seed_demo", stdout=io.StringIO())
    keys = set(TOTPDevice.objects.filter(user__email__endswith="@xbit.local").values_list("key", flat=True))
    derived = {
        hashlib.sha256(f"xbit-demo-totp:{email}:{settings.SECRET_KEY}".encode()).hexdigest()[:40]
        for email, _role in seed_demo.DEMO_STAFF
    }
    assert not keys & derived


def test_a_device_made_from_the_old_derived_secret_gets_a_new_one_shown_once(
    monkeypatch: Any, settings: Any, make_staff: Any
) -> None:
    from core.accounts.management.commands import seed_demo

    monkeypatch.setattr(seed_demo, "DEMO_SEEDERS", [])
    call_command("seed_demo", stdout=io.StringIO())
    email = seed_demo.DEMO_STAFF[0][0]
    legacy = hashlib.sha256(f"xbit-demo-totp:{email}:{settings.SECRET_KEY}".encode()).hexdigest()[:40]
    TOTPDevice.objects.filter(user__email=email).update(key=legacy)
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    device = TOTPDevice.objects.get(user__email=email)
    assert device.key != legacy
    assert base64.b32encode(device.bin_key).decode().rstrip("=") in out.getvalue()
