"""Helpers for the trader-account suite: a JSON API client per persona, codes read from the emails
that were actually sent (locmem), current TOTP codes, Ethereum wallets that sign SIWE messages."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.core import mail
from django.test import Client, TestCase
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from eth_account import Account
from eth_account.messages import encode_defunct

from conftest import PASSWORD

NEW_PASSWORD = "velvet-harbour-lantern-42"


class Api:
    """A JSON client that remembers its bearer token (one device: a fixed User-Agent)."""

    def __init__(self, user_agent: str = "pytest-browser/1.0", ip: str = "127.0.0.1") -> None:
        self.client = Client(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=ip)
        self.access: str | None = None
        self.refresh: str | None = None

    def _auth(self) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.access}"} if self.access else {}

    # Emails go out on commit; the test's own transaction never commits, so run them per request.
    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        with TestCase.captureOnCommitCallbacks(execute=True):
            return self.client.post(
                "/api/v1/" + path, body or {}, content_type="application/json", **self._auth()
            )

    def get(self, path: str) -> Any:
        with TestCase.captureOnCommitCallbacks(execute=True):
            return self.client.get("/api/v1/" + path, **self._auth())

    def remember(self, response: Any) -> Any:
        assert response.status_code == 200, response.content
        self.access, self.refresh = response.json()["access"], response.json()["refresh"]
        return response

    def login(self, email: str, password: str = PASSWORD, **extra: Any) -> Any:
        response = self.post("auth/login", {"email": email, "password": password, **extra})
        if response.status_code == 200:
            self.remember(response)
        return response


@pytest.fixture
def api() -> Api:
    return Api()


@pytest.fixture
def api_as(make_trader: Callable[..., Any]) -> Callable[..., Api]:
    """A signed-in client for a given (or new) trader."""

    def _as(user: Any = None, **kwargs: Any) -> Api:
        user = user or make_trader()
        client = Api(**kwargs)
        client.login(user.email)
        client.user = user  # type: ignore[attr-defined]
        return client

    return _as


def code_from_mail(to: str | None = None) -> str:
    messages = [m for m in mail.outbox if to is None or to in m.to]
    assert messages, f"no email to {to}"
    match = re.search(r"\b(\d{6})\b", messages[-1].body)
    assert match, messages[-1].body
    return match.group(1)


def totp_now(user: Any, *, confirmed: bool = True) -> str:
    """A code the device accepts now (its replay guard and throttle reset: tests verify often)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=confirmed).order_by("-id").first()
    assert device is not None
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1, throttling_failure_count=0)
    device.refresh_from_db()
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"


class Wallet:
    def __init__(self, seed: int) -> None:
        self.account = Account.from_key(seed.to_bytes(32, "big"))
        self.address: str = self.account.address

    def sign(self, message: str) -> str:
        signed = Account.sign_message(encode_defunct(text=message), private_key=self.account.key)
        return "0x" + bytes(signed.signature).hex()


@pytest.fixture
def wallet() -> Wallet:
    return Wallet(0xA11CE)


@pytest.fixture
def other_wallet() -> Wallet:
    return Wallet(0xB0B)


def enable_2fa(client: Api) -> list[str]:
    """Enrol and confirm an authenticator through the API; returns the recovery codes."""
    assert client.post("account/security/2fa/totp").status_code == 200
    response = client.post(
        "account/security/2fa/totp/confirm", {"code": totp_now(client.user, confirmed=False)}
    )  # type: ignore[attr-defined]
    assert response.status_code == 200, response.content
    return response.json()["recovery_codes"]
