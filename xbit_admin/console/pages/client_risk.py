"""Client risk: who costs the B-book (realized P&L against it, markouts, exposure), the markout curves,
the client groups with their history and a Risk Manager's override, and the B-book P&L attribution."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from core.text import ascii_int
from routing.client_groups import (
    HORIZON_CHOICES,
    client_group_config,
    client_group_config_update,
    client_group_override,
)
from routing.models import ClientGroupConfig
from xbit_admin.console import client_risk_reads as reads
from xbit_admin.console.access import staff_required
from xbit_admin.console.pages.actions import perform, reason, staff_action
from xbit_admin.console.pages.common import acting, can


@staff_required("view_risk")
def client_risk_view(request: HttpRequest) -> HttpResponse:
    top = reads.top_contributors()
    toxic = [r["metrics"] for r in top["toxic"][:5]]
    return render(
        request,
        "console/client_risk.html",
        {
            "page": "client_risk",
            "config": client_group_config(),
            "modes": ClientGroupConfig.Mode,
            "counts": reads.group_counts(),
            "top": top,
            "curves": reads.markout_curves(toxic),
            "changes": reads.group_changes(),
            "attribution": reads.attribution(),
            "may_override": can(request.user, "manage_routing"),
            "horizons": HORIZON_CHOICES,
        },
    )


@staff_action("manage_routing")
def client_group_override_view(request: HttpRequest) -> HttpResponse:
    """Pin a client's group (A / B / HYBRID) or lift the pin (empty group)."""
    back = request.POST.get("next") or reverse("console:client_risk")
    if not back.startswith("/"):
        back = reverse("console:client_risk")
    raw_user = request.POST.get("user_id", "").strip()
    group = request.POST.get("group", "").strip()

    def run() -> str:
        user_id = ascii_int(raw_user) or 0
        row = client_group_override(
            user_id=user_id, group=group or None, acting_user=acting(request), reason=reason(request)
        )
        return f"client {user_id}: group {row.group if row else 'HYBRID'}"

    return perform(request, run, done=lambda said: said, back=back)


CONFIG_FIELDS = (
    "mode",
    "horizon_s",
    "min_fills",
    "toxic_bp",
    "benign_bp",
    "hysteresis_bp",
    "stale_quote_bp",
    "window_days",
)


@staff_action("manage_routing")
def client_group_config_view(request: HttpRequest) -> HttpResponse:
    """The groups' mode (OFF / SHADOW / LIVE) and the classifier's rules: the changed fields only."""
    config = client_group_config()
    changes = {}
    for name in CONFIG_FIELDS:
        raw = request.POST.get(name, "").strip()
        if raw != "" and raw != str(getattr(config, name)):
            changes[name] = raw
    back = reverse("console:client_risk")
    if not changes:
        return perform(request, lambda: "nothing changed", done=lambda said: said, back=back)
    return perform(
        request,
        lambda: client_group_config_update(
            changes=changes, acting_user=acting(request), reason=reason(request)
        ),
        done=f"client groups: {', '.join(f'{k} → {v}' for k, v in changes.items())}",
        back=back,
    )
