"""Per-client toxicity metrics over the configured window, from the markout rows.

:func:`client_metrics_refresh` recomputes the listed clients with one grouped query and upserts their
rows; the markout loop calls it for the clients whose markouts moved, the rebuild for everyone — the
same query, so the incremental figures and a rebuild always agree."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Avg, Count, Q, Sum
from django.utils import timezone

from risk.client_risk.models import ClientMetrics, FillMarkout
from routing.client_groups import client_group_config
from trading.models import Source

# notional buckets of the size distribution (USDC, upper bounds; the last is open)
SIZE_BUCKETS = (
    ("<100", Decimal(100)),
    ("100-1k", Decimal(1_000)),
    ("1k-10k", Decimal(10_000)),
    ("10k-100k", Decimal(100_000)),
    (">=100k", None),
)
WIN_QUANTUM = Decimal("0.0001")


def _bucket_filters() -> dict[str, Q]:
    out: dict[str, Q] = {}
    low: Decimal | None = None
    for label, high in SIZE_BUCKETS:
        cond = Q()
        if low is not None:
            cond &= Q(notional__gte=low)
        if high is not None:
            cond &= Q(notional__lt=high)
        out[label] = cond
        low = high
    return out


def client_metrics_rows(user_ids: Iterable[int] | None = None) -> list[ClientMetrics]:
    """The metrics as the markout rows say now (``None`` = every client with a fill in the window)."""
    config = client_group_config()
    horizon = int(config.horizon_s)
    col = f"mo_{horizon}_bp"
    since = timezone.now() - timedelta(days=int(config.window_days))
    qs = FillMarkout.objects.filter(filled_at__gte=since)
    if user_ids is not None:
        qs = qs.filter(user_id__in=list(user_ids))
    aggregates: dict[str, Any] = {
        "fills": Count("id"),
        "measured": Count(col),
        "wins": Count("id", filter=Q(**{f"{col}__gt": 0})),
        "notional_sum": Sum("notional"),
        "mo_1": Avg("mo_1_bp"),
        "mo_10": Avg("mo_10_bp"),
        "mo_60": Avg("mo_60_bp"),
        "mo_300": Avg("mo_300_bp"),
        "mo_60_usdc": Sum("mo_60_usdc"),
        "realized": Sum("realized_pnl", filter=Q(source=Source.INTERNAL)),
        "holding": Avg("holding_seconds"),
        "stale": Count("id", filter=Q(mo_1_bp__gte=config.stale_quote_bp)),
    }
    buckets = _bucket_filters()
    for i, cond in enumerate(buckets.values()):
        aggregates[f"b{i}"] = Count("id", filter=cond)
    now = timezone.now()
    rows = []
    grouped: Any = qs.values("user_id").annotate(**aggregates).order_by()
    for agg in grouped:
        rows.append(
            ClientMetrics(
                user_id=agg["user_id"],
                fills=agg["fills"],
                measured=agg["measured"],
                notional=agg["notional_sum"] or 0,
                mo_1_bp=_q4(agg["mo_1"]),
                mo_10_bp=_q4(agg["mo_10"]),
                mo_60_bp=_q4(agg["mo_60"]),
                mo_300_bp=_q4(agg["mo_300"]),
                mo_60_usdc=agg["mo_60_usdc"] or 0,
                win_rate=(Decimal(agg["wins"]) / agg["measured"]).quantize(WIN_QUANTUM)
                if agg["measured"]
                else None,
                realized_pnl=agg["realized"] or 0,
                avg_holding_seconds=agg["holding"],
                stale_fills=agg["stale"],
                size_buckets={label: agg[f"b{i}"] for i, label in enumerate(buckets)},
                updated_at=now,
            )
        )
    return rows


def _q4(value: Decimal | None) -> Decimal | None:
    return None if value is None else Decimal(value).quantize(WIN_QUANTUM)


UPSERT_FIELDS = [f.name for f in ClientMetrics._meta.concrete_fields if f.name not in ("id", "user_id")]


def client_metrics_refresh(user_ids: Iterable[int] | None = None) -> int:
    """Recompute and store the clients' metrics (``None`` = all). A client with no fill left in the
    window keeps no row. Returns the number of rows written."""
    ids = None if user_ids is None else sorted(set(user_ids))
    rows = client_metrics_rows(ids)
    if rows:
        ClientMetrics.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["user_id"], update_fields=UPSERT_FIELDS
        )
    gone = ClientMetrics.objects.exclude(user_id__in=[r.user_id for r in rows])
    if ids is not None:
        gone = gone.filter(user_id__in=ids)
    gone.delete()
    return len(rows)
