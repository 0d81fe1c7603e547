"""Staff actions on a client: notes, tags, restrictions with an expiry, and a 2FA reset with
four eyes. Every write checks the acting staff member's permission, needs a reason where it changes
what the client may do, and writes its audit row in the same transaction (house style rule 3)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.accounts.four_eyes import Action, action_register, proposal_create
from core.accounts.models import (
    ClientNote,
    ClientRestriction,
    ClientTag,
    RefreshToken,
    SecurityEvent,
    StaffProposal,
    User,
)
from core.accounts.roles import perm
from core.accounts.security_events import security_event_record
from core.accounts.services import security_change_mark
from core.audit.services import audit_record
from core.errors import ApplicationError, ErrorCode

TAG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
NOTE_MAX = 4000
# the user flag each restriction kind sets (the order and withdrawal paths read the flags)
RESTRICTION_FLAG = {
    ClientRestriction.Kind.REDUCE_ONLY: "trading_restricted",
    ClientRestriction.Kind.NO_TRADING: "trading_blocked",
    ClientRestriction.Kind.NO_WITHDRAWALS: "withdrawals_restricted",
}


def require_staff_perm(user: Any, codename: str) -> None:
    if not (user is not None and user.is_staff and user.is_active and user.has_perm(perm(codename))):
        raise ApplicationError(ErrorCode.PERMISSION_DENIED, "You may not do this.", {"permission": codename})


def _reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.")
    return reason.strip()[:300]


def _client(user_id: int) -> User:
    client = User.objects.filter(pk=user_id, is_staff=False).first()
    if client is None:
        raise ApplicationError(ErrorCode.NOT_FOUND, "No such client.")
    return client


# --- notes and tags ---------------------------------------------------------------------------------


def client_note_add(
    *, user_id: int, body: str, acting_user: User, request: HttpRequest | None = None
) -> ClientNote:
    require_staff_perm(acting_user, "annotate_clients")
    text = (body or "").strip()
    if not text:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "The note is empty.")
    if len(text) > NOTE_MAX:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, f"A note has at most {NOTE_MAX:,} characters.")
    client = _client(user_id)
    with transaction.atomic():
        note = ClientNote.objects.create(user=client, author=acting_user, body=text)
        audit_record(
            action="client.note_add",
            actor=acting_user,
            request=request,
            object_type="user",
            object_id=client.pk,
            after={"note_id": note.pk, "length": len(text)},
        )
    return note


def client_tag_add(
    *, user_id: int, tag: str, acting_user: User, request: HttpRequest | None = None
) -> ClientTag:
    require_staff_perm(acting_user, "annotate_clients")
    value = (tag or "").strip().lower()
    if not TAG.match(value):
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR,
            "A tag is 1-32 lower-case letters, digits, '-' or '_', starting with a letter or digit.",
        )
    client = _client(user_id)
    with transaction.atomic():
        row, created = ClientTag.objects.get_or_create(
            user=client, tag=value, defaults={"added_by": acting_user}
        )
        if created:
            audit_record(
                action="client.tag_add",
                actor=acting_user,
                request=request,
                object_type="user",
                object_id=client.pk,
                after={"tag": value},
            )
    return row


def client_tag_remove(
    *, user_id: int, tag: str, acting_user: User, request: HttpRequest | None = None
) -> None:
    require_staff_perm(acting_user, "annotate_clients")
    client = _client(user_id)
    with transaction.atomic():
        deleted, _ = ClientTag.objects.filter(user=client, tag=tag).delete()
        if not deleted:
            raise ApplicationError(ErrorCode.NOT_FOUND, "The client has no such tag.")
        audit_record(
            action="client.tag_remove",
            actor=acting_user,
            request=request,
            object_type="user",
            object_id=client.pk,
            before={"tag": tag},
        )


# --- restrictions -----------------------------------------------------------------------------------


def client_restrict(
    *,
    user_id: int,
    kind: str,
    reason: str,
    acting_user: User,
    expires_at: datetime | None = None,
    request: HttpRequest | None = None,
) -> ClientRestriction:
    """Set a restriction (replacing an active one of the same kind). The user's flag is set in the same
    transaction; ``expires_at`` (future, or None for "until lifted") is when the sweep lifts it."""
    require_staff_perm(acting_user, "restrict_clients")
    if kind not in ClientRestriction.Kind.values:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, "Unknown restriction.", {"kinds": ClientRestriction.Kind.values}
        )
    text = _reason(reason)
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "The expiry must be in the future.")
    with transaction.atomic():
        client = User.objects.select_for_update().filter(pk=user_id, is_staff=False).first()
        if client is None:
            raise ApplicationError(ErrorCode.NOT_FOUND, "No such client.")
        previous = ClientRestriction.objects.filter(user=client, kind=kind, lifted_at__isnull=True).first()
        if previous is not None:
            previous.lifted_at, previous.lifted_by, previous.lift_reason = now, acting_user, "replaced"
            previous.save(update_fields=["lifted_at", "lifted_by", "lift_reason"])
        row = ClientRestriction.objects.create(
            user=client, kind=kind, reason=text, expires_at=expires_at, created_by=acting_user
        )
        flag = RESTRICTION_FLAG[ClientRestriction.Kind(kind)]
        flags = {flag: True}
        if kind == ClientRestriction.Kind.NO_TRADING:
            flags["trading_restricted"] = True  # no trading includes no opening (reduce-only's flag)
        User.objects.filter(pk=client.pk).update(**flags, restriction_reason=text[:200])
        audit_record(
            action="client.restrict",
            actor=acting_user,
            request=request,
            object_type="user",
            object_id=client.pk,
            before={flag: getattr(client, flag)},
            after={flag: True, "kind": kind, "expires_at": expires_at.isoformat() if expires_at else None},
            reason=text,
        )
    return row


def _lift(
    row: ClientRestriction, *, acting_user: User | None, reason: str, request: HttpRequest | None
) -> None:
    now = timezone.now()
    row.lifted_at, row.lifted_by, row.lift_reason = now, acting_user, reason
    row.save(update_fields=["lifted_at", "lifted_by", "lift_reason"])
    flag = RESTRICTION_FLAG[ClientRestriction.Kind(row.kind)]
    active = set(
        ClientRestriction.objects.filter(user_id=row.user_id, lifted_at__isnull=True).values_list(
            "kind", flat=True
        )
    )
    K = ClientRestriction.Kind
    # the flags this restriction set, recomputed from the restrictions still active
    changes: dict[str, Any] = {flag: False}
    if row.kind in (K.REDUCE_ONLY, K.NO_TRADING):
        changes["trading_restricted"] = bool(active & {K.REDUCE_ONLY, K.NO_TRADING})
        changes["trading_blocked"] = K.NO_TRADING in active
    if not active:
        changes["restriction_reason"] = ""
    User.objects.filter(pk=row.user_id).update(**changes)
    audit_record(
        action="client.restriction_lift" if acting_user else "client.restriction_expired",
        actor=acting_user,
        request=request,
        object_type="user",
        object_id=row.user_id,
        before={flag: True, "kind": row.kind},
        after={flag: False},
        reason=reason,
    )


def client_restriction_lift(
    *, restriction_id: int, reason: str, acting_user: User, request: HttpRequest | None = None
) -> ClientRestriction:
    require_staff_perm(acting_user, "restrict_clients")
    text = _reason(reason)
    with transaction.atomic():
        row = ClientRestriction.objects.select_for_update().filter(pk=restriction_id).first()
        if row is None:
            raise ApplicationError(ErrorCode.NOT_FOUND, "No such restriction.")
        if row.lifted_at is not None:
            raise ApplicationError(ErrorCode.INVALID_STATE, "The restriction was already lifted.")
        _lift(row, acting_user=acting_user, reason=text, request=request)
    return row


def client_restrictions_expire(*, now: datetime | None = None) -> int:
    """Lift every restriction whose expiry has passed (the periodic sweep; safe to run twice: a lifted
    row is skipped, rows are claimed with SKIP LOCKED)."""
    now = now or timezone.now()
    lifted = 0
    with transaction.atomic():
        due = (
            ClientRestriction.objects.select_for_update(skip_locked=True)
            .filter(lifted_at__isnull=True, expires_at__lte=now)
            .order_by("pk")
        )
        for row in due:
            _lift(row, acting_user=None, reason="expired", request=None)
            lifted += 1
    return lifted


def client_restrictions_active(user_id: int) -> list[ClientRestriction]:
    return list(
        ClientRestriction.objects.filter(user_id=user_id, lifted_at__isnull=True)
        .select_related("created_by")
        .order_by("kind")
    )


# --- 2FA reset (four eyes) --------------------------------------------------------------------------


def client_2fa_reset_propose(
    *, user_id: int, reason: str, acting_user: User, request: HttpRequest | None = None
) -> StaffProposal:
    client = _client(user_id)
    if not TOTPDevice.objects.filter(user=client, confirmed=True).exists():
        raise ApplicationError(
            ErrorCode.INVALID_STATE, "The client has no two-factor authentication to reset."
        )
    return proposal_create(
        kind=StaffProposal.Kind.CLIENT_2FA_RESET,
        acting_user=acting_user,
        reason=reason,
        target_user=client,
        request=request,
    )


def _client_2fa_reset_apply(
    proposal: StaffProposal, approver: User, request: HttpRequest | None
) -> dict[str, Any]:
    """Delete the client's TOTP and recovery devices, end their sessions (refresh tokens revoked, access
    tokens issued before now refused) and start the 24-hour withdrawal lock; a security event and an
    audit row name both staff members."""
    client = proposal.target_user
    assert client is not None
    now = timezone.now()
    devices, _ = TOTPDevice.objects.filter(user=client).delete()
    StaticDevice.objects.filter(user=client).delete()
    RefreshToken.objects.filter(user=client, revoked_at__isnull=True).update(revoked_at=now)
    User.objects.filter(pk=client.pk).update(tokens_valid_after=now)
    security_change_mark(user=client)
    security_event_record(
        user=client,
        kind=SecurityEvent.Kind.OTP_DISABLED,
        request=request,
        by_staff=proposal.proposed_by.email,
        approved_by=approver.email,
        proposal=proposal.pk,
    )
    audit_record(
        action="client.2fa_reset",
        actor=approver,
        request=request,
        object_type="user",
        object_id=client.pk,
        before={"two_factor": True},
        after={"two_factor": False, "proposed_by": proposal.proposed_by.email},
        reason=proposal.reason,
    )
    return {"devices_removed": devices}


action_register(
    StaffProposal.Kind.CLIENT_2FA_RESET,
    Action(
        permission="reset_client_2fa",
        apply=_client_2fa_reset_apply,
        describe=lambda p: f"Reset the 2FA of {p.target_user.email if p.target_user else '?'}",
    ),
)
