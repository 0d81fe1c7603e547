"""Staff management from the console: invite a staff member, set their roles, deactivate
them, reset their TOTP (four eyes), and see and end their console sessions. All need ``manage_staff``;
every change is audited with its reason in the same transaction."""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.accounts.desk import require_staff_perm
from core.accounts.four_eyes import Action, action_register, proposal_create
from core.accounts.models import SecurityEvent, StaffProposal, StaffSession, User
from core.accounts.roles import Role
from core.accounts.security_events import client_ip, security_event_record
from core.audit.services import audit_record
from core.errors import ApplicationError, ErrorCode


def _reason(reason: str) -> str:
    if not reason or not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.")
    return reason.strip()[:300]


def _roles(names: list[str]) -> list[str]:
    unknown = sorted(set(names) - {r.value for r in Role})
    if unknown:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR,
            "Unknown role.",
            {"unknown": unknown, "roles": [r.value for r in Role]},
        )
    return sorted(set(names))


def _staff(user_id: int) -> User:
    member = User.objects.filter(pk=user_id, is_staff=True).first()
    if member is None:
        raise ApplicationError(ErrorCode.NOT_FOUND, "No such staff member.")
    return member


def staff_invite(
    *, email: str, roles: list[str], reason: str, acting_user: User, request: HttpRequest | None = None
) -> tuple[User, str]:
    """Create a staff account with the roles and a one-time password, returned once for the inviter to
    hand over; the new member enrols their TOTP at first sign-in (the console's OTP page)."""
    require_staff_perm(acting_user, "manage_staff")
    text = _reason(reason)
    address = (email or "").strip().lower()
    if "@" not in address or len(address) > 254:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A valid email address is required.")
    names = _roles(roles)
    if not names:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "Choose at least one role.")
    if User.objects.filter(email__iexact=address).exists():
        raise ApplicationError(ErrorCode.CONFLICT, "An account with this email exists already.")
    password = secrets.token_urlsafe(15)
    with transaction.atomic():
        member = User.objects.create_user(address, password, is_staff=True)
        member.groups.set(Group.objects.filter(name__in=names))
        User.objects.filter(pk=member.pk).update(last_security_change_at=timezone.now())
        audit_record(
            action="staff.invite",
            actor=acting_user,
            request=request,
            object_type="user",
            object_id=member.pk,
            after={"email": address, "roles": names},
            reason=text,
        )
    return member, password


def staff_roles_set(
    *, user_id: int, roles: list[str], reason: str, acting_user: User, request: HttpRequest | None = None
) -> User:
    require_staff_perm(acting_user, "manage_staff")
    text = _reason(reason)
    names = _roles(roles)
    member = _staff(user_id)
    if member.pk == acting_user.pk and Role.SUPER_ADMIN.value not in names:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "You cannot remove your own Super Admin role.")
    with transaction.atomic():
        before = sorted(member.groups.values_list("name", flat=True))
        member.groups.set(Group.objects.filter(name__in=names))
        audit_record(
            action="staff.roles_set",
            actor=acting_user,
            request=request,
            object_type="user",
            object_id=member.pk,
            before={"roles": before},
            after={"roles": names},
            reason=text,
        )
    return member


def _end_sessions(member: User, *, acting_user: User | None, keys: list[str] | None = None) -> int:
    rows = StaffSession.objects.filter(user=member, ended_at__isnull=True)
    if keys is not None:
        rows = rows.filter(session_key__in=keys)
    ended = list(rows.values_list("session_key", flat=True))
    Session.objects.filter(session_key__in=ended).delete()
    rows.update(ended_at=timezone.now(), ended_by=acting_user)
    return len(ended)


def staff_deactivate(
    *, user_id: int, reason: str, acting_user: User, request: HttpRequest | None = None
) -> User:
    """Deactivate (``is_active`` False: refused at sign-in and by every console guard) and end every
    console session at once."""
    require_staff_perm(acting_user, "manage_staff")
    text = _reason(reason)
    member = _staff(user_id)
    if member.pk == acting_user.pk:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "You cannot deactivate yourself.")
    with transaction.atomic():
        User.objects.filter(pk=member.pk).update(is_active=False)
        ended = _end_sessions(member, acting_user=acting_user)
        audit_record(
            action="staff.deactivate",
            actor=acting_user,
            request=request,
            object_type="user",
            object_id=member.pk,
            before={"is_active": member.is_active},
            after={"is_active": False, "sessions_ended": ended},
            reason=text,
        )
    member.is_active = False
    return member


def staff_reactivate(
    *, user_id: int, reason: str, acting_user: User, request: HttpRequest | None = None
) -> User:
    require_staff_perm(acting_user, "manage_staff")
    text = _reason(reason)
    member = _staff(user_id)
    with transaction.atomic():
        User.objects.filter(pk=member.pk).update(is_active=True)
        audit_record(
            action="staff.reactivate",
            actor=acting_user,
            request=request,
            object_type="user",
            object_id=member.pk,
            before={"is_active": member.is_active},
            after={"is_active": True},
            reason=text,
        )
    member.is_active = True
    return member


# --- console sessions --------------------------------------------------------------------------------


def staff_session_record(*, user: User, request: HttpRequest) -> StaffSession | None:
    """Called when a console sign-in completes (after the second factor): the session's key and origin."""
    key = request.session.session_key
    if not key:
        request.session.save()
        key = request.session.session_key
    if not key:
        return None
    row, _ = StaffSession.objects.update_or_create(
        session_key=key,
        defaults={
            "user": user,
            "ip": client_ip(request),
            "user_agent": request.headers.get("User-Agent", "")[:300],
            "created_at": timezone.now(),
            "ended_at": None,
        },
    )
    return row


def staff_session_end(*, session_key: str) -> None:
    """Sign-out: the record says the session ended (by its owner)."""
    StaffSession.objects.filter(session_key=session_key, ended_at__isnull=True).update(
        ended_at=timezone.now()
    )


def staff_sessions(user_id: int, *, limit: int = 20) -> list[StaffSession]:
    """The member's console sessions, newest first; ``live`` says whether Django still holds it."""
    rows = list(
        StaffSession.objects.filter(user_id=user_id).select_related("ended_by").order_by("-id")[:limit]
    )
    now = timezone.now()
    live = set(
        Session.objects.filter(
            session_key__in=[r.session_key for r in rows], expire_date__gt=now
        ).values_list("session_key", flat=True)
    )
    for row in rows:
        row.live = row.ended_at is None and row.session_key in live  # type: ignore[attr-defined]
    return rows


def staff_session_revoke(
    *, session_id: int, reason: str, acting_user: User, request: HttpRequest | None = None
) -> StaffSession:
    require_staff_perm(acting_user, "manage_staff")
    text = _reason(reason)
    with transaction.atomic():
        row = StaffSession.objects.select_for_update().filter(pk=session_id).select_related("user").first()
        if row is None:
            raise ApplicationError(ErrorCode.NOT_FOUND, "No such session.")
        if row.ended_at is not None:
            raise ApplicationError(ErrorCode.INVALID_STATE, "The session has ended already.")
        _end_sessions(row.user, acting_user=acting_user, keys=[row.session_key])
        security_event_record(
            user=row.user, kind=SecurityEvent.Kind.SESSION_REVOKED, request=request, by=acting_user.email
        )
        audit_record(
            action="staff.session_revoke",
            actor=acting_user,
            request=request,
            object_type="user",
            object_id=row.user_id,
            after={"session": row.pk, "ip": row.ip},
            reason=text,
        )
        row.refresh_from_db()
    return row


# --- TOTP reset (four eyes) ----------------------------------------------------------------------------


def staff_totp_reset_propose(
    *, user_id: int, reason: str, acting_user: User, request: HttpRequest | None = None
) -> StaffProposal:
    member = _staff(user_id)
    return proposal_create(
        kind=StaffProposal.Kind.STAFF_TOTP_RESET,
        acting_user=acting_user,
        reason=reason,
        target_user=member,
        request=request,
    )


def _staff_totp_reset_apply(
    proposal: StaffProposal, approver: User, request: HttpRequest | None
) -> dict[str, Any]:
    """Remove the member's TOTP devices (they enrol a new one at their next sign-in) and end their console
    sessions, so nobody holding the old device or a signed-in browser keeps access."""
    member = proposal.target_user
    assert member is not None
    if member.pk == approver.pk:
        raise ApplicationError(
            ErrorCode.FOUR_EYES_REQUIRED, "A reset of your own TOTP is approved by someone else."
        )
    removed, _ = TOTPDevice.objects.filter(user=member).delete()
    StaticDevice.objects.filter(user=member).delete()
    ended = _end_sessions(member, acting_user=approver)
    User.objects.filter(pk=member.pk).update(last_security_change_at=timezone.now())
    security_event_record(
        user=member,
        kind=SecurityEvent.Kind.OTP_DISABLED,
        request=request,
        by_staff=proposal.proposed_by.email,
        approved_by=approver.email,
    )
    audit_record(
        action="staff.totp_reset",
        actor=approver,
        request=request,
        object_type="user",
        object_id=member.pk,
        after={
            "devices_removed": removed,
            "sessions_ended": ended,
            "proposed_by": proposal.proposed_by.email,
        },
        reason=proposal.reason,
    )
    return {"devices_removed": removed, "sessions_ended": ended}


action_register(
    StaffProposal.Kind.STAFF_TOTP_RESET,
    Action(
        permission="manage_staff",
        apply=_staff_totp_reset_apply,
        describe=lambda p: f"Reset the TOTP of staff member {p.target_user.email if p.target_user else '?'}",
    ),
)
