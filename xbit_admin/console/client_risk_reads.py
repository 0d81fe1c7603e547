"""Reads for the client-risk page and the client card: top contributors to B-book loss and exposure,
markout curves, the group change history and the B-book P&L attribution."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Avg, Count, F, Sum
from django.utils import timezone

from core.accounts.models import User
from risk.client_risk.attribution import COMPONENTS
from risk.client_risk.models import HORIZONS, BbookPnlDaily, ClientMetrics, FillMarkout
from routing.client_groups import client_group_config, client_group_of
from routing.decision import ClientGroup
from routing.models import ClientGroupAssignment, ClientGroupChange
from trading.models import Position, Source

TOP = 10
HORIZON_LABELS = {1: "1 s", 10: "10 s", 60: "60 s", 300: "5 min"}


def _emails(user_ids: list[int]) -> dict[int, str]:
    return dict(User.objects.filter(pk__in=user_ids).values_list("pk", "email"))


def _curve(row: Any) -> list[float | None]:
    values = [getattr(row, f"mo_{h}_bp") if not isinstance(row, dict) else row[f"mo_{h}"] for h in HORIZONS]
    return [float(v) if v is not None else None for v in values]


def markout_curves(top_toxic: list[ClientMetrics]) -> dict[str, Any]:
    """Average markout per horizon: every fill of the window, and each of the most toxic clients."""
    config = client_group_config()
    since = timezone.now() - timedelta(days=int(config.window_days))
    overall = FillMarkout.objects.filter(filled_at__gte=since).aggregate(
        **{f"mo_{h}": Avg(f"mo_{h}_bp") for h in HORIZONS}
    )
    emails = _emails([m.user_id for m in top_toxic])
    series = [{"label": "all fills", "y": _curve(overall)}]
    series += [{"label": emails.get(m.user_id, str(m.user_id)), "y": _curve(m)} for m in top_toxic]
    return {
        "x": list(range(len(HORIZONS))),
        "labels": [HORIZON_LABELS[h] for h in HORIZONS],
        "series": series,
    }


def top_contributors() -> dict[str, list[dict[str, Any]]]:
    """Clients who cost the B-book most (realized P&L against it, markout in USDC) and who hold the
    largest internal exposure now."""
    loss = list(ClientMetrics.objects.filter(realized_pnl__gt=0).order_by("-realized_pnl")[:TOP])
    toxic = list(ClientMetrics.objects.filter(mo_60_bp__isnull=False).order_by("-mo_60_usdc")[:TOP])
    exposure = list(
        Position.objects.filter(status=Position.Status.OPEN, source=Source.INTERNAL)
        .values("user_id")
        .annotate(notional=Sum(F("size") * F("entry_price")), positions=Count("id"))
        .order_by("-notional")[:TOP]
    )
    ids = [m.user_id for m in loss + toxic] + [e["user_id"] for e in exposure]
    emails = _emails(ids)
    groups = dict(ClientGroupAssignment.objects.filter(user_id__in=ids).values_list("user_id", "group"))

    def row(user_id: int, **extra: Any) -> dict[str, Any]:
        return {
            "user_id": user_id,
            "email": emails.get(user_id, ""),
            "group": groups.get(user_id, ClientGroup.HYBRID.value),
            **extra,
        }

    return {
        "loss": [row(m.user_id, metrics=m) for m in loss],
        "toxic": [row(m.user_id, metrics=m) for m in toxic],
        "exposure": [row(e["user_id"], notional=e["notional"], positions=e["positions"]) for e in exposure],
    }


def group_counts() -> dict[str, int]:
    counts = dict(ClientGroupAssignment.objects.values_list("group").annotate(n=Count("id")).order_by())
    return {g.value: counts.get(g.value, 0) for g in (ClientGroup.A, ClientGroup.B)}


def group_changes(limit: int = 50) -> list[dict[str, Any]]:
    rows = list(ClientGroupChange.objects.select_related("actor").order_by("-id")[:limit])
    emails = _emails([r.user_id for r in rows])
    return [{"change": r, "email": emails.get(r.user_id, "")} for r in rows]


def attribution(days: int = 30) -> dict[str, Any]:
    """Per UTC day, the B-book P&L by component summed over assets (chart), and the rows (table)."""
    today = timezone.now().astimezone(UTC).date()
    first = today - timedelta(days=days - 1)
    rows = list(BbookPnlDaily.objects.filter(day__gte=first).order_by("-day", "asset"))
    per_day: dict[Any, dict[str, Decimal]] = {}
    for r in rows:
        day = per_day.setdefault(r.day, {c: Decimal(0) for c in COMPONENTS})
        for c in COMPONENTS:
            day[c] += getattr(r, c)
    ordered = sorted(per_day)
    chart = {
        "x": [int(datetime.combine(d, time.min, tzinfo=UTC).timestamp()) for d in ordered],
        "series": [
            {"label": c.replace("_", " "), "y": [float(per_day[d][c]) for d in ordered]} for c in COMPONENTS
        ],
    }
    return {"rows": rows, "chart": chart}


def client_card(user_id: int) -> dict[str, Any]:
    """The client's group (and why) and markouts, for the client card."""
    group, row = client_group_of(user_id)
    metrics = ClientMetrics.objects.filter(user_id=user_id).first()
    return {
        "group": group.value,
        "assignment": row,
        "mode": client_group_config().mode,
        "metrics": metrics,
        "curve": [(HORIZON_LABELS[h], getattr(metrics, f"mo_{h}_bp") if metrics else None) for h in HORIZONS],
    }
