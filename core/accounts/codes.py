"""Emailed 6-digit codes: issue (with a resend cooldown), check (expiry, attempt limit, single use).

Only an HMAC of the code is stored, keyed by the server secret and bound to the row's user and
purpose, so a database dump does not reveal live codes (a plain hash of 6 digits would)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.accounts.emails import email_send_on_commit
from core.accounts.models import User, VerificationCode
from core.errors import ApplicationError, ErrorCode

Purpose = VerificationCode.Purpose

_TEXTS = {
    Purpose.SIGNUP: ("Sign-up", "Enter it in the app to activate your account."),
    Purpose.PASSWORD_RESET: ("Password reset", "Enter it with your new password to reset it."),
    Purpose.EMAIL_CHANGE: ("Email confirmation", "Enter it to confirm this address for your account."),
}


def _code_hash(*, user_id: int, purpose: str, code: str) -> str:
    key = hashlib.sha256(("xbit-account-codes:" + settings.SECRET_KEY).encode()).digest()
    return hmac.new(key, f"{purpose}:{user_id}:{code}".encode(), hashlib.sha256).hexdigest()


def latest_code(*, user: User, purpose: str) -> VerificationCode | None:
    return VerificationCode.objects.filter(user=user, purpose=purpose).order_by("-created_at", "-id").first()


def in_cooldown(*, user: User, purpose: str) -> int:
    """Seconds until a new code for (user, purpose) may be sent; 0 when it may be sent now."""
    last = latest_code(user=user, purpose=purpose)
    if last is None:
        return 0
    ready_at = last.created_at + timedelta(seconds=settings.ACCOUNT_CODE_RESEND_SECONDS)
    return max(0, int((ready_at - timezone.now()).total_seconds() + 0.999))


def code_issue(
    *, user: User, purpose: str, email: str, pending_password: str = "", send: bool = True
) -> VerificationCode:
    """Supersede any live code of (user, purpose), store a new one and email it after commit.
    Must run inside the caller's transaction; the caller checks the cooldown. ``send=False`` stores a
    code nobody receives (the answer for an address that must not be revealed as taken)."""
    now = timezone.now()
    VerificationCode.objects.filter(user=user, purpose=purpose, consumed_at__isnull=True).update(
        consumed_at=now
    )
    code = f"{secrets.randbelow(10**6):06d}"
    row = VerificationCode.objects.create(
        user=user,
        purpose=purpose,
        email=email,
        code_hash=_code_hash(user_id=user.pk, purpose=purpose, code=code),
        pending_password=pending_password,
        expires_at=now + timedelta(minutes=settings.ACCOUNT_CODE_TTL_MINUTES),
    )
    if not send:
        return row
    label, explanation = _TEXTS[Purpose(purpose)]
    email_send_on_commit(
        to=email,
        template="code",
        context={
            "code": code,
            "purpose": str(purpose),
            "purpose_label": label,
            "explanation": explanation,
            "ttl_minutes": settings.ACCOUNT_CODE_TTL_MINUTES,
        },
    )
    return row


def code_check(
    *,
    user: User | None,
    purpose: str,
    code: str,
    also: Callable[[VerificationCode], bool] | None = None,
) -> VerificationCode:
    """Consume the live code of (user, purpose) if ``code`` matches (and ``also(row)`` holds: sign-up
    checks the password chosen with the registration).

    A wrong guess counts an attempt and commits even though the call fails (that is why the error is
    raised after the transaction); after ``ACCOUNT_CODE_MAX_ATTEMPTS`` wrong guesses the code is dead.
    The errors never tell whether the account exists: an unknown user gets INVALID_CODE too."""
    error: ApplicationError | None = None
    with transaction.atomic():
        # Locks the row so two concurrent guesses cannot both be counted as the first attempt.
        row = (
            VerificationCode.objects.select_for_update()
            .filter(user=user, purpose=purpose, consumed_at__isnull=True)
            .order_by("-created_at", "-id")
            .first()
            if user is not None
            else None
        )
        now = timezone.now()
        if row is None:
            error = ApplicationError(ErrorCode.INVALID_CODE, "The code is wrong or was already used.")
        elif row.expires_at <= now:
            row.consumed_at = now
            row.save(update_fields=["consumed_at"])
            error = ApplicationError(ErrorCode.CODE_EXPIRED, "The code has expired. Ask for a new one.")
        elif not (
            hmac.compare_digest(
                row.code_hash, _code_hash(user_id=row.user_id, purpose=purpose, code=str(code).strip())
            )
            and (also is None or also(row))
        ):
            row.attempts += 1
            fields = ["attempts"]
            left = settings.ACCOUNT_CODE_MAX_ATTEMPTS - row.attempts
            if left <= 0:
                row.consumed_at = now
                fields.append("consumed_at")
            row.save(update_fields=fields)
            error = ApplicationError(
                ErrorCode.INVALID_CODE,
                "The code is wrong or was already used.",
                {"attempts_left": max(0, left)},
            )
        else:
            row.consumed_at = now
            row.save(update_fields=["consumed_at"])
    if error is not None:
        raise error
    assert row is not None
    return row
