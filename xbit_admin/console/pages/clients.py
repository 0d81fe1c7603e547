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
from django.views.decorators.http import require_GET, require_http_methods

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
from core.accounts.models import ClientRestriction, StaffProposal, User
from core.audit.services import audit_record
from core.errors import ApplicationError, ErrorCode
from trading.models import Order
from trading.positions import position_close
from wallets.models import BalanceAdjustment
from wallets.services.adjustments import adjustment_decide, adjustment_request
from xbit_admin.console import desk_tables as dt
from xbit_admin.console import journal
from xbit_admin.console.access import staff_required
from xbit_admin.console.pages.actions import Said, local_url, perform, reason, staff_action
from xbit_admin.console.pages.common import (
    acting,
    can,
    csv_response,
    export_csv,
    flash_error,
    require,
    rows_csv,
    time_window,
)
from xbit_admin.console.tables import wants_csv

EXPIRY_CHOICES = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


def _card_url(user_id: int, anchor: str = "") -> str:
    return reverse("console:user_detail", args=[user_id]) + (f"#{anchor}" if anchor else "")


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


@staff_action("annotate_clients")
def client_note_view(request: HttpRequest, user_id: int) -> HttpResponse:
    return perform(
        request,
        lambda: client_note_add(
            user_id=user_id, body=request.POST.get("body", ""), acting_user=acting(request), request=request
        ),
        done="Note added to the client's journal.",
        back=_card_url(user_id, "journal"),
    )


@staff_action("annotate_clients")
def client_tag_view(request: HttpRequest, user_id: int) -> HttpResponse:
    tag = request.POST.get("tag", "")
    if request.POST.get("remove"):
        return perform(
            request,
            lambda: client_tag_remove(user_id=user_id, tag=tag, acting_user=acting(request), request=request),
            done=f"Tag {tag} removed.",
            back=_card_url(user_id),
        )
    return perform(
        request,
        lambda: client_tag_add(user_id=user_id, tag=tag, acting_user=acting(request), request=request),
        done=lambda row: f"Tag {row.tag} added.",
        back=_card_url(user_id),
    )


def _restricted(row: ClientRestriction) -> str:
    until = f"until {row.expires_at:%Y-%m-%d %H:%M} UTC" if row.expires_at else "until lifted"
    return f"Restricted: {row.get_kind_display()}, {until}."


@staff_action("restrict_clients")
def client_restrict_view(request: HttpRequest, user_id: int) -> HttpResponse:
    return perform(
        request,
        lambda: client_restrict(
            user_id=user_id,
            kind=request.POST.get("kind", ""),
            reason=reason(request),
            expires_at=_expiry(request.POST.get("expires", "")),
            acting_user=acting(request),
            request=request,
        ),
        done=_restricted,
        back=_card_url(user_id, "staff-actions"),
    )


@staff_action("restrict_clients")
def client_restriction_lift_view(request: HttpRequest, restriction_id: int) -> HttpResponse:
    return perform(
        request,
        lambda: client_restriction_lift(
            restriction_id=restriction_id,
            reason=reason(request),
            acting_user=acting(request),
            request=request,
        ),
        done=lambda row: f"Lifted: {row.get_kind_display()}.",
        back=lambda row: _card_url(row.user_id, "staff-actions"),
        refused_back=local_url(request.POST.get("back", ""), reverse("console:users")),
    )


@staff_action("reset_client_2fa")
def client_2fa_reset_view(request: HttpRequest, user_id: int) -> HttpResponse:
    return perform(
        request,
        lambda: client_2fa_reset_propose(
            user_id=user_id, reason=reason(request), acting_user=acting(request), request=request
        ),
        done=lambda proposal: f"2FA reset proposed (#{proposal.pk}): a second person must approve it.",
        back=_card_url(user_id, "staff-actions"),
    )


@staff_action("review_kyc")
def client_kyc_view(request: HttpRequest, user_id: int) -> HttpResponse:
    subject = User.objects.filter(pk=user_id, is_staff=False).first()
    if subject is None:
        raise Http404("no such client")
    status = request.POST.get("status", "")
    return perform(
        request,
        lambda: kyc_status_set(
            user=subject, status=status, acting_user=acting(request), reason=reason(request), request=request
        ),
        done=f"KYC set to {status.lower()}.",
        back=_card_url(user_id, "staff-actions"),
    )


def _position_close(request: HttpRequest, subject: User, position_id: int) -> Order:
    why = reason(request).strip()
    if not why:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.")
    order = position_close(user=subject, position_id=position_id, by="staff")
    with transaction.atomic():
        audit_record(
            action="client.position_close",
            actor=acting(request),
            request=request,
            object_type="user",
            object_id=subject.pk,
            after={
                "position_id": position_id,
                "order_id": order.pk,
                "status": order.status,
                "route": order.route,
            },
            reason=why,
        )
    return order


def _closed(position_id: int, order: Order) -> Said:
    if order.error_code:
        return (
            messages.error,
            f"Close order {order.pk} {order.status.lower()}: {order.error_message} ({order.error_code})",
        )
    return f"Position {position_id} closed at market: order {order.pk} {order.status.lower()}."


@staff_action("close_client_positions")
def client_position_close_view(request: HttpRequest, user_id: int, position_id: int) -> HttpResponse:
    """The dealer's close: a reduce-only market order for the whole position on its own venue, placed as
    the client's order, with the staff member and the reason in the audit log."""

    subject = User.objects.filter(pk=user_id, is_staff=False).first()
    if subject is None:
        raise Http404("no such client")
    return perform(
        request,
        lambda: _position_close(request, subject, position_id),
        done=lambda order: _closed(position_id, order),
        back=_card_url(user_id, "positions"),
    )


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
            messages.success(
                request,
                f"Adjustment {adjustment.pk} of {adjustment.amount:,.6f} USDC requested: another person must approve it.",
            )
            return redirect(reverse("console:client_adjustment", args=[user_id]))
    adjustments = (
        BalanceAdjustment.objects.filter(user_id=user_id)
        .select_related("requested_by", "decided_by")
        .order_by("-id")
    )
    if request.method == "GET" and wants_csv(request):  # every adjustment of the client
        return rows_csv(
            request,
            f"user-{user_id}-adjustments.csv",
            dt.ADJUSTMENT_COLUMNS,
            adjustments.iterator(chunk_size=2000),
            what="balance_adjustments",
        )
    rows = list(adjustments[:50])
    return render(
        request,
        "console/client_adjustment.html",
        {
            "page": "users",
            "subject": subject,
            "rows": rows,
            "can_request": can(request.user, "request_adjustment"),
            "can_approve": can(request.user, "approve_adjustment"),
            "can_export": can(request.user, "export_data"),
            "form": request.POST if request.method == "POST" else {},
        },
    )


def _adjustment_page(adjustment_id: int) -> str:
    row = BalanceAdjustment.objects.filter(pk=adjustment_id).first()
    return reverse("console:client_adjustment", args=[row.user_id]) if row else reverse("console:users")


@staff_action("approve_adjustment")
def adjustment_decide_view(request: HttpRequest, adjustment_id: int) -> HttpResponse:
    return perform(
        request,
        lambda: adjustment_decide(
            adjustment_id=adjustment_id,
            acting_user=acting(request),
            approve=request.POST.get("decision") == "approve",
            note=reason(request),
            request=request,
        ),
        done=lambda row: f"Adjustment {row.pk} {row.status.lower()}.",
        back=lambda row: reverse("console:client_adjustment", args=[row.user_id]),
        refused_back=lambda: _adjustment_page(adjustment_id),
    )


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


def _decided(proposal: StaffProposal) -> Said:
    if proposal.status == StaffProposal.Status.FAILED:
        return messages.error, f"Proposal {proposal.pk} approved but refused: {proposal.error}"
    return f"Proposal {proposal.pk}: {proposal.get_status_display().lower()}."


@staff_action(*PROPOSAL_PERMISSIONS)
def proposal_decide_view(request: HttpRequest, proposal_id: int) -> HttpResponse:
    back = request.POST.get("back", "")
    return perform(
        request,
        lambda: proposal_decide(
            proposal_id=proposal_id,
            acting_user=acting(request),
            approve=request.POST.get("decision", "") == "approve",
            note=reason(request),
            request=request,
        ),
        done=_decided,
        back=local_url(back, reverse("console:proposals")),
    )


def client_open_proposals(user_id: int) -> list[StaffProposal]:
    return proposals_open(target_user_id=user_id)
