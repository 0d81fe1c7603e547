"""Routing page (spec 07 §2): per-asset modes, thresholds with overrides, auto-switch, whitelist,
force-HL and HL halt, the HL_MODE banner, the mode-switch history and the decision log."""

from __future__ import annotations

import uuid
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from core.errors import ApplicationError
from core.money import CONFIG_INPUT, decimal_from_text
from core.switches.store import SWITCH_CACHE
from core.text import ascii_int
from risk.breakers import FORCE_HL_REASON
from risk.selectors import hedge_recommendations
from routing.decision import AssetRouting, Mode, Route
from routing.models import GLOBAL, RoutingConfig, RoutingModeLog
from routing.selectors import CONFIG_FIELDS, resolved_config
from routing.services import routing_config_update, routing_mode_switch
from xbit_admin.console import desk_tables as dt
from xbit_admin.console.access import staff_required
from xbit_admin.console.four_eyes_risk import config_change_propose, four_eyes_guard
from xbit_admin.console.pages.actions import Said, perform, reason, staff_action
from xbit_admin.console.pages.common import can, export_csv, keyset_page, require, rows_csv
from xbit_admin.console.platform_banner import breaker_sentence, forced_hl_now, hl_latency_now
from xbit_admin.console.selectors import (
    DECISION_FILTERS,
    decision_log,
    decision_reasons,
    mode_switches,
    routing_assets,
    routing_overview,
)
from xbit_admin.console.tables import wants_csv

MODES = [Mode.HL_MODE, Mode.NORMAL_MODE, Mode.BETTING_MODE]
MODE_LABELS = {Mode.HL_MODE: "HL", Mode.NORMAL_MODE: "Normal", Mode.BETTING_MODE: "Betting"}
SHORT = {Mode.HL_MODE: "HL", Mode.NORMAL_MODE: "NORMAL", Mode.BETTING_MODE: "BETTING"}
GLOBAL_SLUG = "global"

MONEY_FIELDS = [
    ("normal_threshold", "Normal threshold", "NORMAL_MODE: internalize orders with notional ≤ this"),
    ("betting_threshold", "Betting threshold", "BETTING_MODE: internalize orders with notional ≤ this"),
    ("hl_mode_exposure_threshold", "HL trigger", "|net exposure| ≥ this → HL_MODE"),
    ("betting_mode_exposure_threshold", "Betting trigger", "|net exposure| ≤ this → BETTING_MODE"),
    ("max_internal_order_notional", "Max internal order", "hard cap on one internalized order"),
    ("max_internal_exposure", "Max internal exposure", "|net internal exposure| above this → forced to HL"),
]
FACTOR_FIELDS = [
    ("hl_exit_factor", "HL exit factor", "leave HL_MODE below trigger × this"),
    ("betting_exit_factor", "Betting exit factor", "leave BETTING_MODE above trigger × this"),
]
BOOL_FIELDS = [
    ("auto_switch_enabled", "Auto-switch", "modes follow |net exposure| automatically"),
    ("internalization_enabled", "Whitelisted", "this asset may be internalized at all"),
]


def _fmt(value: Any) -> str:
    return f"{value:,.2f}" if isinstance(value, Decimal) else str(value)


def routing_effect(asset: str, live: AssetRouting, *, cohort_percent: int = 100) -> str:
    """What happens to a new ``asset`` order in this routing state, in the order of the routing rules
    (routing.decision): a force-HL reason, a switched-off platform or a missing whitelist entry
    overrides the mode, and an order bound for Hyperliquid while HL routing is halted is rejected."""
    why = ""
    if live.degraded:
        why = "the platform is in DEGRADED mode"
    elif live.force_hl_reasons:
        why = f"force-HL is active ({', '.join(live.force_hl_reasons)})"
    elif not live.global_internalization_enabled:
        why = "internalization is switched off platform-wide"
    elif not live.internalization_enabled:
        why = f"{asset} is not whitelisted"
    if why:
        if live.hl_halted:
            return f"Every new {asset} order is rejected: {why}, so it would go to Hyperliquid, and HL routing is halted."
        return f"Every new {asset} order goes to Hyperliquid: {why}."
    if live.mode is Mode.HL_MODE:
        if live.hl_halted:
            return f"New {asset} orders are rejected: HL_MODE sends them to Hyperliquid, and HL routing is halted."
        return f"New {asset} orders go to Hyperliquid."
    base = live.normal_threshold if live.mode is Mode.NORMAL_MODE else live.betting_threshold
    limit = min(base * live.threshold_factor, live.max_internal_order_notional)
    text = f"New {asset} orders up to {_fmt(limit)} USDC notional are internalized (B-book)"
    notes = []
    if live.threshold_factor < 1:
        notes.append(
            f"threshold {_fmt(base)} × {live.threshold_factor.normalize()} while the risk reserve is low"
        )
    if base * live.threshold_factor > live.max_internal_order_notional:
        notes.append("capped by the max internal order")
    if notes:
        text += f" ({'; '.join(notes)})"
    text += (
        "; larger ones are rejected (HL routing is halted)"
        if live.hl_halted
        else "; larger ones go to Hyperliquid"
    )
    if cohort_percent < 100:
        text += f"; users outside the {cohort_percent} % canary cohort always go to Hyperliquid"
    return text + "."


def consequence(
    asset: str, current: str, target: Mode, live: AssetRouting, *, cohort_percent: int = 100
) -> str:
    """What the confirmation dialog says will happen: the effect of the target mode in the asset's
    current state (a breaker's force-HL still wins over the mode)."""
    head = f"{asset}: {SHORT.get(Mode(current), current)} → {SHORT[target]}."
    return f"{head} {routing_effect(asset, replace(live, mode=target), cohort_percent=cohort_percent)}"


def _cohort_percent() -> int:
    return int(SWITCH_CACHE.get()["canary_cohort_percent"])


def _slug_to_asset(slug: str) -> str:
    asset = GLOBAL if slug == GLOBAL_SLUG else slug.upper()
    if asset != GLOBAL and asset not in routing_assets():
        raise Http404("unknown asset")
    return asset


def _forced_hl_banner(glob: dict[str, Any]) -> list[dict[str, str]]:
    """Platform-wide force-HL reasons in plain words with the live figure (the page must not
    promise internalization while a breaker sends every order to Hyperliquid)."""

    latency = hl_latency_now()
    breakers = {FORCE_HL_REASON[b.kind]: b for b in forced_hl_now() if b.scope in ("*", "")}
    said = []
    for why in glob["force_hl_reasons"]:
        breaker = breakers.get(why)
        if breaker is not None:
            text = breaker_sentence(breaker, latency_ms=latency, feed_age_s=None)
            runbook = reverse("console:runbook", args=["breaker", breaker.kind])
        else:
            text, runbook = f"New orders are all sent to Hyperliquid (force-HL reason {why}).", ""
        said.append({"kind": why, "text": text, "runbook": runbook})
    return said


@staff_required("view_risk", "manage_routing")
def routing_view(request: HttpRequest) -> HttpResponse:
    if wants_csv(request, "modes"):  # every mode switch, newest first
        switches = RoutingModeLog.objects.select_related("operator").order_by("-id").iterator(chunk_size=2000)
        return rows_csv(
            request, "routing-mode-switches.csv", dt.MODE_LOG_COLUMNS, switches, what="routing_modes"
        )
    if wants_csv(request):  # the decision log, filtered as on the page
        filters = {name: request.GET.get(name, "") for name in DECISION_FILTERS}
        header = (
            "created_at",
            "order_id",
            "user_id",
            "asset",
            "notional",
            "route",
            "mode",
            "threshold",
            "reason",
            "latency_us",
        )
        rows = (
            (
                d.created_at,
                d.order_id,
                d.user_id,
                d.asset,
                d.notional,
                d.route,
                d.mode,
                d.threshold,
                d.reason,
                d.latency_us,
            )
            for d in decision_log(filters).order_by("-pk").iterator(chunk_size=2000)
        )
        return export_csv(request, "routing-decisions.csv", header, rows, what="routing_decisions")
    rows, glob = routing_overview()
    manage = can(request.user, "manage_routing")
    cohort = _cohort_percent()
    hl_rows = [r for r in rows if r.mode == Mode.HL_MODE]
    # the HL_MODE banner's recommended hedge: the hedge policy at the current exposure and hedge
    hedges = hedge_recommendations([r.asset for r in hl_rows]) if hl_rows else {}
    for row in rows:
        assert row.live is not None
        row.effect = routing_effect(row.asset, row.live, cohort_percent=cohort)  # type: ignore[attr-defined]
        row.hedge = hedges.get(row.asset)  # type: ignore[attr-defined]
        row.buttons = [  # type: ignore[attr-defined]
            {
                "mode": mode.value,
                "label": MODE_LABELS[mode],
                "current": row.mode == mode.value,
                "change_id": uuid.uuid4().hex,
                "consequence": consequence(row.asset, row.mode, mode, row.live, cohort_percent=cohort),
            }
            for mode in MODES
        ]
    if wants_csv(request, "assets"):
        return rows_csv(request, "routing-assets.csv", dt.ROUTING_ASSET_COLUMNS, rows, what="routing_assets")
    filters = {name: request.GET.get(name, "") for name in DECISION_FILTERS}
    filter_errors: dict[str, str] = {}
    user_id = filters["user_id"].strip()
    if user_id and ascii_int(user_id) is None:  # decision_log then matches nothing: say why
        filter_errors["user_id"] = f"{user_id!r} is not a user id (digits only)."
    page = keyset_page(decision_log(filters), request)
    return render(
        request,
        "console/routing.html",
        {
            "forced_hl": _forced_hl_banner(glob) if glob["force_hl_reasons"] else [],
            "page": "routing",
            "rows": rows,
            "glob": glob,
            "hl_rows": hl_rows,
            "switches": mode_switches(30),
            "decisions": page,
            "filters": filters,
            "filter_errors": filter_errors,
            "reasons": decision_reasons(),
            "routes": [r.value for r in Route],
            "assets": [r.asset for r in rows],
            "manage": manage,
            "can_export": can(request.user, "export_data"),
        },
    )


@staff_action("manage_routing")
def routing_mode_view(request: HttpRequest, asset: str) -> HttpResponse:
    asset = _slug_to_asset(asset)
    return perform(
        request,
        lambda: routing_mode_switch(
            asset=asset,
            mode=request.POST.get("mode", ""),
            reason=reason(request),
            change_id=request.POST.get("change_id", ""),
            acting_user=request.user,
            request=request,
        ),
        done=lambda result: (messages.success if result.changed else messages.info, result.message),
        back=reverse("console:routing"),
    )


def _toggle(request: HttpRequest, asset: str, name: str, value: bool) -> Said:
    """Auto-switch under four eyes is proposed (a second person applies it); otherwise applied."""
    if name == "auto_switch_enabled" and four_eyes_guard():
        proposal = config_change_propose(
            scope="routing",
            asset=asset,
            changes={name: value},
            acting_user=request.user,
            reason=reason(request),
            request=request,
        )
        return f"{asset}: auto-switch change proposed (#{proposal.pk}); a second person applies it."
    routing_config_update(
        asset=asset, changes={name: value}, reason=reason(request), acting_user=request.user, request=request
    )
    label = "Auto-switch" if name == "auto_switch_enabled" else "Whitelist"
    return f"{asset}: {label} {'on' if value else 'off'}."


@staff_action("manage_routing")
def routing_toggle_view(request: HttpRequest, asset: str) -> HttpResponse:
    """Auto-switch or whitelist on/off for one asset (the confirmation states the effect)."""
    asset = _slug_to_asset(asset)
    name = request.POST.get("field", "")
    if name not in ("auto_switch_enabled", "internalization_enabled"):
        messages.error(request, "Only auto-switch and the whitelist can be toggled here.")
        return redirect(reverse("console:routing"))
    value = request.POST.get("value") == "on"
    return perform(
        request,
        lambda: _toggle(request, asset, name, value),
        done=lambda said: said,
        back=reverse("console:routing"),
    )


def _parse_form(
    request: HttpRequest, own: dict[str, Any], is_global: bool
) -> tuple[dict[str, Any], dict[str, str]]:
    """Changed fields only (blank = inherit the global value on an asset row)."""
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, _label, _help in MONEY_FIELDS + FACTOR_FIELDS:
        raw = request.POST.get(name, "").strip().replace(",", "")
        if raw == "":
            value = None
        else:
            try:
                value = decimal_from_text(raw, CONFIG_INPUT, signed=True, allow_zero=True)
            except InvalidOperation:
                errors[name] = f"{raw!r} is not a number."
                continue
            if not value.is_finite():
                errors[name] = f"{raw!r} is not a number."
                continue
        if value is None and is_global:
            errors[name] = "The global row needs a value."
            continue
        if value != own.get(name):
            changes[name] = value
    for name, _label, _help in BOOL_FIELDS:
        raw = request.POST.get(name, "inherit")
        value = {"on": True, "off": False}.get(raw)
        if value is None and is_global:
            errors[name] = "The global row needs a value."
            continue
        if value != own.get(name):
            changes[name] = value
    return changes, errors


@staff_required("view_risk", "manage_routing")
@require_http_methods(["GET", "POST"])
def routing_asset_view(request: HttpRequest, asset: str) -> HttpResponse:
    """One asset's (or the global row's) settings: value in force, where it comes from, edit form."""
    asset = _slug_to_asset(asset)
    is_global = asset == GLOBAL
    row = RoutingConfig.objects.filter(asset=asset).select_related("updated_by").first()
    own = {name: getattr(row, name) for name in CONFIG_FIELDS} if row else {}
    errors: dict[str, str] = {}
    service_error = ""
    status = 200
    if request.method == "POST":
        require(request.user, "manage_routing")
        changes, errors = _parse_form(request, own, is_global)
        if not errors:
            if not changes:
                messages.info(request, "Nothing changed.")
                return redirect(request.path)
            try:
                thresholds = {k: v for k, v in changes.items() if k != "internalization_enabled"}
                if thresholds and four_eyes_guard():  # issue #21: proposed, applied by a second person
                    proposal = config_change_propose(
                        scope="routing",
                        asset=asset,
                        changes=changes,
                        acting_user=request.user,
                        reason=request.POST.get("reason", ""),
                        request=request,
                    )
                    messages.success(
                        request,
                        f"{'Global' if is_global else asset} settings proposed (#{proposal.pk}): "
                        f"{', '.join(sorted(changes))}; a second person applies them (Four eyes page).",
                    )
                    return redirect(request.path)
                routing_config_update(
                    asset=asset,
                    changes=changes,
                    reason=request.POST.get("reason", ""),
                    acting_user=request.user,
                    request=request,
                )
            except ApplicationError as exc:
                service_error = exc.message
                field = (exc.details or {}).get("field")
                if field:
                    errors[field] = exc.message
            else:
                changed = ", ".join(sorted(changes))
                messages.success(request, f"{'Global' if is_global else asset} settings saved: {changed}.")
                return redirect(request.path)
        status = 400
    resolved = resolved_config(asset)
    posted = request.POST if request.method == "POST" else None

    def field_row(name: str, label: str, help_text: str, kind: str) -> dict[str, Any]:
        current = own.get(name)
        if posted is not None:
            shown = posted.get(name, "")
        elif kind == "bool":
            shown = "inherit" if current is None else ("on" if current else "off")
        else:
            # plain notation ("10000", never "1E+4"): the form posts it back to the strict parser
            shown = (
                ""
                if current is None
                else (format(current.normalize(), "f") if kind == "money" else str(current))
            )
        return {
            "name": name,
            "label": label,
            "help": help_text,
            "kind": kind,
            "shown": shown,
            "effective": resolved[name]["value"],
            "source": resolved[name]["source"],
            "error": errors.get(name, ""),
        }

    fields = (
        [field_row(n, lbl, h, "money") for n, lbl, h in MONEY_FIELDS]
        + [field_row(n, lbl, h, "factor") for n, lbl, h in FACTOR_FIELDS]
        + [field_row(n, lbl, h, "bool") for n, lbl, h in BOOL_FIELDS]
    )
    switches = (
        []
        if is_global
        else list(RoutingModeLog.objects.filter(asset=asset).select_related("operator").order_by("-id")[:30])
    )
    return render(
        request,
        "console/routing_asset.html",
        {
            "page": "routing",
            "asset": asset,
            "slug": GLOBAL_SLUG if is_global else asset,
            "is_global": is_global,
            "row": row,
            "fields": fields,
            "errors": errors,
            "service_error": service_error,
            "reason": posted.get("reason", "") if posted is not None else "",
            "switches": switches,
            "mode": resolved["routing_mode"]["value"],
            "manage": can(request.user, "manage_routing"),
        },
        status=status,
    )
