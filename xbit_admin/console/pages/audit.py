"""Audit log (spec 07 §12: read-only, filterable, CSV, chain verification) and alerts (§11)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from core.alerts.conf import CHANNELS, channel_configured
from core.alerts.models import Alert, Delivery
from core.alerts.rules import rule_info
from core.alerts.services import alert_acknowledge, alert_resolve_manual
from core.audit.models import AuditEntry
from core.audit.services import audit_chain_verify, audit_record
from xbit_admin.console.access import staff_required
from xbit_admin.console.pages.actions import perform, reason, staff_action
from xbit_admin.console.pages.common import (
    can,
    csrf_input,
    csv_response,
    export_csv,
    keyset_page,
    require,
    time_window,
)

VERIFY_CACHE_KEY = "console:audit_chain_verify"
AUDIT_FILTERS = ("actor", "action", "object_type", "object_id")


def _audit_qs(request: HttpRequest) -> QuerySet[AuditEntry]:
    qs = AuditEntry.objects.all()
    actor = request.GET.get("actor", "").strip()
    if actor:
        qs = qs.filter(actor_label__istartswith=actor)
    action = request.GET.get("action", "").strip()
    if action:
        qs = qs.filter(Q(action=action) | Q(action__startswith=action.rstrip(".") + "."))
    for name in ("object_type", "object_id"):
        value = request.GET.get(name, "").strip()
        if value:
            qs = qs.filter(**{name: value})
    return time_window(request, default="all").apply(qs)


@staff_required("view_audit_log")
@require_GET
def audit_view(request: HttpRequest) -> HttpResponse:
    page = keyset_page(_audit_qs(request), request)
    window = time_window(request, default="all")
    return render(
        request,
        "console/audit.html",
        {
            "page": "audit",
            "entries": page,
            "filters": {name: request.GET.get(name, "") for name in (*AUDIT_FILTERS, "since", "until")},
            "filter_errors": window.errors,
            "actions": list(AuditEntry.objects.order_by().values_list("action", flat=True).distinct()[:200]),
            "object_types": list(
                AuditEntry.objects.order_by()
                .exclude(object_type="")
                .values_list("object_type", flat=True)
                .distinct()[:100]
            ),
            "verify": cache.get(VERIFY_CACHE_KEY),
            "can_export": can(request.user, "export_data"),
        },
    )


@staff_required("view_audit_log")
@require_GET
def audit_export_view(request: HttpRequest) -> HttpResponse:
    """CSV of the filtered log. Needs view_audit_log and export_data; the export itself is audited."""
    require(request.user, "export_data")
    filters = {name: request.GET.get(name, "") for name in (*AUDIT_FILTERS, "since", "until", "range")}
    with transaction.atomic():
        audit_record(
            action="console.export",
            actor=request.user,
            request=request,
            object_type="audit_log",
            after={k: v for k, v in filters.items() if v},
        )
    header = (
        "id",
        "created_at",
        "actor",
        "ip",
        "action",
        "object_type",
        "object_id",
        "before",
        "after",
        "reason",
        "hash",
    )
    rows = (
        (
            e.pk,
            e.created_at,
            e.actor_label,
            e.ip,
            e.action,
            e.object_type,
            e.object_id,
            e.before,
            e.after,
            e.reason,
            e.hash,
        )
        for e in _audit_qs(request).order_by("id").iterator(chunk_size=2000)
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    return csv_response(f"audit-log-{stamp}.csv", header, rows)


@staff_required("view_audit_log")
@require_http_methods(["GET", "POST"])
def audit_verify_view(request: HttpRequest) -> HttpResponse:
    """Recompute every hash of the chain now (read-only; the result is kept for everyone to see).
    GET shows the last result and the button."""
    if request.method == "GET":
        return render(
            request, "console/audit_verify.html", {"page": "audit", "verify": cache.get(VERIFY_CACHE_KEY)}
        )
    started = timezone.now()
    report = audit_chain_verify()
    result: dict[str, Any] = {
        "ok": report.ok,
        "checked": report.checked,
        "broken_at": report.broken_at,
        "problem": report.problem,
        "at": started,
        "seconds": (timezone.now() - started).total_seconds(),
        "by": request.user.email,
    }
    cache.set(VERIFY_CACHE_KEY, result, timeout=None)
    if report.ok:
        messages.success(
            request,
            f"Audit chain intact: {report.checked} entr{'y' if report.checked == 1 else 'ies'} verified.",
        )
    else:
        messages.error(request, f"Audit chain BROKEN at entry {report.broken_at}: {report.problem}.")
    return redirect(reverse("console:audit"))


# --- alerts -----------------------------------------------------------------------------------------

STATES = [Alert.State.OPEN, Alert.State.ACKNOWLEDGED, Alert.State.RESOLVED]
ALERTS_SHOWN = 200
RESOLVED_COUNT_CAP = 1000
_ID_MARK = 918273645  # stands for the id in a reversed URL; only digits, so no quoting touches it


def _url_for_id(name: str) -> Callable[[int], str]:
    """``reverse(name, args=[id])`` for many ids from a single reverse()."""
    head, tail = reverse(name, args=[_ID_MARK]).split(str(_ID_MARK), 1)
    return lambda pk: f"{head}{int(pk)}{tail}"


def _state_counts() -> dict[str, int | str]:
    """Alerts per state for the tabs. Open and acknowledged alerts are few; resolved ones are the
    whole history, so they are counted up to a cap ("1,000+") instead of scanning every row."""
    counts: dict[str, int | str] = dict(
        Alert.objects.filter(state__in=[Alert.State.OPEN, Alert.State.ACKNOWLEDGED])
        .values("state")
        .order_by()
        .annotate(n=Count("id"))
        .values_list("state", "n")
    )
    resolved = Alert.objects.filter(state=Alert.State.RESOLVED).order_by()[: RESOLVED_COUNT_CAP + 1].count()
    counts[Alert.State.RESOLVED] = f"{RESOLVED_COUNT_CAP:,}+" if resolved > RESOLVED_COUNT_CAP else resolved
    return counts


@staff_required("view_console")
@require_GET
def alerts_view(request: HttpRequest) -> HttpResponse:
    state = request.GET.get("state", Alert.State.OPEN)
    if state not in STATES and state != "all":
        state = Alert.State.OPEN
    qs = Alert.objects.select_related("acknowledged_by").prefetch_related(
        Prefetch("deliveries", queryset=Delivery.objects.order_by("id"), to_attr="delivery_list")
    )
    if state != "all":
        qs = qs.filter(state=state)
    severity = request.GET.get("severity", "")
    if severity in Alert.Severity.values:
        qs = qs.filter(severity=severity)
    ordering = ["severity", "-last_seen"] if state != Alert.State.RESOLVED else ["-resolved_at"]
    if request.GET.get("format") == "csv":
        header = (
            "id",
            "severity",
            "rule",
            "subject",
            "message",
            "state",
            "count",
            "first_seen",
            "last_seen",
            "acknowledged_by",
            "resolved_at",
        )
        rows = (
            (
                a.pk,
                a.severity,
                a.rule,
                a.subject,
                a.message,
                a.state,
                a.count,
                a.first_seen,
                a.last_seen,
                a.acknowledged_by.email if a.acknowledged_by else "",
                a.resolved_at,
            )
            for a in qs.order_by(*ordering).iterator(chunk_size=2000)
        )
        return export_csv(request, "alerts.csv", header, rows, what="alerts")
    counts = _state_counts()
    alerts = list(qs.order_by(*ordering)[:ALERTS_SHOWN])
    # Per-row work done once per page: the catalogue lookup once per distinct rule, the two action
    # URLs from one reverse() each (reverse costs ~0.1-0.2 ms, twice per row in the template).
    infos: dict[str, Any] = {}
    ack_url = _url_for_id("console:alert_ack")
    resolve_url = _url_for_id("console:alert_resolve")
    for alert in alerts:  # the catalogue entry: title and runbook hint (rules.py)
        if alert.rule not in infos:
            infos[alert.rule] = rule_info(alert.rule)
        alert.info = infos[alert.rule]  # type: ignore[attr-defined]
        alert.ack_url = ack_url(alert.pk)  # type: ignore[attr-defined]
        alert.resolve_url = resolve_url(alert.pk)  # type: ignore[attr-defined]
    can_ack = can(request.user, "acknowledge_alerts")
    return render(
        request,
        "console/alerts.html",
        {
            "page": "alerts",
            "alerts": alerts,
            "channels": [c for c in CHANNELS if channel_configured(c)],
            "state": state,
            "severity": severity,
            "states": STATES,
            "severities": Alert.Severity.values,
            "counts": counts,
            "can_ack": can_ack,
            "can_export": can(request.user, "export_data"),
            # one hidden CSRF input for every row's forms (the tag re-renders it through a lazy object)
            "csrf_input": csrf_input(request) if can_ack and alerts else "",
        },
    )


def _back(request: HttpRequest) -> str:
    state = request.POST.get("back_state", "")
    url = reverse("console:alerts")
    return f"{url}?state={state}" if state in STATES or state == "all" else url


@staff_action("acknowledge_alerts")
def alert_ack_view(request: HttpRequest, alert_id: int) -> HttpResponse:
    return perform(
        request,
        lambda: alert_acknowledge(alert_id=alert_id, acting_user=request.user, request=request),
        done=f"Alert {alert_id} acknowledged: escalation stops; it stays until resolved.",
        back=_back(request),
    )


@staff_action("acknowledge_alerts")
def alert_resolve_view(request: HttpRequest, alert_id: int) -> HttpResponse:
    return perform(
        request,
        lambda: alert_resolve_manual(
            alert_id=alert_id, acting_user=request.user, reason=reason(request), request=request
        ),
        done=f"Alert {alert_id} resolved.",
        back=_back(request),
    )
