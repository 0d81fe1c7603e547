"""KYC: a provider interface (no provider is integrated; the default is manual review by support), the
status transitions, and per-status limits (daily withdrawal, max order notional) kept in the database
with audited edits. Withdrawal review and order placement read the limits through
``selectors.kyc_limits_for(user)``."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.module_loading import import_string

from core.accounts.models import KycLimit, SecurityEvent, User
from core.accounts.security_events import security_event_record
from core.audit.services import audit_record
from core.defaults import register
from core.errors import ApplicationError, ErrorCode
from core.live_config import LiveConfig, invalidate

KycStatus = User.KycStatus

# (daily withdrawal limit, max order notional) in USD. Unverified accounts trade and withdraw within
# modest limits; a rejected account may still withdraw what it holds but opens nothing new.
DEFAULT_KYC_LIMITS: dict[str, tuple[Decimal, Decimal]] = {
    KycStatus.NONE: (Decimal(10_000), Decimal(100_000)),
    KycStatus.PENDING: (Decimal(10_000), Decimal(100_000)),
    KycStatus.VERIFIED: (Decimal(1_000_000), Decimal(10_000_000)),
    KycStatus.REJECTED: (Decimal(10_000), Decimal(0)),
}


class KycProvider(Protocol):
    """What an identity-verification vendor adapter provides. ``submit`` starts a check and returns
    the resulting status (usually PENDING); the vendor's later verdict arrives through
    ``kyc_status_set`` (a webhook view or support)."""

    name: str

    def submit(self, *, user: User) -> str: ...


class ManualKycProvider:
    """Default: no vendor. Submitting puts the account in the support queue (PENDING)."""

    name = "manual"

    def submit(self, *, user: User) -> str:
        return KycStatus.PENDING


def kyc_provider() -> KycProvider:
    return import_string(settings.KYC_PROVIDER)()


@dataclass(frozen=True)
class KycLimits:
    status: str
    daily_withdrawal_limit: Decimal
    max_order_notional: Decimal


def _load_limits() -> dict[str, KycLimits]:
    return {
        row.status: KycLimits(row.status, row.daily_withdrawal_limit, row.max_order_notional)
        for row in KycLimit.objects.all()
    }


# every status's limits in process memory (the order path reads them per order); edits invalidate
# every process on commit (``core.live_config``)
KYC_LIMITS_CACHE: LiveConfig[dict[str, KycLimits]] = LiveConfig("kyc_limits", _load_limits)


def kyc_limits_get(status: str) -> KycLimits:
    """Limits of one status (process cache; edits invalidate it after commit)."""
    limits = KYC_LIMITS_CACHE.get().get(status)
    if limits is not None:
        return limits
    withdrawal, notional = DEFAULT_KYC_LIMITS[status]
    row, _ = KycLimit.objects.get_or_create(
        status=status, defaults={"daily_withdrawal_limit": withdrawal, "max_order_notional": notional}
    )
    invalidate(KYC_LIMITS_CACHE.name)
    return KycLimits(status, row.daily_withdrawal_limit, row.max_order_notional)


@register
def kyc_limits_ensure() -> None:
    for status, (withdrawal, notional) in DEFAULT_KYC_LIMITS.items():
        KycLimit.objects.get_or_create(
            status=status, defaults={"daily_withdrawal_limit": withdrawal, "max_order_notional": notional}
        )


def kyc_limits_update(
    *,
    status: str,
    changes: dict[str, Any],
    acting_user: User,
    reason: str,
    request: HttpRequest | None = None,
) -> KycLimit:
    """Change the limits of one KYC status; audited in the same transaction."""
    if status not in KycStatus.values:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, "Unknown KYC status.", {"statuses": KycStatus.values}
        )
    if not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required to change configuration.")
    allowed = {"daily_withdrawal_limit", "max_order_notional"}
    if not changes or set(changes) - allowed:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "Unknown settings.", {"allowed": sorted(allowed)})
    values: dict[str, Decimal] = {}
    for key, raw in changes.items():
        try:
            values[key] = Decimal(str(raw))
        except ArithmeticError:
            raise ApplicationError(ErrorCode.VALIDATION_ERROR, f"{key} must be a number.") from None
        if not values[key].is_finite() or values[key] < 0:
            raise ApplicationError(ErrorCode.VALIDATION_ERROR, f"{key} must be zero or more.")
    kyc_limits_get(status)  # make sure the row exists
    with transaction.atomic():
        row = KycLimit.objects.select_for_update().get(status=status)
        before = {k: str(getattr(row, k)) for k in values}
        for key, value in values.items():
            setattr(row, key, value)
        row.updated_at = timezone.now()
        row.full_clean()
        row.save()
        audit_record(
            action="kyc_limits.update",
            actor=acting_user,
            request=request,
            object_type="kyc_limit",
            object_id=status,
            before=before,
            after={k: str(v) for k, v in values.items()},
            reason=reason,
        )
        invalidate(KYC_LIMITS_CACHE.name)
    return row


def kyc_submit(*, user: User, request: HttpRequest | None = None) -> User:
    """The trader asks to be verified; the configured provider decides the next status."""
    if user.kyc_status in (KycStatus.PENDING, KycStatus.VERIFIED):
        raise ApplicationError(ErrorCode.INVALID_STATE, f"KYC is already {user.kyc_status.lower()}.")
    provider = kyc_provider()
    status = provider.submit(user=user)
    with transaction.atomic():
        before = user.kyc_status
        User.objects.filter(pk=user.pk).update(kyc_status=status)
        user.kyc_status = status
        security_event_record(
            user=user,
            kind=SecurityEvent.Kind.KYC_STATUS_CHANGED,
            request=request,
            before=before,
            after=status,
            provider=provider.name,
        )
    return user


def kyc_status_set(
    *, user: User, status: str, acting_user: User | None, reason: str, request: HttpRequest | None = None
) -> User:
    """Support's (or a provider webhook's) verdict; audited with the reason."""
    if status not in KycStatus.values:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, "Unknown KYC status.", {"statuses": KycStatus.values}
        )
    if not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.")
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        before = locked.kyc_status
        User.objects.filter(pk=user.pk).update(kyc_status=status)
        user.kyc_status = status
        audit_record(
            action="kyc.status_set",
            actor=acting_user,
            request=request,
            object_type="user",
            object_id=user.pk,
            before={"kyc_status": before},
            after={"kyc_status": status},
            reason=reason,
        )
        security_event_record(
            user=user,
            kind=SecurityEvent.Kind.KYC_STATUS_CHANGED,
            request=request,
            before=before,
            after=status,
        )
    return user
