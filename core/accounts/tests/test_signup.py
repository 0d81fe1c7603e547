"""Sign-up with an emailed 6-digit code: expiry, attempt limit, single use, resend cooldown,
password rules, and answers that never reveal whether an address has an account."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.utils import timezone

from core.accounts.models import SecurityEvent, User, VerificationCode
from core.accounts.tests.conftest import NEW_PASSWORD, Api, code_from_mail

pytestmark = pytest.mark.django_db
EMAIL = "newcomer@example.com"


def register(api: Api, email: str = EMAIL, password: str = NEW_PASSWORD) -> Any:
    return api.post("auth/register", {"email": email, "password": password})


def verify(api: Api, code: str, email: str = EMAIL, password: str = NEW_PASSWORD) -> Any:
    return api.post("auth/register/verify", {"email": email, "code": code, "password": password})


def test_a_newcomer_signs_up_verifies_the_emailed_code_and_is_signed_in(api: Api) -> None:
    response = register(api)
    assert response.status_code == 202
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [EMAIL]
    assert mail.outbox[0].alternatives, "the code email has an HTML part too"
    user = User.objects.get(email=EMAIL)
    assert user.email_verified_at is None and not user.has_usable_password()

    response = verify(api, code_from_mail(EMAIL))
    assert response.status_code == 200, response.content
    api.remember(response)
    me = api.get("me").json()
    assert me["email"] == EMAIL and me["email_verified"] is True
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    kinds = set(SecurityEvent.objects.filter(user=user).values_list("kind", flat=True))
    assert {"signup", "email_verified", "login"} <= kinds


def test_an_unverified_account_cannot_log_in(api: Api) -> None:
    register(api)
    response = api.login(EMAIL, NEW_PASSWORD)
    assert response.status_code == 403 and response.json()["code"] == "EMAIL_NOT_VERIFIED"
    # a wrong password is just a wrong password: nothing about verification leaks
    response = api.login(EMAIL, "not-the-password-at-all")
    assert response.status_code == 401 and response.json()["code"] == "INVALID_CREDENTIALS"


def test_an_expired_code_is_refused(api: Api) -> None:
    register(api)
    code = code_from_mail(EMAIL)
    VerificationCode.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    response = verify(api, code)
    assert response.status_code == 400 and response.json()["code"] == "CODE_EXPIRED"
    assert User.objects.get(email=EMAIL).email_verified_at is None


def test_a_code_works_once(api: Api) -> None:
    register(api)
    code = code_from_mail(EMAIL)
    assert verify(api, code).status_code == 200
    response = verify(api, code)
    assert response.status_code == 400 and response.json()["code"] == "INVALID_CODE"


def test_a_code_dies_after_five_wrong_guesses(api: Api) -> None:
    register(api)
    code = code_from_mail(EMAIL)
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for left in (4, 3, 2, 1, 0):
        response = verify(api, wrong)
        assert response.json()["code"] == "INVALID_CODE"
        assert response.json()["details"]["attempts_left"] == left
    # the right code no longer helps: the guesser burned it
    assert verify(api, code).json()["code"] == "INVALID_CODE"


def test_a_code_needs_the_password_chosen_with_that_registration(api: Api) -> None:
    """Somebody registering a victim's address cannot get their own password activated: the victim's
    inbox receives the code, and verifying it also needs the password of that registration."""
    register(api, password="attacker-chosen-password-1")
    response = verify(api, code_from_mail(EMAIL), password=NEW_PASSWORD)
    assert response.json()["code"] == "INVALID_CODE"


def test_resend_waits_for_the_cooldown_and_supersedes_the_old_code(api: Api, settings: Any) -> None:
    register(api)
    first = code_from_mail(EMAIL)
    assert api.post("auth/register/resend", {"email": EMAIL}).status_code == 202
    assert len(mail.outbox) == 1, "no second email inside the cooldown"

    VerificationCode.objects.update(created_at=timezone.now() - timedelta(seconds=61))
    assert api.post("auth/register/resend", {"email": EMAIL}).status_code == 202
    assert len(mail.outbox) == 2
    second = code_from_mail(EMAIL)
    if first != second:
        assert verify(api, first).json()["code"] == "INVALID_CODE"
    assert verify(api, second).status_code == 200


def test_sign_up_answers_the_same_for_a_taken_address_and_tells_its_owner(api: Api, make_trader: Any) -> None:
    owner = make_trader(email="owner@example.com")
    fresh = register(api, email="someone-new@example.com")
    taken = register(api, email=owner.email)
    assert (taken.status_code, taken.json()) == (fresh.status_code, fresh.json())
    to_owner = [m for m in mail.outbox if m.to == [owner.email]]
    assert len(to_owner) == 1 and "already belongs to an XBIT account" in to_owner[0].body
    assert not any(ch.isdigit() for ch in to_owner[0].subject), "no code goes to an existing account"
    owner.refresh_from_db()
    assert owner.check_password("correct-horse-battery-9"), "the existing password is untouched"


def test_resend_answers_the_same_for_unknown_addresses(api: Api) -> None:
    response = api.post("auth/register/resend", {"email": "nobody@example.com"})
    assert response.status_code == 202 and mail.outbox == []


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short1", "too short"),
        ("password123", "common"),
        ("12345678901234", "numeric"),
        ("newcomer-example", "like the email"),
    ],
)
def test_weak_passwords_are_refused(api: Api, password: str, why: str) -> None:
    response = register(api, password=password)
    assert response.status_code == 400, why
    assert response.json()["code"] == "VALIDATION_ERROR" and response.json()["details"]["fields"]["password"]
    assert not User.objects.filter(email=EMAIL).exists()


def test_sign_up_is_throttled_per_ip(api: Api, monkeypatch: Any) -> None:
    from core.accounts import throttle

    monkeypatch.setitem(throttle.RATES, "register:ip", throttle.Rate(2, 3600))
    assert register(api, email="a@example.com").status_code == 202
    assert register(api, email="b@example.com").status_code == 202
    response = register(api, email="c@example.com")
    assert response.status_code == 429 and response.json()["code"] == "RATE_LIMITED"
    assert response["Retry-After"]
