"""Staff management: the staff list, inviting a member, their roles, deactivation, a TOTP
reset (four eyes) and their console sessions. ``manage_staff`` (Super Admin) only; every action goes
through ``core.accounts.staff_admin``, which audits it with the reason."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.accounts.four_eyes import proposals_open
from core.accounts.models import SecurityEvent, StaffProposal, User
from core.accounts.roles import ROLE_PERMISSIONS, Role
from core.accounts.staff_admin import (
    staff_deactivate,
    staff_invite,
    staff_reactivate,
    staff_roles_set,
    staff_session_revoke,
    staff_sessions,
    staff_totp_reset_propose,
)
from core.errors import ApplicationError
from xbit_admin.console import desk_tables as dt
from xbit_admin.console.access import staff_required
from xbit_admin.console.pages.actions import perform, reason, staff_action
from xbit_admin.console.pages.common import acting, export_csv, flash_error, rows_csv
from xbit_admin.console.tables import wants_csv


def _roles_table() -> list[tuple[str, list[str]]]:
    return [(role.value, sorted(ROLE_PERMISSIONS[role])) for role in Role]


@staff_required("manage_staff")
@require_http_methods(["GET", "POST"])
def staff_view(request: HttpRequest) -> HttpResponse:
    invited: dict[str, str] | None = None
    form: dict[str, object] = {}
    if request.method == "POST":
        roles = request.POST.getlist("roles")
        form = {
            "email": request.POST.get("email", ""),
            "roles": roles,
            "reason": request.POST.get("reason", ""),
        }
        try:
            member, password = staff_invite(
                email=request.POST.get("email", ""),
                roles=roles,
                reason=request.POST.get("reason", ""),
                acting_user=acting(request),
                request=request,
            )
        except ApplicationError as exc:
            flash_error(request, exc)
        else:
            invited = {"email": member.email, "password": password, "id": str(member.pk)}
            form = {}
    if request.method == "GET" and request.GET.get("format") == "csv":
        header = ("id", "email", "roles", "active", "joined")
        rows = (
            (m.pk, m.email, " ".join(m.role_names), m.is_active, m.date_joined)
            for m in User.objects.filter(is_staff=True).prefetch_related("groups").order_by("email")
        )
        return export_csv(request, "staff.csv", header, rows, what="staff")
    members = list(User.objects.filter(is_staff=True).prefetch_related("groups").order_by("email"))
    devices = set(
        TOTPDevice.objects.filter(user__in=members, confirmed=True).values_list("user_id", flat=True)
    )
    last = {}
    for event in (
        SecurityEvent.objects.filter(user__in=members, kind=SecurityEvent.Kind.LOGIN)
        .order_by("user_id", "-id")
        .distinct("user_id")
    ):
        last[event.user_id] = event.created_at
    for m in members:
        m.has_totp = m.pk in devices  # type: ignore[attr-defined]
        m.last_login_at = last.get(m.pk)  # type: ignore[attr-defined]
    return render(
        request,
        "console/staff.html",
        {
            "page": "staff",
            "members": members,
            "roles": [r.value for r in Role],
            "roles_table": _roles_table(),
            "invited": invited,
            "form": form,
        },
        status=400 if request.method == "POST" and invited is None else 200,
    )


@staff_required("manage_staff")
@require_GET
def staff_member_view(request: HttpRequest, user_id: int) -> HttpResponse:
    member = User.objects.filter(pk=user_id, is_staff=True).prefetch_related("groups").first()
    if member is None:
        raise Http404("no such staff member")
    sessions = staff_sessions(member.pk)
    if wants_csv(request, "sessions"):
        return rows_csv(
            request,
            f"staff-{member.pk}-sessions.csv",
            dt.STAFF_SESSION_COLUMNS,
            sessions,
            what="staff_sessions",
        )
    return render(
        request,
        "console/staff_member.html",
        {
            "page": "staff",
            "member": member,
            "member_roles": set(member.role_names),
            "roles": [r.value for r in Role],
            "sessions": sessions,
            "has_totp": TOTPDevice.objects.filter(user=member, confirmed=True).exists(),
            "proposals": proposals_open(
                kinds=[StaffProposal.Kind.STAFF_TOTP_RESET], target_user_id=member.pk
            ),
            "events": list(member.security_events.order_by("-id")[:20]),
        },
    )


def _member_url(user_id: int) -> str:
    return reverse("console:staff_member", args=[user_id])


@staff_action("manage_staff")
def staff_roles_view(request: HttpRequest, user_id: int) -> HttpResponse:
    return perform(
        request,
        lambda: staff_roles_set(
            user_id=user_id,
            roles=request.POST.getlist("roles"),
            reason=reason(request),
            acting_user=acting(request),
            request=request,
        ),
        done="Roles saved.",
        back=_member_url(user_id),
    )


def _activity(member: User) -> str:
    state = "reactivated" if member.is_active else "deactivated: every console session ended"
    return f"{member.email} {state}."


@staff_action("manage_staff")
def staff_active_view(request: HttpRequest, user_id: int) -> HttpResponse:
    service = staff_reactivate if request.POST.get("active") == "1" else staff_deactivate
    return perform(
        request,
        lambda: service(
            user_id=user_id, reason=reason(request), acting_user=acting(request), request=request
        ),
        done=_activity,
        back=_member_url(user_id),
    )


@staff_action("manage_staff")
def staff_totp_reset_view(request: HttpRequest, user_id: int) -> HttpResponse:
    return perform(
        request,
        lambda: staff_totp_reset_propose(
            user_id=user_id, reason=reason(request), acting_user=acting(request), request=request
        ),
        done=lambda proposal: f"TOTP reset proposed (#{proposal.pk}): another Super Admin must approve it.",
        back=_member_url(user_id),
    )


@staff_action("manage_staff")
def staff_session_revoke_view(request: HttpRequest, session_id: int) -> HttpResponse:
    return perform(
        request,
        lambda: staff_session_revoke(
            session_id=session_id, reason=reason(request), acting_user=acting(request), request=request
        ),
        done=lambda row: f"Session {row.pk} of {row.user.email} ended.",
        back=lambda row: _member_url(row.user_id),
        refused_back=reverse("console:staff"),
    )
