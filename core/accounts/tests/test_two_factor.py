"""TOTP for traders: enrolment with a QR code, 10 single-use recovery codes, required at sign-in and
for API keys once enabled, disabled only with password + code; a 2FA change starts the 24-hour
withdrawal lock."""

from __future__ import annotations

import base64
import importlib
import re
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from conftest import PASSWORD
from core.accounts.models import SecurityEvent
from core.accounts.tests.conftest import Api, enable_2fa, totp_now

pytestmark = pytest.mark.django_db


def test_enrolment_returns_a_qr_code_and_an_otpauth_uri(api_as: Any) -> None:
    trader = api_as()
    response = trader.post("account/security/2fa/totp")
    assert response.status_code == 200
    body = response.json()
    uri = urlsplit(body["otpauth_uri"])
    assert uri.scheme == "otpauth" and uri.netloc == "totp"
    assert parse_qs(uri.query)["secret"] == [body["secret"]] and parse_qs(uri.query)["issuer"] == ["XBIT"]
    assert body["qr_svg_data_uri"].startswith("data:image/svg+xml;base64,")
    svg = base64.b64decode(body["qr_svg_data_uri"].split(",", 1)[1])
    assert b"<svg" in svg
    # nothing is enforced until the code is confirmed
    assert not TOTPDevice.objects.filter(user=trader.user, confirmed=True).exists()
    assert trader.get("account/security").json()["two_factor_enabled"] is False


def test_confirming_enables_2fa_with_ten_single_use_recovery_codes(api_as: Any) -> None:
    trader = api_as()
    trader.post("account/security/2fa/totp")
    wrong = trader.post("account/security/2fa/totp/confirm", {"code": "000000"})
    assert wrong.json()["code"] == "INVALID_OTP"
    codes = enable_2fa_after_start(trader)
    assert len(codes) == 10 and len(set(codes)) == 10
    overview = trader.get("account/security").json()
    assert overview["two_factor_enabled"] is True and overview["recovery_codes_left"] == 10
    assert overview["withdrawal_lock_until"] is not None
    assert SecurityEvent.objects.filter(user=trader.user, kind="otp_enrolled").exists()
    assert any("Two-factor authentication was enabled" in m.body for m in mail.outbox)


def enable_2fa_after_start(trader: Api) -> list[str]:
    response = trader.post(
        "account/security/2fa/totp/confirm", {"code": totp_now(trader.user, confirmed=False)}
    )
    assert response.status_code == 200, response.content
    return response.json()["recovery_codes"]


def test_once_enabled_sign_in_needs_the_code_and_a_wrong_one_counts_toward_lockout(api_as: Any) -> None:
    trader = api_as()
    enable_2fa(trader)
    email = trader.user.email
    assert Api().login(email).json()["code"] == "OTP_REQUIRED"
    wrong = Api().login(email, otp_code="000000")
    assert wrong.json()["code"] == "INVALID_OTP"
    trader.user.refresh_from_db()
    assert trader.user.failed_login_count == 1
    assert Api().login(email, otp_code=totp_now(trader.user)).status_code == 200


def test_a_recovery_code_signs_in_once(api_as: Any) -> None:
    trader = api_as()
    codes = enable_2fa(trader)
    code = codes[0].upper()[:4] + "-" + codes[0].upper()[4:]  # typed the way it is printed
    assert Api().login(trader.user.email, otp_code=code).status_code == 200
    assert Api().login(trader.user.email, otp_code=codes[0]).json()["code"] == "INVALID_OTP"
    assert StaticToken.objects.filter(device__user=trader.user).count() == 9
    assert SecurityEvent.objects.filter(user=trader.user, kind="recovery_code_used").exists()


def test_api_key_creation_needs_the_code_once_2fa_is_enabled(api_as: Any) -> None:
    trader = api_as()
    assert trader.post("api-keys", {"permissions": ["read"]}).status_code == 201, "no 2FA, no code needed"
    enable_2fa(trader)
    missing = trader.post("api-keys", {"permissions": ["read"]})
    assert missing.status_code == 403 and missing.json()["code"] == "OTP_REQUIRED"
    wrong = trader.post("api-keys", {"permissions": ["read"], "otp_code": "000000"})
    assert wrong.json()["code"] == "INVALID_OTP"
    ok = trader.post("api-keys", {"permissions": ["read"], "otp_code": totp_now(trader.user)})
    assert ok.status_code == 201 and ok.json()["secret"]


def test_disabling_needs_the_password_and_a_code(api_as: Any) -> None:
    trader = api_as()
    codes = enable_2fa(trader)
    wrong_password = trader.post(
        "account/security/2fa/disable", {"password": "nope-nope-nope", "code": totp_now(trader.user)}
    )
    assert wrong_password.status_code == 403 and wrong_password.json()["code"] == "INVALID_CREDENTIALS"
    wrong_code = trader.post("account/security/2fa/disable", {"password": PASSWORD, "code": "000000"})
    assert wrong_code.json()["code"] == "INVALID_OTP"
    assert TOTPDevice.objects.filter(user=trader.user, confirmed=True).exists()

    ok = trader.post("account/security/2fa/disable", {"password": PASSWORD, "code": codes[3]})
    assert ok.status_code == 204
    assert not TOTPDevice.objects.filter(user=trader.user).exists()
    assert not StaticToken.objects.filter(device__user=trader.user).exists()
    assert SecurityEvent.objects.filter(user=trader.user, kind="otp_disabled").exists()
    assert Api().login(trader.user.email).status_code == 200, "sign-in no longer asks for a code"


def test_recovery_codes_can_be_regenerated_with_a_current_code(api_as: Any) -> None:
    trader = api_as()
    old = enable_2fa(trader)
    response = trader.post("account/security/2fa/recovery-codes", {"code": totp_now(trader.user)})
    new = response.json()["recovery_codes"]
    assert len(new) == 10 and not set(new) & set(old)
    assert Api().login(trader.user.email, otp_code=old[0]).json()["code"] == "INVALID_OTP"


def test_enrolling_twice_is_refused(api_as: Any) -> None:
    trader = api_as()
    enable_2fa(trader)
    response = trader.post("account/security/2fa/totp")
    assert response.status_code == 409 and response.json()["code"] == "INVALID_STATE"


def test_a_withdrawal_right_after_enabling_2fa_is_held_for_manual_review(api_as: Any) -> None:
    """The 24-hour lock: 2FA enabled minutes ago → the confirmed withdrawal is not sent automatically.
    Drives the wallets API end to end (request with the TOTP code, confirm the emailed link)."""
    # accounts may not import wallets (import-linter), so the funding helper is looked up at run time
    ledger = importlib.import_module("wallets.ledger")
    trader = api_as()
    enable_2fa(trader)
    trader.user.refresh_from_db()
    assert trader.user.last_security_change_at is not None
    ledger.ledger_post(
        key=f"test-funding:{trader.user.pk}",
        transfers=[
            ledger.TransferSpec(
                debit=ledger.AccountRef.platform("deposit_clearing", sub="ETH:USDT"),
                credit=ledger.AccountRef.user(trader.user.pk, "cash"),
                amount=Decimal(1000),
                kind="deposit",
            )
        ],
    )
    mail.outbox.clear()
    requested = trader.post(
        "withdrawals",
        {
            "chain": "ETH",
            "asset": "USDT",
            "address": "0x" + "ab" * 20,
            "amount": "100",
            "totp_code": totp_now(trader.user),
        },
    )
    assert requested.status_code == 201, requested.content
    token = re.search(r"token=([\w\-]+)", mail.outbox[-1].body).group(1)  # type: ignore[union-attr]
    confirmed = trader.post("withdrawals/confirm", {"token": token})
    assert confirmed.status_code == 200, confirmed.content
    assert confirmed.json()["status"] == "AWAITING_APPROVAL"
    detail = trader.get(f"withdrawals/{requested.json()['id']}").json()
    assert detail["status"] == "AWAITING_APPROVAL"
