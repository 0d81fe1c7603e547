"""Switches page (spec 10): every control switch on one page with its current value, default and last
change; edit with a confirmation that states the consequence; rollback to a time; degradation levels;
the canary stage with its live pass criteria. Controls the user may not use are not shown, and the
endpoint answers 403 for them."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.errors import ApplicationError
from core.switches import store
from core.switches.models import SwitchChange
from core.text import ascii_int
from xbit_admin.console import desk_tables as dt
from xbit_admin.console.access import staff_required
from xbit_admin.console.pages.common import can, flash_error, rows_csv, table_csv
from xbit_admin.console.switch_text import human
from xbit_admin.console.tables import table_view, wants_csv
from xbit_admin.switches import canary
from xbit_admin.switches.registry import REGISTRY, resolve, to_json
from xbit_admin.switches.services import (
    LEVELS,
    SwitchResult,
    degradation_set,
    may_change,
    switch_rollback,
    switch_set,
    switches_applied,
)

APPLIED_WAIT_S = 0.3  # processes answer in milliseconds; the page waits at most this long


def _last_changes() -> dict[str, SwitchChange]:
    """Each switch's newest change: one row per name (DISTINCT ON), not the whole recent history."""
    rows = SwitchChange.objects.select_related("actor").order_by("name", "-id").distinct("name")
    return {change.name: change for change in rows}


def switch_rows(user: Any) -> list[dict[str, Any]]:
    last = _last_changes()
    rows = []
    for switch in REGISTRY.values():
        available = switch.is_available()
        scopes = switch.scopes() if available else ([""] if not switch.scoped else [])
        if switch.scoped and not available:
            scopes = ["*"]
        for scope in scopes:
            key = switch.key(scope)
            try:
                current = switch.read(scope) if available else None
            except Exception:  # an owner half-migrated: show the switch as unavailable, not a 500
                available, current = False, None
            rows.append(
                {
                    "key": key,
                    "switch": switch,
                    "scope": scope,
                    "available": available,
                    "current": current,
                    "current_display": human(switch, current) if available else "unavailable",
                    "default_display": human(switch, to_json(switch.default)),
                    "anchor": "switch-" + key.replace(":", "-"),
                    "last_old": human(switch, last[key].old_value) if key in last else "",
                    "last_new": human(switch, last[key].new_value) if key in last else "",
                    "is_default": current == to_json(switch.default),
                    "last": last.get(key),
                    "can_edit": available and may_change(user, switch),
                    "options": [
                        {"value": c, "consequence": switch.consequence(scope, c)}
                        for c in (switch.choices or (("True", "False") if switch.kind == "bool" else ()))
                    ],
                    "consequence": switch.consequence(scope, "…"),
                    "input_value": " ".join(map(str, current))
                    if isinstance(current, list)
                    else ("" if current is None else str(current)),
                }
            )
    return rows


def applied_summary(result: SwitchResult) -> tuple[bool, str]:
    """(all applied, one line): which running processes already serve the new values."""
    keys = [c.key for c in result.changes if c.key in _known_keys()]
    if not keys:
        return True, ""
    report = switches_applied(keys, wait_s=APPLIED_WAIT_S)
    processes = report["processes"]
    if not processes:
        return False, "No running process answered the check (are the web, worker and feed processes up?)."
    stale = [p for p in processes if p["stale"] or p["error"]]
    names = ", ".join(sorted({p["process"] for p in processes}))
    slowest = max(p["after_ms"] for p in processes)
    if stale:
        which = "; ".join(
            f"{p['process']} pid {p['pid']}: {', '.join(p['stale']) or p['error']}" for p in stale
        )
        return False, f"Not yet applied in {len(stale)} of {len(processes)} processes ({which})."
    return True, f"Applied in {len(processes)} processes ({names}) within {slowest:.0f} ms."


def _typed_value(request: HttpRequest) -> bool:
    """A value typed into a field (money, number, list, text), not picked from buttons."""
    if request.POST.get("action") != "set" or "value" not in request.POST:
        return False
    switch = REGISTRY.get(request.POST.get("key", "").partition(":")[0])
    return switch is not None and switch.kind not in ("enum", "bool")


def _known_keys() -> set[str]:
    keys: set[str] = set()
    for switch in REGISTRY.values():
        if switch.is_available():
            keys.update(switch.key(scope) for scope in switch.scopes())
    return keys


def _handle_post(request: HttpRequest) -> None:
    action = request.POST.get("action", "")
    reason = request.POST.get("reason", "")
    user = request.user
    if action in ("set", "rollback"):
        key = request.POST.get("key", "")
        switch, _scope = resolve(key)
        if not may_change(user, switch):
            raise PermissionDenied
        if action == "set":
            result = switch_set(
                name=key,
                value=request.POST.get("value", ""),
                acting_user=user,
                reason=reason,
                request=request,
            )
        else:
            raw = request.POST.get("to", "")
            when = parse_datetime(raw)
            if when is None:
                messages.error(request, f"{raw!r} is not a date and time.")
                return
            if timezone.is_naive(when):
                when = timezone.make_aware(when, UTC)  # the field is labelled UTC
            result = switch_rollback(name=key, to=when, acting_user=user, reason=reason, request=request)
    elif action in ("degrade", "canary"):
        if not can(user, "manage_switches"):
            raise PermissionDenied
        if action == "degrade":
            level = ascii_int(request.POST.get("level", ""), max_digits=3)
            if level is None:
                messages.error(request, "Pick a degradation level.")
                return
            result = degradation_set(level=level, acting_user=user, reason=reason, request=request)
        else:
            result = canary.canary_stage_set(
                stage=request.POST.get("stage", ""), acting_user=user, reason=reason, request=request
            )
    else:
        messages.error(request, "Unknown action.")
        return
    (messages.success if result.changed else messages.info)(request, result.message)
    if result.changed:
        ok, line = applied_summary(result)
        if line:
            (messages.info if ok else messages.warning)(request, line)


@staff_required("manage_switches", "manage_routing")
def switches_view(request: HttpRequest) -> HttpResponse:
    probe_report = None
    refused: dict[str, str] = {}
    status = 200
    if request.method == "POST" and request.POST.get("action") == "probe":
        probe_report = switches_applied(["*"], wait_s=APPLIED_WAIT_S)
    elif request.method == "POST":
        try:
            _handle_post(request)
        except ApplicationError as exc:
            if not _typed_value(request):
                flash_error(request, exc)
                return redirect(reverse("console:switches"))
            # a refused value stays in its field with the reason beside it (nothing was changed)
            refused = {
                "key": request.POST.get("key", ""),
                "value": request.POST["value"],
                "message": exc.message,
            }
            flash_error(request, exc)
            status = 400
        else:
            return redirect(reverse("console:switches"))
    history, _ = table_view(
        request,
        SwitchChange.objects.select_related("actor"),
        columns=dt.SWITCH_HISTORY_COLUMNS,
        filters=dt.SWITCH_HISTORY_FILTERS,
        default_sort="-at",
        default_per=25,
        name="history",
    )
    if request.method == "GET" and wants_csv(request, "history"):
        return table_csv(request, history, "switch-changes.csv", what="switch_changes")
    rows = switch_rows(request.user)
    if request.method == "GET" and wants_csv(request, "switches"):
        return rows_csv(request, "switches.csv", dt.SWITCH_COLUMNS, rows, what="switches")
    super_admin = can(request.user, "manage_switches")
    return render(
        request,
        "console/switches.html",
        {
            "page": "switches",
            "rows": rows,
            "levels": sorted(LEVELS.items()),
            "level": store.core_value("degradation_level"),
            "canary": canary.canary_status(),
            "super_admin": super_admin,
            "history": history,
            "can_export": can(request.user, "export_data"),
            "now": timezone.now(),
            "probe": probe_report,
            "probe_wait_ms": int(APPLIED_WAIT_S * 1000),
            "refused": refused,
        },
        status=status,
    )
