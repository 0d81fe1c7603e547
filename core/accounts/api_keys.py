"""API keys of a trader: created with the second factor when it is enabled (the secret is shown once,
only its hash is kept) and revoked; both are security events."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from core.accounts import crypto
from core.accounts.models import ApiKey, SecurityEvent, User
from core.accounts.security_events import security_event_record
from core.accounts.two_factor import second_factor_if_enabled
from core.errors import ApplicationError, ErrorCode


def api_key_create(
    *,
    user: User,
    label: str,
    permissions: Iterable[str],
    ip_allowlist: Iterable[str] = (),
    otp_code: str | None = None,
    request: HttpRequest | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the secret, which is never shown again. A user with 2FA
    enabled must give a current code (checked before the transaction so a wrong one is recorded)."""
    second_factor_if_enabled(user=user, code=otp_code, request=request)
    with transaction.atomic():
        return _api_key_create(
            user=user, label=label, permissions=permissions, ip_allowlist=ip_allowlist, request=request
        )


def _api_key_create(
    *,
    user: User,
    label: str,
    permissions: Iterable[str],
    ip_allowlist: Iterable[str],
    request: HttpRequest | None,
) -> tuple[ApiKey, str]:
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
