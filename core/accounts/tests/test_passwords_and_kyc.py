"""Password reset by emailed code (enumeration-safe), password change, email change; KYC status,
provider interface and per-status limits; the OpenAPI schema lists every account endpoint."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from conftest import PASSWORD
from core.accounts.kyc import DEFAULT_KYC_LIMITS, kyc_limits_update, kyc_status_set
from core.accounts.models import KycLimit, SecurityEvent, User, VerificationCode
from core.accounts.roles import Role
from core.accounts.selectors import kyc_limits_for
from core.accounts.tests.conftest import NEW_PASSWORD, Api, code_from_mail
from core.audit.models import AuditEntry
from core.errors import ApplicationError, ErrorCode

pytestmark = pytest.mark.django_db


def reset(api: Api, email: str, code: str, password: str = NEW_PASSWORD) -> Any:
    return api.post("auth/password/reset/confirm", {"email": email, "code": code, "new_password": password})


def test_a_password_reset_by_code_ends_every_session(api_as: Any) -> None:
    trader = api_as()
    email = trader.user.email
    anonymous = Api(user_agent="Other/1")
    assert anonymous.post("auth/password/reset", {"email": email}).status_code == 202
    response = reset(anonymous, email, code_from_mail(email))
    assert response.status_code == 200, response.content
    assert trader.get("me").status_code == 401, "the old session ended"
    assert Api().login(email, PASSWORD).status_code == 401
    assert Api().login(email, NEW_PASSWORD).status_code == 200
    trader.user.refresh_from_db()
    assert trader.user.last_security_change_at is not None
    assert SecurityEvent.objects.filter(
        user=trader.user, kind="password_changed", details__how="reset"
    ).exists()


def test_reset_answers_the_same_for_unknown_addresses_and_sends_nothing(api: Api, make_trader: Any) -> None:
    known = api.post("auth/password/reset", {"email": make_trader().email})
    unknown = api.post("auth/password/reset", {"email": "nobody@example.com"})
    assert (known.status_code, known.json()) == (unknown.status_code, unknown.json())
    assert len(mail.outbox) == 1
    bad = reset(api, "nobody@example.com", "123456")
    assert bad.json()["code"] == "INVALID_CODE", "an unknown address looks like a wrong code"


def test_a_reset_code_expires_and_works_once(api: Api, make_trader: Any) -> None:
    email = make_trader().email
    api.post("auth/password/reset", {"email": email})
    code = code_from_mail(email)
    VerificationCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert reset(api, email, code).json()["code"] == "CODE_EXPIRED"

    VerificationCode.objects.update(created_at=timezone.now() - timedelta(minutes=2))  # past the cooldown
    api.post("auth/password/reset", {"email": email})
    code = code_from_mail(email)
    assert reset(api, email, code).status_code == 200
    assert reset(api, email, code, "another-fine-passphrase-7").json()["code"] == "INVALID_CODE"


def test_a_reset_clears_a_lockout(api: Api, make_trader: Any) -> None:
    trader = make_trader()
    for _ in range(5):
        api.login(trader.email, "wrong-password-xyz")
    assert api.login(trader.email).json()["code"] == "ACCOUNT_LOCKED"
    api.post("auth/password/reset", {"email": trader.email})
    assert reset(api, trader.email, code_from_mail(trader.email)).status_code == 200
    assert api.login(trader.email, NEW_PASSWORD).status_code == 200


def test_a_reset_refuses_a_common_password_before_spending_the_code(api: Api, make_trader: Any) -> None:
    email = make_trader().email
    api.post("auth/password/reset", {"email": email})
    code = code_from_mail(email)
    weak = reset(api, email, code, "password1234")
    assert weak.json()["code"] == "VALIDATION_ERROR"
    assert reset(api, email, code).status_code == 200


def test_changing_the_password_keeps_this_session_and_ends_the_others(api_as: Any) -> None:
    trader = api_as()
    other = Api(user_agent="Other/1")
    other.login(trader.user.email)
    wrong = trader.post(
        "account/security/password", {"current_password": "nope-nope-nope", "new_password": NEW_PASSWORD}
    )
    assert wrong.status_code == 403 and wrong.json()["code"] == "INVALID_CREDENTIALS"
    ok = trader.post(
        "account/security/password", {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
    )
    assert ok.status_code == 200, ok.content
    assert trader.get("me").status_code == 200
    assert other.get("me").status_code == 401
    assert any("password was changed" in m.body for m in mail.outbox)


def test_changing_the_email_needs_the_password_and_a_code_sent_to_the_new_address(api_as: Any) -> None:
    trader = api_as()
    old = trader.user.email
    refused = trader.post(
        "account/security/email", {"new_email": "new@example.com", "password": "wrong-one-123"}
    )
    assert refused.json()["code"] == "INVALID_CREDENTIALS"
    assert (
        trader.post(
            "account/security/email", {"new_email": "new@example.com", "password": PASSWORD}
        ).status_code
        == 202
    )
    again = trader.post("account/security/email", {"new_email": "new@example.com", "password": PASSWORD})
    assert again.status_code == 429 and again.json()["code"] == "RATE_LIMITED", "resend cooldown"
    confirmed = trader.post("account/security/email/confirm", {"code": code_from_mail("new@example.com")})
    assert confirmed.status_code == 200 and confirmed.json()["email"] == "new@example.com"
    assert any(m.to == [old] for m in mail.outbox), "the old address is told"
    assert Api().login("new@example.com").status_code == 200
    assert SecurityEvent.objects.filter(user=trader.user, kind="email_changed").exists()


# --- KYC -----------------------------------------------------------------------------------------------


def test_each_kyc_status_has_limits_from_the_database(make_trader: Any) -> None:
    trader = make_trader()
    limits = kyc_limits_for(trader)
    assert (limits.status, limits.daily_withdrawal_limit, limits.max_order_notional) == (
        "NONE",
        *DEFAULT_KYC_LIMITS["NONE"],
    )
    assert set(KycLimit.objects.values_list("status", flat=True)) == set(User.KycStatus.values)
    assert kyc_limits_for(make_trader(kyc_status="REJECTED")).max_order_notional == Decimal(0)


def test_editing_limits_is_audited_and_takes_effect(make_trader: Any, make_staff: Any) -> None:
    from django.test import TestCase

    risk = make_staff(Role.RISK_MANAGER)
    trader = make_trader(kyc_status="VERIFIED")
    kyc_limits_for(trader)  # warm the cache
    with pytest.raises(ApplicationError) as excinfo:
        kyc_limits_update(
            status="VERIFIED", changes={"max_order_notional": "1"}, acting_user=risk, reason=" "
        )
    assert excinfo.value.code == ErrorCode.VALIDATION_ERROR
    with TestCase.captureOnCommitCallbacks(execute=True):
        kyc_limits_update(
            status="VERIFIED",
            changes={"daily_withdrawal_limit": "250000"},
            acting_user=risk,
            reason="tighter limits while the vendor is down",
        )
    assert kyc_limits_for(trader).daily_withdrawal_limit == Decimal(250_000)
    entry = AuditEntry.objects.get(action="kyc_limits.update")
    assert entry.actor_id == risk.pk and entry.after == {"daily_withdrawal_limit": "250000"}
    with pytest.raises(ApplicationError):
        kyc_limits_update(
            status="VERIFIED", changes={"max_order_notional": "-5"}, acting_user=risk, reason="x"
        )


def test_a_trader_submits_kyc_and_support_decides(api_as: Any, make_staff: Any) -> None:
    trader = api_as()
    assert trader.get("account/kyc").json()["kyc_status"] == "NONE"
    submitted = trader.post("account/kyc/submit")
    assert submitted.status_code == 200 and submitted.json()["kyc_status"] == "PENDING"
    assert trader.post("account/kyc/submit").json()["code"] == "INVALID_STATE"
    support = make_staff(Role.SUPPORT)
    kyc_status_set(user=trader.user, status="VERIFIED", acting_user=support, reason="documents checked")
    body = trader.get("account/kyc").json()
    assert body["kyc_status"] == "VERIFIED"
    assert Decimal(body["daily_withdrawal_limit"]) == DEFAULT_KYC_LIMITS["VERIFIED"][0]
    assert AuditEntry.objects.filter(action="kyc.status_set", object_id=str(trader.user.pk)).exists()


def test_the_kyc_provider_is_pluggable(api_as: Any, settings: Any) -> None:
    settings.KYC_PROVIDER = "core.accounts.tests.test_passwords_and_kyc.InstantProvider"
    trader = api_as()
    assert trader.post("account/kyc/submit").json()["kyc_status"] == "VERIFIED"
    event = SecurityEvent.objects.get(user=trader.user, kind="kyc_status_changed")
    assert event.details["provider"] == "instant"


class InstantProvider:
    name = "instant"

    def submit(self, *, user: User) -> str:
        return User.KycStatus.VERIFIED


# --- schema --------------------------------------------------------------------------------------------


def test_every_account_endpoint_is_in_the_openapi_schema() -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = set(schema["paths"])
    expected = {
        "/api/v1/auth/register",
        "/api/v1/auth/register/resend",
        "/api/v1/auth/register/verify",
        "/api/v1/auth/password/reset",
        "/api/v1/auth/password/reset/confirm",
        "/api/v1/auth/siwe/nonce",
        "/api/v1/auth/siwe/verify",
        "/api/v1/auth/logout",
        "/api/v1/auth/logout-all",
        "/api/v1/account/security",
        "/api/v1/account/security/password",
        "/api/v1/account/security/email",
        "/api/v1/account/security/email/confirm",
        "/api/v1/account/security/wallet/nonce",
        "/api/v1/account/security/wallet",
        "/api/v1/account/security/2fa/totp",
        "/api/v1/account/security/2fa/totp/confirm",
        "/api/v1/account/security/2fa/disable",
        "/api/v1/account/security/2fa/recovery-codes",
        "/api/v1/account/security/sessions",
        "/api/v1/account/security/sessions/{session_id}/revoke",
        "/api/v1/account/security/events",
        "/api/v1/account/kyc",
        "/api/v1/account/kyc/submit",
    }
    assert expected <= paths, sorted(expected - paths)
