"""Risk pages (spec 07 §1, §3–6, §10, §13): the live overview, liquidations, drift, risk config with
the circuit breakers, and the hedge / reconciliation / stress pages that read ``risk.selectors``."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core.accounts.four_eyes import proposal_describe, proposals_open
from core.accounts.models import StaffProposal
from core.audit.services import audit_record
from core.errors import ApplicationError, ErrorCode
from core.money import CONFIG_INPUT, DecimalShape, decimal_from_text
from risk.breakers import breaker_reset, kill_switch_set
from risk.config import editable_fields, risk_config, risk_config_update
from risk.hedge_config import hedge_config, policy_for
from risk.hedge_models import HedgeInstruction
from risk.hedge_orders import hedge_manual_order
from risk.hedge_policy import allocate
from risk.models import CircuitBreaker, DeviationLog, LiquidationTrigger, RiskConfig
from risk.reconciliation import reconciliation_run
from risk.selectors import hedge_overview, hedge_recommendations
from risk.selectors import stress_view as stress_selector
from routing.decision import Mode
from routing.models import GLOBAL, RoutingConfig
from routing.selectors import asset_routing
from routing.services import routing_config_update
from trading.models import TradingState
from trading.selectors import listed_assets
from xbit_admin.console import desk_tables as dt
from xbit_admin.console import risk_reads as reads
from xbit_admin.console.access import staff_required
from xbit_admin.console.four_eyes_risk import config_change_propose, four_eyes_guard, risk_four_eyes_on
from xbit_admin.console.pages.actions import Said, perform, reason, staff_action
from xbit_admin.console.pages.common import (
    can,
    csv_response,
    export_csv,
    flash_error,
    keyset_page,
    require,
    rows_csv,
    table_csv,
)
from xbit_admin.console.tables import table_view, wants_csv
from xbit_admin.console.venue import margin_ratio_history

SHOCK_INPUT = DecimalShape(4, 4)  # a percentage typed on the stress page

# --- overview ------------------------------------------------------------------------------------


def overview_context(user: Any) -> dict[str, Any]:
    risk = can(user, "view_risk")
    context = reads.overview_live(risk=risk)
    if risk:
        context["bbook"] = reads.bbook_summary()
    context["manage_breakers"] = can(user, "manage_breakers")
    context["can_export"] = can(user, "export_data")
    return context


@staff_required("view_console")
def overview_view(request: HttpRequest) -> HttpResponse:
    context = overview_context(request.user)
    if wants_csv(request, "exposure"):
        return rows_csv(
            request, "exposure.csv", dt.EXPOSURE_COLUMNS, context.get("exposure") or [], what="exposure"
        )
    context["page"] = "overview"
    return render(request, "console/overview.html", context)


# --- liquidations --------------------------------------------------------------------------------

LIQ_FILTERS = ("asset", "status", "venue")


@staff_required("view_risk")
def liquidations_view(request: HttpRequest) -> HttpResponse:
    filters = {name: request.GET.get(name, "") for name in LIQ_FILTERS}
    if request.GET.get("format") == "csv":
        header = (
            "trigger_id",
            "detected_at",
            "completed_at",
            "user",
            "kind",
            "asset",
            "venue",
            "status",
            "trigger_price",
            "close_price",
            "size",
            "margin_zeroed",
        )
        rows = (
            (
                t.trigger_id,
                t.detected_at,
                t.completed_at,
                t.user.email,
                t.kind,
                t.asset,
                t.venue,
                t.status,
                t.trigger_price,
                t.close_price,
                t.size,
                t.margin_zeroed,
            )
            for t in reads.liquidation_history(filters).order_by("-id").iterator(chunk_size=2000)
        )
        return export_csv(request, "liquidations.csv", header, rows, what="liquidations")
    page = keyset_page(reads.liquidation_history(filters), request)
    for trigger in page.rows:
        trigger.latency_ms = reads.liquidation_latency_ms(trigger)
    return render(
        request,
        "console/liquidations.html",
        {
            "page": "liquidations",
            "today": reads.liquidations_today(),
            "escalations": reads.escalations(),
            "history": page,
            "filters": filters,
            "statuses": LiquidationTrigger.Status.choices,
            "can_export": can(request.user, "export_data"),
        },
    )


# --- drift ---------------------------------------------------------------------------------------

DRIFT_LISTED_RATE = Decimal("0.01")  # the records table lists drift rates above 1 %


@staff_required("view_risk")
def drift_view(request: HttpRequest) -> HttpResponse:
    recent, _ = table_view(
        request,
        DeviationLog.objects.filter(deviation_rate__gt=DRIFT_LISTED_RATE),
        columns=dt.DRIFT_COLUMNS,
        filters=dt.DRIFT_FILTERS,
        default_sort="-created_at",
        name="recent",
    )
    if wants_csv(request, "recent"):
        return table_csv(request, recent, "drift-records.csv", what="drift_records")
    drift = reads.drift_overview()
    ranking, _ = table_view(
        request,
        drift["ranking"],
        columns=dt.DRIFT_RANKING_COLUMNS,
        filters=dt.DRIFT_RANKING_FILTERS,
        default_sort="-total",
        name="ranking",
    )
    if wants_csv(request, "ranking"):
        return table_csv(request, ranking, "drift-per-asset-30d.csv", what="drift_ranking")
    return render(
        request,
        "console/drift.html",
        {
            "page": "drift",
            "drift": drift,
            "ranking": ranking,
            "recent": recent,
            "cfg": risk_config(),
            "can_export": can(request.user, "export_data"),
        },
    )


# --- risk config ---------------------------------------------------------------------------------

# Field → (section, label, unit, what a change does). Fields not listed fall back to their help text.
RISK_FIELDS: dict[str, tuple[str, str, str, str]] = {
    "exposure_asset_alert": ("Exposure", "Single-asset net exposure alert", "USD", "P1 alert above this"),
    "exposure_asset_critical": (
        "Exposure",
        "Single-asset net exposure critical",
        "USD",
        "P0 alert above this",
    ),
    "exposure_total_alert": ("Exposure", "Total internal exposure alert", "USD", "P1 alert above this"),
    "exposure_total_critical": ("Exposure", "Total internal exposure critical", "USD", "P0 alert above this"),
    "exposure_snapshot_seconds": ("Exposure", "Exposure snapshot interval", "s", "chart resolution"),
    "daily_loss_alert": ("Daily loss", "Daily INTERNAL net loss alert", "USD", "P1 alert above this"),
    "daily_loss_trip": ("Daily loss", "Daily loss breaker", "USD", "internalization stops above this"),
    "reserve_normal": (
        "Reserve",
        "Reserve normal level",
        "USD",
        "below: warning, routing thresholds lowered",
    ),
    "reserve_halt": ("Reserve", "Reserve halt level", "USD", "below: all internalization halted"),
    "reserve_warning_threshold_factor": (
        "Reserve",
        "Routing threshold factor at warning",
        "×",
        "routing thresholds multiplied by this while the reserve is low",
    ),
    "volatility_move": (
        "Breakers",
        "Volatility move",
        "fraction",
        "force-HL for an asset moving more than this",
    ),
    "volatility_window_seconds": ("Breakers", "Volatility window", "s", "window of the move"),
    "volatility_reset_minutes": ("Breakers", "Volatility reset", "min", "calm minutes before reset"),
    "price_jump_move": ("Breakers", "Price jump", "fraction", "one update moving more holds the price"),
    "price_jump_overrides": ("Breakers", "Price jump per asset", "JSON", "per-asset override of the jump"),
    "price_jump_reset_updates": ("Breakers", "Price jump reset", "updates", "normal updates before reset"),
    "latency_alert_ms": ("HL market data", "Latency alert", "ms", "P1 alert above this"),
    "latency_trip_ms": ("HL market data", "Latency breaker", "ms", "internalization stops above this"),
    "disconnect_alert_seconds": ("HL market data", "Disconnect alert", "s", "alert after no data this long"),
    "disconnect_trip_seconds": (
        "HL market data",
        "Disconnect breaker",
        "s",
        "all new orders halted after this",
    ),
    "drift_log_usd": ("Drift", "Drift log level", "USD", "drift below this is not recorded"),
    "drift_alert_rate": ("Drift", "Drift alert rate", "fraction", "P1 alert above this rate"),
    "drift_critical_rate": ("Drift", "Drift critical rate", "fraction", "HL routing halted for the asset"),
    "drift_daily_review": ("Drift", "Daily drift review", "USD", "manual review above this per day"),
    "drift_daily_critical": ("Drift", "Daily drift critical", "USD", "P0 above this per day"),
    "drift_refund_user_when_favourable": (
        "Drift",
        "Refund favourable drift",
        "on/off",
        "users get drift in their favour",
    ),
    "funding_interval_seconds": ("Funding", "Funding interval", "s", "how often funding settles"),
    "funding_drift_alert_rate": ("Funding", "Funding drift alert", "fraction", "P1 above this"),
    "funding_drift_critical_rate": ("Funding", "Funding drift critical", "fraction", "P0 above this"),
    "liquidation_sweep_ms": ("Liquidation", "Liquidation sweep", "ms", "safety sweep interval, 500–2,000"),
    "liquidation_max_retries": ("Liquidation", "Liquidation retries", "", "then ESCALATED"),
    "liquidation_retry_delay_ms": ("Liquidation", "Liquidation retry delay", "ms", "between attempts"),
    "liquidation_batch_size": (
        "Liquidation",
        "Liquidation batch size",
        "",
        "INTERNAL liquidations per transaction",
    ),
    "liquidation_lease_seconds": (
        "Liquidation",
        "Liquidation lease",
        "s",
        "re-driven by the sweep after this",
    ),
}
ROUTING_FIELDS: dict[str, tuple[str, str, str]] = {
    "normal_threshold": ("Normal threshold", "USDC", "NORMAL_MODE internalizes orders up to this notional"),
    "betting_threshold": (
        "Betting threshold",
        "USDC",
        "BETTING_MODE internalizes orders up to this notional",
    ),
    "hl_mode_exposure_threshold": ("HL trigger", "USD", "|net exposure| at or above this → HL_MODE"),
    "betting_mode_exposure_threshold": (
        "Betting trigger",
        "USD",
        "|net exposure| at or below → BETTING_MODE",
    ),
    "max_internal_order_notional": ("Max internal order", "USDC", "hard cap on one internalized order"),
    "hl_exit_factor": ("HL exit factor", "×", "leave HL_MODE below trigger × this"),
    "betting_exit_factor": ("Betting exit factor", "×", "leave BETTING_MODE above trigger × this"),
}


def _field_default(name: str) -> Any:
    default = RiskConfig._meta.get_field(name).default
    return default() if callable(default) else default


def risk_config_rows() -> list[dict[str, Any]]:
    cfg = risk_config()
    changes = reads.last_changes("risk.config_update", "default")
    rows = []
    for name in editable_fields():
        section, label, unit, effect = RISK_FIELDS.get(
            name, ("Other", name.replace("_", " "), "", str(RiskConfig._meta.get_field(name).help_text))
        )
        value = getattr(cfg, name)
        rows.append(
            {
                "scope": "risk",
                "name": name,
                "section": section,
                "label": label,
                "unit": unit,
                "effect": effect,
                "value": value,
                "default": _field_default(name),
                "kind": RiskConfig._meta.get_field(name).get_internal_type(),
                "changed": changes.get(name),
            }
        )
    order = list(dict.fromkeys(v[0] for v in RISK_FIELDS.values()))
    rows.sort(key=lambda r: order.index(r["section"]) if r["section"] in order else len(order))
    return rows


def routing_config_rows() -> list[dict[str, Any]]:
    row = RoutingConfig.objects.get(asset=GLOBAL)
    changes = reads.last_changes("routing.config_update", GLOBAL)
    out = []
    for name, (label, unit, effect) in ROUTING_FIELDS.items():
        field = RoutingConfig._meta.get_field(name)
        out.append(
            {
                "scope": "routing",
                "name": name,
                "section": "Routing (global; per-asset overrides on the Routing page)",
                "label": label,
                "unit": unit,
                "effect": effect,
                "value": getattr(row, name),
                "default": field.default if field.has_default() else None,
                "kind": field.get_internal_type(),
                "changed": changes.get(name),
            }
        )
    return out


def _parse(kind: str, raw: str, name: str) -> Any:
    """The console's own check before the service's: numeric thresholds must be above zero (a 0 would
    silently disable an alert or a breaker)."""
    raw = raw.replace(",", "").strip()
    if kind == "BooleanField":
        return raw in ("1", "true", "on", "yes")
    if kind == "JSONField":
        try:
            return json.loads(raw or "{}")
        except ValueError:
            raise ApplicationError(
                ErrorCode.VALIDATION_ERROR, f"{name}: not valid JSON.", {"field": name}
            ) from None
    try:
        number = decimal_from_text(raw, CONFIG_INPUT, signed=True, allow_zero=True)
    except InvalidOperation:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, f"{name}: {raw!r} is not a number.", {"field": name}
        ) from None
    if not number.is_finite() or number <= 0:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR,
            f"{name} must be greater than zero (got {raw}): a threshold of 0 or below would disable the "
            "check it drives.",
            {"field": name},
        )
    return number


def _four_eyes_context(user: Any) -> dict[str, Any]:
    """Open risk-config and routing proposals (one small read) and whether the rule is on."""

    proposals = proposals_open(kinds=[StaffProposal.Kind.RISK_CONFIG, StaffProposal.Kind.ROUTING_CONFIG])
    for p in proposals:
        p.text = proposal_describe(p)  # type: ignore[attr-defined]
    return {"four_eyes": risk_four_eyes_on(), "config_proposals": proposals}


@staff_required("view_risk", "manage_risk_config", "manage_routing", "manage_breakers")
@require_http_methods(["GET", "POST"])
def risk_config_view(request: HttpRequest) -> HttpResponse:
    user = request.user
    errors: dict[str, str] = {}
    typed: dict[str, str] = {}  # a refused edit: what the operator typed, shown again in its field
    if request.method == "POST":
        scope, name = request.POST.get("scope", ""), request.POST.get("field", "")
        needed = {"risk": "manage_risk_config", "routing": "manage_routing"}.get(scope)
        if needed is None:
            raise Http404("unknown config scope")
        if not can(user, needed):
            raise PermissionDenied
        rows = {r["name"]: r for r in (risk_config_rows() if scope == "risk" else routing_config_rows())}
        if name not in rows:
            raise Http404("unknown field")
        try:
            value = _parse(rows[name]["kind"], request.POST.get("value", ""), name)
            if four_eyes_guard():  # proposed here, applied when a second person approves
                proposal = config_change_propose(
                    scope=scope,
                    changes={name: value},
                    acting_user=user,
                    reason=request.POST.get("reason", ""),
                    request=request,
                )
                messages.success(
                    request,
                    f"{rows[name]['label']} → {value} proposed (#{proposal.pk}): a second person applies it "
                    "(Four eyes page).",
                )
                return redirect(reverse("console:risk_config") + f"#f-{scope}-{name}")
            if scope == "risk":
                risk_config_update(
                    changes={name: value},
                    acting_user=user,
                    reason=request.POST.get("reason", ""),
                    request=request,
                )
            else:
                routing_config_update(
                    asset=GLOBAL,
                    changes={name: value},
                    acting_user=user,
                    reason=request.POST.get("reason", ""),
                    request=request,
                )
        except ApplicationError as exc:
            errors[f"{scope}:{name}"] = exc.message
            typed[f"{scope}:{name}"] = request.POST.get("value", "")
            flash_error(request, exc)
        else:
            messages.success(request, f"{rows[name]['label']} set to {value}.")
            return redirect(reverse("console:risk_config") + f"#f-{scope}-{name}")
    if request.method == "GET" and wants_csv(request, "thresholds"):
        rows = routing_config_rows() + risk_config_rows()
        return rows_csv(request, "risk-config.csv", dt.CONFIG_COLUMNS, rows, what="risk_config")
    if request.method == "GET" and wants_csv(request, "breakers"):
        return rows_csv(request, "breakers.csv", dt.BREAKER_COLUMNS, reads.breaker_rows(), what="breakers")
    risk_rows = risk_config_rows()
    routing_rows = routing_config_rows()
    for row in risk_rows + routing_rows:
        row["error"] = errors.get(f"{row['scope']}:{row['name']}", "")
        row["typed"] = typed.get(f"{row['scope']}:{row['name']}")
    sections: dict[str, list[dict[str, Any]]] = {}
    for row in routing_rows + risk_rows:
        sections.setdefault(row["section"], []).append(row)
    return render(
        request,
        "console/risk_config.html",
        {
            "page": "risk_config",
            "sections": sections,
            "can_risk": can(user, "manage_risk_config"),
            "can_routing": can(user, "manage_routing"),
            "manage_breakers": can(user, "manage_breakers"),
            "breakers": reads.breaker_rows(),
            "can_export": can(user, "export_data"),
            **_four_eyes_context(user),
        },
        status=400 if errors else 200,
    )


# --- circuit breakers ----------------------------------------------------------------------------


@staff_action("manage_breakers")
def breaker_reset_view(request: HttpRequest, kind: str, scope: str) -> HttpResponse:
    if kind not in CircuitBreaker.Kind.values or kind == CircuitBreaker.Kind.KILL_SWITCH:
        raise Http404("unknown breaker")
    return perform(
        request,
        lambda: breaker_reset(
            kind=kind, scope=scope, acting_user=request.user, reason=reason(request), request=request
        ),
        done=lambda changed: (
            (messages.success, f"{kind} {scope} reset.")
            if changed
            else (messages.info, f"{kind} {scope} was not tripped.")
        ),
        back=_back(request),
    )


def _kill_switch_said(action: str, mode: str) -> Said:
    if action == "on":
        return (
            messages.warning,
            f"Kill switch ON: every market {mode}; closing and liquidation still allowed.",
        )
    return "Kill switch off: markets return to their own state."


@staff_action("manage_breakers")
def kill_switch_view(request: HttpRequest, action: str) -> HttpResponse:
    if action not in ("on", "off"):
        raise Http404("unknown action")
    mode = request.POST.get("mode", TradingState.HALTED)
    return perform(
        request,
        lambda: kill_switch_set(
            active=action == "on", mode=mode, acting_user=request.user, reason=reason(request)
        ),
        done=_kill_switch_said(action, mode),
        back=_back(request),
    )


def _back(request: HttpRequest) -> str:
    target = request.POST.get("next", "")
    return (
        target
        if target in (reverse("console:overview"), reverse("console:risk_config"))
        else reverse("console:risk_config")
    )


# --- hedge, reconciliation, stress (risk.selectors) ------------------------------------------------


def _hedge_history() -> dict[str, Any]:
    """The hedge account's margin ratio over 24 h in % (the lowest of each bucket, at most ~600 points)."""
    now = timezone.now()
    return margin_ratio_history(now - timedelta(hours=24), now)["hedge"]


@staff_required("view_risk", "manage_hedge")
def hedge_view(request: HttpRequest) -> HttpResponse:
    orders, _ = table_view(
        request,
        HedgeInstruction.objects.all(),
        columns=dt.HEDGE_ORDER_COLUMNS,
        filters=dt.HEDGE_ORDER_FILTERS,
        default_sort="-created_at",
        name="orders",
    )
    if wants_csv(request, "orders"):
        return table_csv(request, orders, "hedge-orders.csv", what="hedge_orders")
    data = hedge_overview()
    account = {a.name: a for a in reads.hl_accounts()}.get("hedge")
    ratio = account.snapshot.margin_ratio if account and account.snapshot else None
    rows = data["assets"]
    # the orange banner of each asset in HL_MODE, with the hedge the policy recommends for it now
    in_hl_mode = [a for a in rows if asset_routing(a).mode is Mode.HL_MODE]
    banners = hedge_recommendations(in_hl_mode) if in_hl_mode else {}
    capacity = _hedge_capacity(rows, account.snapshot.account_value if account and account.snapshot else None)
    assets = [
        {
            "asset": asset,
            "net": row["net_exposure"],
            "target": row["target_notional"],
            "target_ratio": row["target_ratio"],
            "current": row["current_notional"],
            "coverage": row["coverage"],
            "gap": row["gap"],
            "leverage": row["leverage"],
            "entry": row["entry_price"],
            "upnl": row["unrealized_pnl"],
            "cost": row["cost_to_date"],
            "fees": row["fees"],
            "funding": row["funding"],
            "slippage": row["slippage"],
            "roi": row["roi"],
            "banner": banners.get(asset),
        }
        for asset, row in sorted(rows.items())
    ]
    per_asset, _ = table_view(
        request,
        assets,
        columns=dt.HEDGE_ASSET_COLUMNS,
        filters=dt.HEDGE_ASSET_FILTERS,
        default_sort="asset",
        name="assets",
    )
    if wants_csv(request, "assets"):
        return table_csv(request, per_asset, "hedge-assets.csv", what="hedge_assets")
    return render(
        request,
        "console/hedge.html",
        {
            "page": "hedge",
            "manage": can(request.user, "manage_hedge"),
            "account": account,
            # the gauge spans 0–1000 % (hedge_live.js moves the needle the same way)
            "gauge_pos": None if ratio is None else f"{min(ratio * 10, Decimal(100)):.1f}",
            "history": _hedge_history(),
            "asset_names": _listed_assets(),
            "assets": assets,
            "mode": data["mode"],
            "cost_to_date": data["cost_to_date"],
            "per_asset": per_asset,
            "orders": orders,
            "capacity": capacity,
            "can_export": can(request.user, "export_data"),
        },
    )


def _hedge_capacity(rows: dict[str, dict[str, Any]], account_value: Decimal | None) -> dict[str, Any] | None:
    """Spec 05 capacity, as the hedge engine allocates it: the margin every target needs at its
    leverage against the hedge account's value; the largest exposures are covered first, the rest go
    uncovered (HL_MODE) until the account is topped up by ``top_up``."""

    if account_value is None:
        return None
    targets = {a: r["target_notional"] for a, r in rows.items() if r["target_notional"]}
    alloc = allocate(targets, available_margin=account_value, policy=policy_for(hedge_config()))
    return {
        "margin_needed": alloc.margin_needed,
        "account_value": account_value,
        "uncovered": sorted(alloc.uncovered),
        "top_up": alloc.top_up,
    }


def _listed_assets() -> list[str]:
    return list(listed_assets())


@staff_required("manage_hedge")
@require_http_methods(["GET", "POST"])
def hedge_manual_view(request: HttpRequest) -> HttpResponse:
    """Manual hedge order (spec 05): the hedge service's audited ``hedge_manual_order``, the same one
    the ops API calls."""

    if request.method == "POST":
        try:
            instruction = hedge_manual_order(
                acting_user=request.user,
                asset=request.POST.get("asset", "").strip().upper(),
                side=request.POST.get("side", ""),
                notional=request.POST.get("value", "").replace(",", "").strip(),
                reason=request.POST.get("reason", ""),
                request=request,
            )
        except ApplicationError as exc:
            flash_error(request, exc)
        except (InvalidOperation, ValueError) as exc:
            messages.error(request, f"Invalid manual hedge: {exc}")
        else:
            messages.success(request, f"Manual hedge {instruction.instruction_id}: {instruction.status}.")
        return redirect(reverse("console:hedge"))
    return render(request, "console/hedge_manual.html", {"page": "hedge", "assets": _listed_assets()})


@staff_required("manage_risk_config")
@require_POST
def reconciliation_run_view(request: HttpRequest) -> HttpResponse:
    """ "Run now": every dimension at once, in this request (about a second at 100k positions; HL
    queries have their own timeouts), one run at a time platform-wide, audited; the page then shows it."""

    if not cache.add("console:reconciliation-run", 1, timeout=120):
        messages.info(request, "A reconciliation run started from the console is already in progress.")
        return redirect(reverse("console:reconciliation"))
    try:
        started = time.perf_counter()
        rows = reconciliation_run()
        took = time.perf_counter() - started
        counts = {status: sum(1 for r in rows if r.status == status) for status in ("OK", "WARN", "CRITICAL")}
        with transaction.atomic():
            audit_record(
                action="risk.reconciliation_run",
                actor=request.user,
                request=request,
                object_type="reconciliation",
                object_id=rows[0].run_id if rows else "",
                after={"rows": len(rows), **counts, "seconds": round(took, 3)},
                reason="run now (console)",
            )
    finally:
        cache.delete("console:reconciliation-run")
    line = (
        f"Reconciliation ran in {took:.1f} s: {len(rows)} rows, {counts['OK']} OK, "
        f"{counts['WARN']} WARN, {counts['CRITICAL']} CRITICAL."
    )
    (messages.success if not counts["WARN"] and not counts["CRITICAL"] else messages.warning)(request, line)
    return redirect(reverse("console:reconciliation"))


@staff_required("view_risk")
def reconciliation_view(request: HttpRequest) -> HttpResponse:
    dims = reads.recon_latest_by_dimension()
    if wants_csv(request):
        return rows_csv(
            request, "reconciliation-latest.csv", dt.RECON_LATEST_COLUMNS, dims, what="reconciliation"
        )
    summary: dict[str, dict[str, Any]] = {}
    for d in dims:
        d["readable"] = reads.recon_details(d["details"], d["unit"])
        s = summary.setdefault(
            d["dimension"], {"dimension": d["dimension"], "title": d["title"], "status": "OK"}
        )
        if reads.STATUS_RANK.get(d["status"], 3) > reads.STATUS_RANK.get(s["status"], 3):
            s["status"] = d["status"]
        s["level"] = reads.recon_level(s["status"])
        s["checked_at"] = d["checked_at"]
    return render(
        request,
        "console/reconciliation.html",
        {
            "page": "reconciliation",
            "dims": dims,
            "summary": list(summary.values()),
            "can_run": can(request.user, "manage_risk_config"),
            "can_export": can(request.user, "export_data"),
            "thresholds": _recon_thresholds(risk_config()),
        },
    )


def _recon_thresholds(cfg: Any) -> dict[str, str]:
    """The run-time thresholds, as the page states them (risk config)."""
    return {
        "warn_pct": f"{cfg.reconciliation_warn_rate * 100:g}",
        "critical_pct": f"{cfg.reconciliation_critical_rate * 100:g}",
        "warn_min": f"{cfg.reconciliation_warn_min_usdc:g}",
        "critical_min": f"{cfg.reconciliation_critical_min_usdc:g}",
    }


RECON_RANGES = {"24h": 1, "7d": 7, "30d": 30}


def _recon_window(request: HttpRequest) -> tuple[str, Any]:

    key = request.GET.get("range", "7d")
    if key not in RECON_RANGES:
        key = "7d"
    return key, timezone.now() - timedelta(days=RECON_RANGES[key])


@staff_required("view_risk")
def reconciliation_dimension_view(request: HttpRequest, dimension: str) -> HttpResponse:
    """Drill-down of one dimension: its deviation history (chart, one point per run) and its recent
    rows, optionally for one subject (an asset, an account, a chain:token)."""
    if dimension not in reads.RECON_DIMENSIONS and not reads.recon_history_qs(dimension).exists():
        raise Http404("unknown reconciliation dimension")
    range_key, since = _recon_window(request)
    subject = request.GET.get("subject", "").strip()
    title, unit, what = reads.RECON_DIMENSIONS.get(dimension, (dimension, "", ""))
    page = keyset_page(reads.recon_history_qs(dimension, subject, since), request)
    chart = reads.recon_chart(dimension, subject, since)
    # the badge: the newest run's worst row (of the chosen subject, if any), not the newest row alone
    latest = reads.recon_latest_run(dimension, subject)
    unit = reads.recon_unit(dimension, latest["details"] if latest else None) or unit
    for row in page.rows:
        row.readable = reads.recon_details(row.details, unit)
    statuses = dict(
        reads.recon_history_qs(dimension, subject, since)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return render(
        request,
        "console/reconciliation_dimension.html",
        {
            "page": "reconciliation",
            "dimension": dimension,
            "title": title,
            "unit": unit,
            "what": what,
            "subject": subject,
            "subjects": reads.recon_subjects(dimension, since),
            "range_key": range_key,
            "ranges": list(RECON_RANGES),
            "chart": chart,
            "latest": latest,
            "statuses": {s: statuses.get(s, 0) for s in ("OK", "WARN", "CRITICAL")},
            "runs": page,
            "can_export": can(request.user, "export_data"),
            "dimensions": [(name, info[0]) for name, info in reads.RECON_DIMENSIONS.items()],
        },
    )


@staff_required("view_risk")
@require_GET
def reconciliation_export_view(request: HttpRequest, dimension: str) -> HttpResponse:
    """CSV of one dimension's rows in the chosen window (and subject). Needs export_data; audited."""
    require(request.user, "export_data")
    range_key, since = _recon_window(request)
    subject = request.GET.get("subject", "").strip()
    _audit_export(request, "reconciliation", {"dimension": dimension, "range": range_key, "subject": subject})
    header = (
        "created_at",
        "run_id",
        "dimension",
        "subject",
        "expected",
        "actual",
        "deviation",
        "deviation_rate",
        "status",
        "details",
    )
    rows = (
        (
            r.created_at,
            r.run_id,
            r.dimension,
            r.subject,
            r.expected,
            r.actual,
            r.deviation,
            r.deviation_rate,
            r.status,
            json.dumps(r.details, sort_keys=True, cls=DjangoJSONEncoder),
        )
        for r in reads.recon_history_qs(dimension, subject, since)
        .order_by("-created_at", "-id")
        .iterator(chunk_size=2000)
    )
    suffix = f"-{subject}" if subject else ""
    return csv_response(f"reconciliation-{dimension}{suffix}-{range_key}.csv", header, rows)


def _audit_export(request: HttpRequest, what: str, after: dict[str, Any]) -> None:

    with transaction.atomic():
        audit_record(
            action="console.export",
            actor=request.user,
            request=request,
            object_type=what,
            after={k: v for k, v in after.items() if v not in ("", None)},
        )


# --- stress --------------------------------------------------------------------------------------

STRESS_PRESETS = (
    ("−5 % all", Decimal(-5)),
    ("−10 % all", Decimal(-10)),
    ("−20 % all", Decimal(-20)),
    ("+10 % all", Decimal(10)),
)


def _stress_input(
    request: HttpRequest,
) -> tuple[list[str], dict[str, str], dict[str, Decimal], dict[str, str]]:
    """(assets on the form, typed values, shocks as fractions, errors per asset). Any listed asset may
    be shocked through the query (``shock_<ASSET>`` in %); the form offers the held ones first."""

    listed = set(listed_assets())
    assets = reads.stress_assets()
    typed = {a: request.GET.get(f"shock_{a}", "").strip() for a in assets}
    for key, raw in request.GET.items():
        asset = key.removeprefix("shock_")
        if key.startswith("shock_") and asset in listed and asset not in typed:
            assets.append(asset)
            typed[asset] = raw.strip()
    shocks: dict[str, Decimal] = {}
    errors: dict[str, str] = {}
    for asset, raw in typed.items():
        if not raw:
            continue
        try:
            pct = decimal_from_text(
                raw.replace("−", "-").replace("%", "").replace(",", "."),
                SHOCK_INPUT,
                signed=True,
                allow_zero=True,
            )
        except InvalidOperation:
            errors[asset] = f"{asset}: {raw!r} is not a percentage."
            continue
        if not pct.is_finite() or not (Decimal(-100) < pct < Decimal(1000)):
            errors[asset] = f"{asset}: a shock must be above −100 % and below +1000 % (got {raw})."
            continue
        if pct:
            shocks[asset] = pct / 100
    return assets, typed, shocks, errors


@staff_required("view_risk")
def stress_view(request: HttpRequest) -> HttpResponse:
    assets, typed, shocks, errors = _stress_input(request)
    report = None
    if shocks and not errors:
        report = reads.stress_report(stress_selector(shocks))
        report["reserve_level"], report["reserve_note"] = reads.reserve_level(report["reserve_after"])
    presets = [(label, "&".join(f"shock_{a}={pct}" for a in assets)) for label, pct in STRESS_PRESETS]
    return render(
        request,
        "console/stress.html",
        {
            "page": "stress",
            "assets": assets,
            "values": typed,
            "shocks": shocks,
            "report": report,
            "errors": errors,
            "error": " ".join(errors.values()),
            "presets": presets,
            "can_export": can(request.user, "export_data"),
        },
        status=400 if errors else 200,
    )


STRESS_CSV = (
    ("asset", "asset"),
    ("shock_pct", "shock"),
    ("mark_before_usd", "mark_before"),
    ("mark_after_usd", "mark_after"),
    ("open_positions", "positions"),
    ("net_exposure_usd", "net_exposure"),
    ("net_exposure_after_usd", "net_exposure_after"),
    ("bbook_pnl_usd", "bbook_pnl"),
    ("hedge_notional_usd", "hedge_notional"),
    ("hedge_pnl_usd", "hedge_pnl"),
    ("platform_pnl_usd", "platform_pnl"),
    ("hedge_coverage_pct", "coverage"),
    ("liquidatable_positions", "liquidations"),
    ("liquidatable_notional_usd", "liquidation_notional"),
    ("bankrupt_remainder_usdc", "bankrupt"),
)
CENTS = Decimal("0.01")


def _csv_value(key: str, value: Any) -> Any:
    if value is None or not isinstance(value, Decimal):
        return value
    if key in ("shock", "coverage"):
        return (value * 100).quantize(CENTS)
    if key in ("mark_before", "mark_after"):
        return format(value.normalize(), "f")
    return value.quantize(CENTS)


@staff_required("view_risk")
@require_GET
def stress_export_view(request: HttpRequest) -> HttpResponse:
    """The per-asset stress table as CSV, for the same shocks as the page. Needs export_data; audited."""
    require(request.user, "export_data")
    _, _, shocks, errors = _stress_input(request)
    if errors or not shocks:
        return HttpResponse(
            " ".join(errors.values()) or "No shock given.", status=400, content_type="text/plain"
        )

    report = reads.stress_report(stress_selector(shocks))
    _audit_export(request, "stress", {f"shock_{a}": str(v * 100) for a, v in shocks.items()})
    header = [name for name, _ in STRESS_CSV]
    rows = [[_csv_value(key, row[key]) for _, key in STRESS_CSV] for row in report["rows"]]
    scenario = "_".join(f"{a}{(v * 100).normalize():+f}" for a, v in sorted(shocks.items()))
    return csv_response(f"stress-{scenario}.csv", header, rows)
