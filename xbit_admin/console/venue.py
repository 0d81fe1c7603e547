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
from xbit_admin.console.series import bucketed, bucketed_many, scaled

HL_ACCOUNTS = ("trading", "hedge")
BUCKET = timedelta(minutes=5)
REJECTED = ("REJECTED", "ERROR")
KEEP_SAMPLES = timedelta(days=7)
ROLLUP_LOOKBACK = timedelta(minutes=1)  # a sample after a pause rolls up at most this much of the snapshots


def venue_sample() -> VenueLatencySample:
    """Record the latency and connectivity now (the beat task, every 15 s), with each HL account's lowest
    margin ratio since the previous sample (the charts' rollup); samples older than a week are dropped in
    the same call."""
    status = feed_status()
    now = timezone.now()
    age = None
    if status is not None and status.last_message_at is not None:
        age = Decimal(str(round((now - status.last_message_at).total_seconds(), 3)))
    latency = hl_latency_now()
    previous = VenueLatencySample.objects.order_by("-created_at").values_list("created_at", flat=True).first()
    since = max(previous, now - ROLLUP_LOOKBACK) if previous else now - ROLLUP_LOOKBACK
    lows = dict(
        HLAccountSnapshot.objects.filter(account__in=HL_ACCOUNTS, created_at__gt=since, created_at__lte=now)
        .values_list("account")
        .annotate(low=Min("margin_ratio"))
        .order_by()
    )
    row = VenueLatencySample.objects.create(
        created_at=now,
        latency_ms=Decimal(str(round(latency, 3))) if latency is not None else None,
        connected=bool(status and status.connected),
        last_message_age_s=age,
        trading_margin_ratio=lows.get("trading"),
        hedge_margin_ratio=lows.get("hedge"),
    )
    VenueLatencySample.objects.filter(created_at__lt=now - KEEP_SAMPLES).delete()
    return row


def margin_ratio_history(
    since: datetime, until: datetime, rollup: dict[str, dict[str, list[Any]]] | None = None
) -> dict[str, dict[str, list[Any]]]:
    """Each HL account's margin ratio in % over the window, the lowest of each bucket: from the samples'
    rollup, or — where the rollup holds nothing yet (a fresh install, the samples' first minutes) — from the
    snapshots themselves."""
    if rollup is None:
        rollup = bucketed_many(
            VenueLatencySample.objects.all(),
            values={name: Min(f"{name}_margin_ratio") for name in HL_ACCOUNTS},
            since=since,
            until=until,
        )
    out = {}
    for name in HL_ACCOUNTS:
        series = rollup.get(name) or {"x": [], "y": []}
        if not series["x"]:
            series = bucketed(
                HLAccountSnapshot.objects.filter(account=name),
                value=Min("margin_ratio"),
                since=since,
                until=until,
            )
        out[name] = scaled(series, 100)
    return out


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
    # one read of the samples: the highest latency and each account's lowest margin ratio per bucket
    rollup = bucketed_many(
        VenueLatencySample.objects.all(),
        values={"latency": Max("latency_ms"), **{n: Min(f"{n}_margin_ratio") for n in HL_ACCOUNTS}},
        since=since,
        until=now,
    )
    ratios = margin_ratio_history(since, now, rollup)
    accounts = []
    for name in HL_ACCOUNTS:
        latest = HLAccountSnapshot.objects.filter(account=name).order_by("-created_at").first()
        accounts.append(
            {
                "name": name,
                "ratio": latest.margin_ratio if latest else None,
                "value": latest.account_value if latest else None,
                "at": latest.created_at if latest else None,
                "chart": ratios[name],
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
        "latency_chart": rollup["latency"],
        "rtt_chart": _series([(at, s.p95_ms) for at, s in per_bucket.items()]),
        "reject_chart": _series(
            [(at, s.reject_rate * 100 if s.reject_rate is not None else None) for at, s in per_bucket.items()]
        ),
        "accounts": accounts,
        "sampled_at": time.time(),
    }
