"""Staff sign-in: password then TOTP, enrolment on first sign-in, lockout, and no page without OTP."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from conftest import PASSWORD, current_totp, sign_in
from core.accounts.models import SecurityEvent
from core.accounts.roles import Role

pytestmark = pytest.mark.django_db


def test_password_alone_never_reaches_a_console_page(make_staff: Any) -> None:
    user = make_staff(Role.SUPER_ADMIN)
    client = Client()
    response = client.post("/login/", {"email": user.email, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"].endswith("/otp/")
    for url in ["/", "/admin/"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert "/otp/" in response["Location"] or "/login/" in response["Location"]


def test_correct_totp_opens_the_overview_and_records_a_login(make_staff: Any) -> None:
    user = make_staff(Role.OPERATIONS)
    client = sign_in(Client(), user)
    response = client.get("/")
    assert response.status_code == 200
    assert b"Overview" in response.content
    assert SecurityEvent.objects.filter(user=user, kind=SecurityEvent.Kind.LOGIN).exists()


def test_wrong_totp_is_refused_and_counted(make_staff: Any) -> None:
    user = make_staff(Role.OPERATIONS)
    client = Client()
    client.post("/login/", {"email": user.email, "password": PASSWORD})
    device = TOTPDevice.objects.get(user=user)
    wrong = f"{(int(current_totp(device)) + 1) % 1_000_000:06d}"
    response = client.post("/otp/", {"token": wrong})
    assert response.status_code == 200 and b"not valid" in response.content
    assert client.get("/").status_code == 302
    assert SecurityEvent.objects.filter(user=user, kind=SecurityEvent.Kind.OTP_FAILED).count() == 1


def test_first_sign_in_enrols_a_device_with_a_qr_code(make_staff: Any) -> None:
    user = make_staff(Role.SUPPORT, with_device=False)
    client = Client()
    client.post("/login/", {"email": user.email, "password": PASSWORD})
    response = client.get("/otp/")
    assert b"<svg" in response.content and b"Set up two-factor" in response.content
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    response = client.post("/otp/", {"token": current_totp(device)})
    assert response.status_code == 302
    device.refresh_from_db()
    assert device.confirmed
    assert client.get("/").status_code == 200
    assert SecurityEvent.objects.filter(user=user, kind=SecurityEvent.Kind.OTP_ENROLLED).exists()


def test_repeated_wrong_passwords_lock_the_account(make_staff: Any, settings: Any) -> None:
    settings.LOGIN_MAX_FAILURES = 3
    user = make_staff(Role.RISK_MANAGER)
    client = Client()
    for _ in range(3):
        response = client.post("/login/", {"email": user.email, "password": "wrong-password"})
        assert b"Wrong email or password" in response.content
    response = client.post("/login/", {"email": user.email, "password": PASSWORD})
    assert b"Too many failed attempts" in response.content
    from core.accounts.lockout import seconds_locked

    assert seconds_locked(email=user.email, ip="127.0.0.1") > 0  # this address's sign-ins (issue #17)
    assert SecurityEvent.objects.filter(user=user, kind=SecurityEvent.Kind.LOCKED).exists()


def test_a_trader_cannot_sign_in_to_the_console(make_trader: Any) -> None:
    trader = make_trader()
    response = Client().post("/login/", {"email": trader.email, "password": PASSWORD})
    assert response.status_code == 200 and b"Wrong email or password" in response.content


def test_unknown_email_gets_the_same_answer_as_a_wrong_password(db: Any) -> None:
    response = Client().post("/login/", {"email": "nobody@xbit.test", "password": "whatever-123"})
    assert b"Wrong email or password" in response.content


def test_open_redirect_is_refused_after_sign_in(make_staff: Any) -> None:
    user = make_staff(Role.SUPPORT)
    client = Client()
    client.post("/login/", {"email": user.email, "password": PASSWORD, "next": "https://evil.example/"})
    device = TOTPDevice.objects.get(user=user)
    response = client.post("/otp/", {"token": current_totp(device)})
    assert response["Location"] == "/"
