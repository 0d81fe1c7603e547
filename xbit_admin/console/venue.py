"""Venue health: Hyperliquid as the desk watches it — market-data latency, order round trip,
reject rate and both HL accounts' margin ratio, now and over the last hours. Reads only, except
:func:`venue_sample`, the beat task's one-row write of the latency history."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Max, Min
from django.utils import timezone

from risk.config import risk_config
from trading.models import HLAccountSnapshot, Order, Source
from trading.selectors import feed_status
from xbit_admin.console.models import VenueLatencySample
from xbit_admin.console.platform_banner import hl_latency_now
from xbit_admin.console.series import bucketed, bucketed_by

HL_ACCOUNTS = ("trading", "hedge")
BUCKET = timedelta(minutes=5)
REJECTED = ("REJECTED", "ERROR")
KEEP_SAMPLES = timedelta(days=7)


def venue_sample() -> VenueLatencySample:
    """Record the latency and connectivity now (the beat task, every 15 s); samples older than a week are
    dropped in the same call."""
    status = feed_status()
    age = None
    if status is not None and status.last_message_at is not None:
        age = Decimal(str(round((timezone.now() - status.last_message_at).total_seconds(), 3)))
    latency = hl_latency_now()
    row = VenueLatencySample.objects.create(
        latency_ms=Decimal(str(round(latency, 3))) if latency is not None else None,
        connected=bool(status and status.connected),
        last_message_age_s=age,
    )
    VenueLatencySample.objects.filter(created_at__lt=timezone.now() - KEEP_SAMPLES).delete()
    return row


def _series(points: list[tuple[datetime, Decimal | float | None]]) -> dict[str, list[Any]]:
    xs, ys = [], []
    for at, value in sorted(points, key=lambda p: p[0]):
        if value is None:
            continue
        xs.append(int(at.timestamp()))
        ys.append(float(value))
    return {"x": xs, "y": ys}


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class OrderStats:
    total: int
    rejected: int
    p50_ms: float | None
    p95_ms: float | None

    @property
    def reject_rate(self) -> Decimal | None:
        return Decimal(self.rejected) / Decimal(self.total) if self.total else None


def _hl_orders(since: datetime, limit: int = 20_000) -> list[tuple[datetime, datetime | None, datetime, str]]:
    return list(
        Order.objects.filter(route=Source.HYPERLIQUID, created_at__gte=since)
        .order_by("-id")
        .values_list("created_at", "hl_submitted_at", "updated_at", "status")[:limit]
    )


def _stats(rows: list[tuple[datetime, datetime | None, datetime, str]]) -> OrderStats:
    rtts = [
        (updated - submitted).total_seconds() * 1000
        for _created, submitted, updated, status in rows
        if submitted is not None and status in Order.TERMINAL and status not in REJECTED
    ]
    return OrderStats(
        total=len(rows),
        rejected=sum(1 for *_rest, status in rows if status in REJECTED),
        p50_ms=_percentile(rtts, 0.5),
        p95_ms=_percentile(rtts, 0.95),
    )


def venue_health(*, hours: int = 6) -> dict[str, Any]:
    now = timezone.now()
    since = now - timedelta(hours=hours)
    cfg = risk_config()
    status = feed_status()
    age = (now - status.last_message_at).total_seconds() if status and status.last_message_at else None
    orders = _hl_orders(since)
    recent = [r for r in orders if r[0] >= now - timedelta(minutes=15)]
    buckets: dict[datetime, list[Any]] = {}
    for row in orders:
        start = datetime.fromtimestamp(
            row[0].timestamp() // BUCKET.total_seconds() * BUCKET.total_seconds(), tz=now.tzinfo
        )
        buckets.setdefault(start, []).append(row)
    per_bucket = {at: _stats(rows) for at, rows in buckets.items()}
    # the lowest ratio of each bucket, both accounts in one read: a dip between two points is kept
    ratios = bucketed_by(
        HLAccountSnapshot.objects.filter(account__in=HL_ACCOUNTS),
        group="account",
        value=Min("margin_ratio"),
        since=since,
        until=now,
        scale=100,
    )
    accounts = []
    for name in HL_ACCOUNTS:
        latest = HLAccountSnapshot.objects.filter(account=name).order_by("-created_at").first()
        accounts.append(
            {
                "name": name,
                "ratio": latest.margin_ratio if latest else None,
                "value": latest.account_value if latest else None,
                "at": latest.created_at if latest else None,
                "chart": ratios.get(name, {"x": [], "y": []}),
                "chart_id": f"venue-ratio-{name}",
            }
        )
    return {
        "now": now,
        "hours": hours,
        "connected": bool(status and status.connected),
        "last_message_age_s": age,
        "latency_ms": hl_latency_now(),
        "latency_alert_ms": cfg.latency_alert_ms,
        "latency_trip_ms": cfg.latency_trip_ms,
        "recent": _stats(recent),
        "window": _stats(orders),
        # the highest latency of each bucket (a spike is what tripped the breaker)
        "latency_chart": bucketed(
            VenueLatencySample.objects.all(), value=Max("latency_ms"), since=since, until=now
        ),
        "rtt_chart": _series([(at, s.p95_ms) for at, s in per_bucket.items()]),
        "reject_chart": _series(
            [(at, s.reject_rate * 100 if s.reject_rate is not None else None) for at, s in per_bucket.items()]
        ),
        "accounts": accounts,
        "sampled_at": time.time(),
    }
