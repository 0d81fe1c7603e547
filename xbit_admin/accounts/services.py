"""Writes for accounts: security events, login throttling, API keys."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import authenticate
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from xbit_admin.accounts import crypto
from xbit_admin.accounts.models import ApiKey, SecurityEvent, User
from xbit_admin.defaults import register
from xbit_admin.errors import ApplicationError, ErrorCode


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def security_event_record(
    *, user: User | None, kind: str, request: HttpRequest | None = None, **details: object
) -> SecurityEvent:
    return SecurityEvent.objects.create(
        user=user,
        kind=kind,
        ip=client_ip(request),
        user_agent=(request.headers.get("User-Agent", "") if request else "")[:300],
        details={k: v for k, v in details.items() if v is not None},
    )


def staff_password_check(*, request: HttpRequest, email: str, password: str) -> User:
    """First factor for staff. Consecutive failures lock the account for a while (brute force), and
    every attempt is a security event support can read. The message never says which part was wrong."""
    email = email.strip().lower()
    user = User.objects.filter(email__iexact=email).first()
    if user is not None and user.is_locked:
        security_event_record(
            user=user, kind=SecurityEvent.Kind.LOGIN_FAILED, request=request, reason="locked"
        )
        raise ApplicationError(ErrorCode.ACCOUNT_LOCKED, "Too many failed attempts. Try again later.")
    authenticated = authenticate(request, username=email, password=password)
    if authenticated is None or not authenticated.is_staff:
        if user is not None:
            _register_failure(user, request)
        else:
            security_event_record(
                user=None, kind=SecurityEvent.Kind.LOGIN_FAILED, request=request, email=email
            )
        raise ApplicationError(ErrorCode.INVALID_CREDENTIALS, "Wrong email or password.")
    if authenticated.failed_login_count:
        User.objects.filter(pk=authenticated.pk).update(failed_login_count=0, locked_until=None)
    return authenticated


def _register_failure(user: User, request: HttpRequest) -> None:
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(failed_login_count=F("failed_login_count") + 1)
        user.refresh_from_db(fields=["failed_login_count"])
        security_event_record(user=user, kind=SecurityEvent.Kind.LOGIN_FAILED, request=request)
        if user.failed_login_count >= settings.LOGIN_MAX_FAILURES:
            until = timezone.now() + timedelta(seconds=settings.LOGIN_LOCKOUT_SECONDS)
            User.objects.filter(pk=user.pk).update(locked_until=until, failed_login_count=0)
            security_event_record(
                user=user, kind=SecurityEvent.Kind.LOCKED, request=request, until=until.isoformat()
            )


def otp_failure_record(*, user: User, request: HttpRequest) -> None:
    """A wrong second factor counts toward the same lockout as a wrong password."""
    _register_failure(user, request)
    security_event_record(user=user, kind=SecurityEvent.Kind.OTP_FAILED, request=request)


def security_change_mark(*, user: User) -> None:
    """Password / 2FA / email changes start the 24-hour withdrawal lock that withdrawal review reads."""
    User.objects.filter(pk=user.pk).update(last_security_change_at=timezone.now())


@transaction.atomic
def api_key_create(
    *,
    user: User,
    label: str,
    permissions: Iterable[str],
    ip_allowlist: Iterable[str] = (),
    request: HttpRequest | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the secret, which is never shown again."""
    perms = sorted(set(permissions))
    valid = {choice.value for choice in ApiKey.Permission}
    unknown = [p for p in perms if p not in valid]
    if unknown or not perms:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR,
            "Permissions must be a non-empty subset of read, trade, withdraw.",
            {"unknown": unknown},
        )
    secret = secrets.token_urlsafe(32)
    key = ApiKey.objects.create(
        user=user,
        key_id="xk_" + secrets.token_hex(12),
        secret_encrypted=crypto.encrypt(secret),
        label=label[:80],
        permissions=perms,
        ip_allowlist=list(ip_allowlist),
    )
    security_event_record(
        user=user,
        kind=SecurityEvent.Kind.API_KEY_CREATED,
        request=request,
        key_id=key.key_id,
        permissions=perms,
    )
    return key, secret


@transaction.atomic
def api_key_revoke(*, user: User, key_id: str, request: HttpRequest | None = None) -> ApiKey:
    key = ApiKey.objects.select_for_update().filter(user=user, key_id=key_id).first()
    if key is None:
        raise ApplicationError(ErrorCode.NOT_FOUND, "No such API key.")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        security_event_record(
            user=user, kind=SecurityEvent.Kind.API_KEY_REVOKED, request=request, key_id=key_id
        )
    return key


@register
def roles_sync() -> None:
    """Make the role groups match ``ROLE_PERMISSIONS`` (the migration does this once; tests whose
    transactional flush empties the tables, and ``seed_demo``, call it again)."""
    from django.apps import apps as global_apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission
    from django.contrib.contenttypes.models import ContentType

    from xbit_admin.accounts.roles import ROLE_PERMISSIONS

    ContentType.objects.clear_cache()  # a flush re-created content types behind the cache's back
    create_permissions(global_apps.get_app_config("accounts"), verbosity=0)
    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=str(role))
        group.permissions.set(
            Permission.objects.filter(content_type__app_label="accounts", codename__in=codenames)
        )
