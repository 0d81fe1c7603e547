"""Reads for accounts."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from core.accounts.kyc import KycLimits, kyc_limits_get
from core.accounts.models import SecurityEvent, User


def request_user(request: Any) -> User:
    """The authenticated trader of a DRF request (views run behind IsAuthenticated)."""
    user = request.user
    if not isinstance(user, User):
        raise PermissionError("an authenticated user is required")
    return user


def security_events_for(user_id: int) -> QuerySet[SecurityEvent]:
    """A user's security events, newest first: what the trader sees under account security and what
    support reads in the console (logins, failures, lockouts, password / 2FA / email / wallet
    changes, API keys, sessions, withdrawal addresses)."""
    return SecurityEvent.objects.filter(user_id=user_id).order_by("-created_at", "-id")


def kyc_limits_for(user: User) -> KycLimits:
    """The limits that apply to ``user`` now (by KYC status): ``daily_withdrawal_limit`` and
    ``max_order_notional``, Decimal USD. Cached for a minute; one Redis read per call."""
    return kyc_limits_get(user.kyc_status)
