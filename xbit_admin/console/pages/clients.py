"""Staff actions on a client's card: notes and tags, restrictions with an expiry, a 2FA reset
(four eyes), KYC review, a balance adjustment (four eyes: ``wallets`` adjustments), closing a position at
market (the dealer tool), the client's journal as CSV, and deciding four-eyes proposals. Each view
parses, checks the permission, calls one service and says what happened; every service audits."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.accounts.desk import (
    client_2fa_reset_propose,
    client_note_add,
    client_restrict,
    client_restriction_lift,
    client_tag_add,
    client_tag_remove,
)
from core.accounts.four_eyes import proposal_decide, proposal_describe, proposals_open
from core.accounts.kyc import kyc_status_set
from core.accounts.models import StaffProposal, User
from core.audit.services import audit_record
from core.errors import ApplicationError, ErrorCode
from trading.positions import position_close
from wallets.models import BalanceAdjustment
from wallets.services.adjustments import adjustment_decide, adjustment_request
from xbit_admin.console import journal
from xbit_admin.console.access import staff_required
from xbit_admin.console.pages.common import (
    acting,
    can,
    csv_response,
    export_csv,
    flash_error,
    require,
    time_window,
)

EXPIRY_CHOICES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


def _card(user_id: int, anchor: str = "") -> HttpResponse:
    return redirect(reverse("console:user_detail", args=[user_id]) + (f"#{anchor}" if anchor else ""))


def _ok(request: HttpRequest, text: str) -> None:
    messages.success(request, text)


def _expiry(raw: str) -> datetime | None:
    """``1h|24h|7d|30d``, an ISO date-time, or empty / ``never`` (until lifted)."""
    raw = (raw or "").strip()
    if raw in ("", "never"):
        return None
    if raw in EXPIRY_CHOICES:
        return timezone.now() + EXPIRY_CHOICES[raw]
    parsed = parse_datetime(raw)
    if parsed is None:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, "The expiry is not a date-time (YYYY-MM-DDTHH:MM)."
        )
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


@staff_required("annotate_clients")
@require_POST
def client_note_view(request: HttpRequest, user_id: int) -> HttpResponse:
    try:
        client_note_add(
            user_id=user_id, body=request.POST.get("body", ""), acting_user=acting(request), request=request
        )
    except ApplicationError as exc:
        flash_error(request, exc)
    else:
        _ok(request, "Note added to the client's journal.")
    return _card(user_id, "journal")


@staff_required("annotate_clients")
@require_POST
def client_tag_view(request: HttpRequest, user_id: int) -> HttpResponse:
    tag = request.POST.get("tag", "")
    try:
        if request.POST.get("remove"):
            client_tag_remove(user_id=user_id, tag=tag, acting_user=acting(request), request=request)
            _ok(request, f"Tag {tag} removed.")
        else:
            row = client_tag_add(user_id=user_id, tag=tag, acting_user=acting(request), request=request)
            _ok(request, f"Tag {row.tag} added.")
    except ApplicationError as exc:
        flash_error(request, exc)
    return _card(user_id)


@staff_required("restrict_clients")
@require_POST
def client_restrict_view(request: HttpRequest, user_id: int) -> HttpResponse:
    try:
        row = client_restrict(
            user_id=user_id,
            kind=request.POST.get("kind", ""),
            reason=request.POST.get("reason", ""),
            expires_at=_expiry(request.POST.get("expires", "")),
            acting_user=acting(request),
            request=request,
        )
    except ApplicationError as exc:
        flash_error(request, exc)
    else:
        until = f"until {row.expires_at:%Y-%m-%d %H:%M} UTC" if row.expires_at else "until lifted"
        _ok(request, f"Restricted: {row.get_kind_display()}, {until}.")
    return _card(user_id, "staff-actions")


@staff_required("restrict_clients")
@require_POST
def client_restriction_lift_view(request: HttpRequest, restriction_id: int) -> HttpResponse:
    try:
        row = client_restriction_lift(
            restriction_id=restriction_id,
            reason=request.POST.get("reason", ""),
            acting_user=acting(request),
            request=request,
        )
    except ApplicationError as exc:
        flash_error(request, exc)
        return redirect(request.POST.get("back") or reverse("console:users"))
    _ok(request, f"Lifted: {row.get_kind_display()}.")
    return _card(row.user_id, "staff-actions")


@staff_required("reset_client_2fa")
@require_POST
def client_2fa_reset_view(request: HttpRequest, user_id: int) -> HttpResponse:
    try:
        proposal = client_2fa_reset_propose(
            user_id=user_id,
            reason=request.POST.get("reason", ""),
            acting_user=acting(request),
            request=request,
        )
    except ApplicationError as exc:
        flash_error(request, exc)
    else:
        _ok(request, f"2FA reset proposed (#{proposal.pk}): a second person must approve it.")
    return _card(user_id, "staff-actions")


@staff_required("review_kyc")
@require_POST
def client_kyc_view(request: HttpRequest, user_id: int) -> HttpResponse:
    subject = User.objects.filter(pk=user_id, is_staff=False).first()
    if subject is None:
        raise Http404("no such client")
    status = request.POST.get("status", "")
    try:
        kyc_status_set(
            user=subject,
            status=status,
            acting_user=acting(request),
            reason=request.POST.get("reason", ""),
            request=request,
        )
    except ApplicationError as exc:
        flash_error(request, exc)
    else:
        _ok(request, f"KYC set to {status.lower()}.")
    return _card(user_id, "staff-actions")


@staff_required("close_client_positions")
@require_POST
def client_position_close_view(request: HttpRequest, user_id: int, position_id: int) -> HttpResponse:
    """The dealer's close: a reduce-only market order for the whole position on its own venue, placed as
    the client's order, with the staff member and the reason in the audit log."""

    reason = request.POST.get("reason", "").strip()
    subject = User.objects.filter(pk=user_id, is_staff=False).first()
    if subject is None:
        raise Http404("no such client")
    if not reason:
        flash_error(request, ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required."))
        return _card(user_id, "positions")
    try:
        order = position_close(user=subject, position_id=position_id, by="staff")
    except ApplicationError as exc:
        flash_error(request, exc)
        return _card(user_id, "positions")
    with transaction.atomic():
        audit_record(
            action="client.position_close",
            actor=acting(request),
            request=request,
            object_type="user",
            object_id=user_id,
            after={
                "position_id": position_id,
                "order_id": order.pk,
                "status": order.status,
                "route": order.route,
            },
            reason=reason,
        )
    if order.error_code:
        messages.error(
            request,
            f"Close order {order.pk} {order.status.lower()}: {order.error_message} ({order.error_code})",
        )
    else:
        _ok(request, f"Position {position_id} closed at market: order {order.pk} {order.status.lower()}.")
    return _card(user_id, "positions")


@staff_required("request_adjustment", "approve_adjustment")
@require_http_methods(["GET", "POST"])
def client_adjustment_view(request: HttpRequest, user_id: int) -> HttpResponse:
    """Balance adjustment page: request (Operations), then a different person approves (Super Admin)."""
    subject = User.objects.filter(pk=user_id, is_staff=False).first()
    if subject is None:
        raise Http404("no such client")
    if request.method == "POST":
        require(request.user, "request_adjustment")
        try:
            adjustment = adjustment_request(
                user_id=user_id,
                amount=request.POST.get("amount", ""),
                reason=request.POST.get("reason", ""),
                acting_user=acting(request),
                request=request,
            )
        except ApplicationError as exc:
            flash_error(request, exc)
        else:
            _ok(
                request,
                f"Adjustment {adjustment.pk} of {adjustment.amount:,.6f} USDC requested: another person must approve it.",
            )
            return redirect(reverse("console:client_adjustment", args=[user_id]))
    rows = list(
        BalanceAdjustment.objects.filter(user_id=user_id)
        .select_related("requested_by", "decided_by")
        .order_by("-id")[:50]
    )
    return render(
        request,
        "console/client_adjustment.html",
        {
            "page": "users",
            "subject": subject,
            "rows": rows,
            "can_request": can(request.user, "request_adjustment"),
            "can_approve": can(request.user, "approve_adjustment"),
            "form": request.POST if request.method == "POST" else {},
        },
    )


@staff_required("approve_adjustment")
@require_POST
def adjustment_decide_view(request: HttpRequest, adjustment_id: int) -> HttpResponse:
    approve = request.POST.get("decision") == "approve"
    try:
        row = adjustment_decide(
            adjustment_id=adjustment_id,
            acting_user=acting(request),
            approve=approve,
            note=request.POST.get("reason", ""),
            request=request,
        )
    except ApplicationError as exc:
        flash_error(request, exc)
        row = BalanceAdjustment.objects.filter(pk=adjustment_id).first()
        if row is None:
            return redirect(reverse("console:users"))
    else:
        _ok(request, f"Adjustment {row.pk} {row.status.lower()}.")
    return redirect(reverse("console:client_adjustment", args=[row.user_id]))


@staff_required("view_user_data")
@require_GET
def client_journal_export_view(request: HttpRequest, user_id: int) -> HttpResponse:
    require(request.user, "export_data")
    if not User.objects.filter(pk=user_id).exists():
        raise Http404("no such user")
    window = time_window(request, default="30d")
    kinds = request.GET.getlist("kind")
    with transaction.atomic():
        audit_record(
            action="console.export",
            actor=request.user,
            request=request,
            object_type="user",
            object_id=user_id,
            after={"section": "journal", "kinds": kinds, "since": window.since, "until": window.until},
        )
    entries = journal.journal(user_id, window, kinds=kinds, limit=10_000)
    return csv_response(
        f"user-{user_id}-journal.csv", journal.CSV_HEADER, (journal.csv_row(e) for e in entries)
    )


# --- four-eyes proposals ------------------------------------------------------------------------------

PROPOSAL_PERMISSIONS = ("reset_client_2fa", "manage_staff", "manage_risk_config", "manage_routing")


@staff_required(*PROPOSAL_PERMISSIONS)
@require_GET
def proposals_view(request: HttpRequest) -> HttpResponse:
    if request.GET.get("format") == "csv":
        header = (
            "id",
            "kind",
            "target",
            "subject",
            "payload",
            "reason",
            "status",
            "proposed_by",
            "proposed_at",
            "decided_by",
            "decided_at",
            "error",
        )
        rows = (
            (
                p.pk,
                p.kind,
                p.target_user.email if p.target_user else "",
                p.subject,
                p.payload,
                p.reason,
                p.status,
                p.proposed_by.email,
                p.proposed_at,
                p.decided_by.email if p.decided_by else "",
                p.decided_at,
                p.error,
            )
            for p in StaffProposal.objects.select_related(
                "proposed_by", "decided_by", "target_user"
            ).order_by("-id")
        )
        return export_csv(request, "four-eyes-proposals.csv", header, rows, what="staff_proposals")
    recent = list(
        StaffProposal.objects.select_related("proposed_by", "decided_by", "target_user").order_by("-id")[:50]
    )

    for p in recent:
        p.text = proposal_describe(p)  # type: ignore[attr-defined]
    return render(
        request,
        "console/proposals.html",
        {
            "page": "proposals",
            "open": [p for p in recent if p.status == "PROPOSED"],
            "recent": recent,
            "can_export": can(request.user, "export_data"),
        },
    )


@staff_required(*PROPOSAL_PERMISSIONS)
@require_POST
def proposal_decide_view(request: HttpRequest, proposal_id: int) -> HttpResponse:
    decision = request.POST.get("decision", "")
    try:
        proposal = proposal_decide(
            proposal_id=proposal_id,
            acting_user=acting(request),
            approve=decision == "approve",
            note=request.POST.get("reason", ""),
            request=request,
        )
    except ApplicationError as exc:
        flash_error(request, exc)
    else:
        if proposal.status == StaffProposal.Status.FAILED:
            messages.error(request, f"Proposal {proposal.pk} approved but refused: {proposal.error}")
        else:
            _ok(request, f"Proposal {proposal.pk}: {proposal.get_status_display().lower()}.")
    back = request.POST.get("back", "")
    return redirect(
        back if back.startswith("/") and not back.startswith("//") else reverse("console:proposals")
    )


def client_open_proposals(user_id: int) -> list[StaffProposal]:
    return proposals_open(target_user_id=user_id)
