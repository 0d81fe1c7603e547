"""Trader sessions: completing a sign-in (second factor, events, new-device email, tokens), listing
sessions (one per refresh-token family), revoking one, logging out here or everywhere."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Min
from django.http import HttpRequest
from django.utils import timezone

from core.accounts import tokens
from core.accounts.emails import email_send_on_commit
from core.accounts.models import RefreshToken, SecurityEvent, User
from core.accounts.security_events import client_ip, security_event_record
from core.accounts.two_factor import second_factor_if_enabled
from core.errors import ApplicationError, ErrorCode


@dataclass(frozen=True)
class SessionInfo:
    id: str
    device: str
    user_agent: str
    ip: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    current: bool


def _user_agent(request: HttpRequest | None) -> str:
    return (request.headers.get("User-Agent", "") if request is not None else "")[:300]


def _device_fingerprint(user_agent: str, device: str) -> str:
    # Only a hash is kept in the event: enough to recognise a device, nothing to fingerprint users by.
    return hashlib.sha256(f"{device}|{user_agent}".encode()).hexdigest()[:16]


def sign_in_complete(
    *,
    user: User,
    request: HttpRequest | None,
    method: str,
    otp_code: str | None = None,
    device: str = "",
) -> dict[str, str]:
    """Second factor (when enabled), then a new session.

    Side effects: failed-login counter reset, LOGIN event (method, device hash, new_device), a
    refresh-token family, and after commit a "new sign-in" email when the device was never seen
    before (not on the account's first sign-in)."""
    if not user.is_active:
        raise ApplicationError(ErrorCode.INVALID_CREDENTIALS, "The account is disabled.")
    second_factor_if_enabled(user=user, code=otp_code, request=request)
    user_agent = _user_agent(request)
    fingerprint = _device_fingerprint(user_agent, device)
    with transaction.atomic():
        if user.failed_login_count or user.locked_until:
            User.objects.filter(pk=user.pk).update(failed_login_count=0, locked_until=None)
        logins = SecurityEvent.objects.filter(user=user, kind=SecurityEvent.Kind.LOGIN)
        first_login = not logins.exists()
        new_device = not first_login and not logins.filter(details__device=fingerprint).exists()
        security_event_record(
            user=user,
            kind=SecurityEvent.Kind.LOGIN,
            request=request,
            method=method,
            device=fingerprint,
            new_device=new_device,
        )
        pair = tokens.token_pair_issue(user=user, ip=client_ip(request), user_agent=user_agent, device=device)
        if new_device and user.email_verified:
            email_send_on_commit(
                to=user.email,
                template="new_login",
                context={
                    "at": timezone.now(),
                    "method": method,
                    "ip": client_ip(request),
                    "user_agent": device or user_agent,
                },
            )
    return pair


def sessions_for(*, user: User, current: str | None = None) -> list[SessionInfo]:
    """Live sessions, newest activity first: a family whose latest refresh token is unused, unrevoked
    and unexpired. Scoped to ``user`` — nobody lists another user's sessions."""
    now = timezone.now()
    live = list(
        RefreshToken.objects.filter(
            user=user, revoked_at__isnull=True, used_at__isnull=True, expires_at__gt=now
        ).order_by("-created_at", "-id")
    )
    started = dict(
        RefreshToken.objects.filter(user=user, family__in={t.family for t in live})
        .values("family")
        .annotate(first=Min("created_at"))
        .values_list("family", "first")
    )
    seen: set[str] = set()
    sessions = []
    for token in live:
        if token.family in seen:
            continue
        seen.add(token.family)
        sessions.append(
            SessionInfo(
                id=token.family,
                device=token.device,
                user_agent=token.user_agent,
                ip=token.ip,
                created_at=started.get(token.family, token.created_at),
                last_used_at=token.created_at,
                expires_at=token.expires_at,
                current=token.family == current,
            )
        )
    return sessions


@transaction.atomic
def session_revoke(*, user: User, session_id: str, request: HttpRequest | None = None) -> None:
    """End one of the user's own sessions (refresh and access tokens). Another user's session id, or
    an unknown one, is NOT_FOUND — the same answer, so ids cannot be probed."""
    revoked = RefreshToken.objects.filter(user=user, family=session_id, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    if not revoked:
        raise ApplicationError(ErrorCode.NOT_FOUND, "No such session.")
    tokens.session_mark_revoked(session_id)
    security_event_record(
        user=user, kind=SecurityEvent.Kind.SESSION_REVOKED, request=request, session=session_id[:8]
    )


@transaction.atomic
def logout(*, user: User, session_id: str | None, request: HttpRequest | None = None) -> None:
    """End the calling session. Idempotent: logging out twice is not an error."""
    if session_id:
        RefreshToken.objects.filter(user=user, family=session_id, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        tokens.session_mark_revoked(session_id)
    security_event_record(user=user, kind=SecurityEvent.Kind.LOGOUT, request=request)


@transaction.atomic
def logout_everywhere(*, user: User, request: HttpRequest | None = None) -> int:
    """End every session of the user, including access tokens already issued. Returns how many."""
    ended = tokens.refresh_tokens_revoke_all(user=user)
    User.objects.filter(pk=user.pk).update(tokens_valid_after=timezone.now())
    security_event_record(user=user, kind=SecurityEvent.Kind.LOGOUT_ALL, request=request, sessions=ended)
    return ended
