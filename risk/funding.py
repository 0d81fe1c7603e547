"""Funding runs (spec 04): hourly on the hour (interval configurable), exactly once per (position,
funding time) even when run twice or crashed half way.

A run records the rate and oracle price of every asset once (``FundingRun.rates``), then settles the
positions open at the funding instant in chunks: each chunk is one transaction — the users' locks
first, the positions, ``trading.funding.funding_settle_positions`` (ledger), and one
``FundingSettlement`` row per position (unique per position and funding time). A crash rolls back the
chunk in flight; a re-run skips every position that already has its row.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from risk.config import risk_config
from risk.models import FundingRun, FundingSettlement
from trading.funding import FundingRate, funding_settle_positions, users_lock
from trading.marketdata import get_quotes
from trading.models import Position, Source

logger = logging.getLogger(__name__)


def funding_time_for(now: datetime, interval_s: int) -> datetime:
    """The latest funding instant at or before ``now`` (multiples of the interval since the epoch: on
    the hour for 3600)."""
    seconds = int(now.timestamp()) // interval_s * interval_s
    return datetime.fromtimestamp(seconds, tz=UTC)


def _rates_for(run: FundingRun, assets: set[str]) -> dict[str, FundingRate]:
    """The run's recorded rates; assets not recorded yet are read from HL's cached asset context (the
    current funding rate and oracle price) and recorded first, so a re-run uses the same numbers."""
    recorded = dict(run.rates)
    missing = sorted(a for a in assets if a not in recorded)
    if missing:
        quotes = get_quotes(missing)
        for asset in missing:
            quote = quotes.get(asset)
            if quote is None or quote.funding_rate is None or not quote.oracle:
                continue
            recorded[asset] = {"rate": str(quote.funding_rate), "price": str(quote.oracle)}
        unknown = sorted(a for a in assets if a not in recorded)
        FundingRun.objects.filter(pk=run.pk).update(rates=recorded, missing_assets=unknown)
        run.rates, run.missing_assets = recorded, unknown
    return {a: FundingRate(Decimal(v["rate"]), Decimal(v["price"])) for a, v in recorded.items()}


def funding_run(*, funding_time: datetime | None = None, chunk: int = 500) -> FundingRun:
    """Settle one funding instant (default: the latest due one). Idempotent; safe to run concurrently
    (chunks lock their users and positions; the unique settlement row is the final arbiter)."""
    cfg = risk_config()
    funding_time = funding_time or funding_time_for(timezone.now(), cfg.funding_interval_seconds)
    run, _ = FundingRun.objects.get_or_create(funding_time=funding_time)
    if run.status == FundingRun.Status.COMPLETED:
        return run
    due = Position.objects.filter(status=Position.Status.OPEN, opened_at__lte=funding_time).exclude(
        Exists(FundingSettlement.objects.filter(position=OuterRef("pk"), funding_time=funding_time))
    )
    rates = _rates_for(run, set(due.values_list("asset", flat=True).distinct()))
    settled = 0
    while True:
        batch = list(
            due.filter(asset__in=list(rates)).order_by("user_id", "id").values_list("id", "user_id")[:chunk]
        )
        if not batch:
            break
        settled += _settle_chunk(batch, rates, funding_time)
    FundingRun.objects.filter(pk=run.pk).update(
        positions_settled=FundingSettlement.objects.filter(funding_time=funding_time).count()
    )
    if not run.missing_assets:
        FundingRun.objects.filter(pk=run.pk).update(
            status=FundingRun.Status.COMPLETED, completed_at=timezone.now()
        )
    else:
        logger.warning(
            "funding %s: no rate/oracle yet for %s; retried next tick", funding_time, run.missing_assets
        )
    run.refresh_from_db()
    if settled:
        from xbit_admin.live import broadcast_now

        broadcast_now("funding", {"funding_time": funding_time.isoformat(), "settled": settled})
    return run


def _settle_chunk(batch: list[tuple[int, int]], rates: dict[str, FundingRate], funding_time: datetime) -> int:
    ids = [pid for pid, _uid in batch]
    with transaction.atomic():
        users_lock(uid for _pid, uid in batch)  # first locks of the transaction, ascending
        positions = list(
            Position.objects.select_for_update()
            .filter(pk__in=ids, status=Position.Status.OPEN)
            .exclude(
                Exists(FundingSettlement.objects.filter(position=OuterRef("pk"), funding_time=funding_time))
            )
            .order_by("id")
        )
        if not positions:
            return 0
        key = f"funding:{int(funding_time.timestamp())}:{positions[0].pk}-{positions[-1].pk}:{len(positions)}"
        outcomes = funding_settle_positions(
            positions=positions, rates=rates, funding_time=funding_time, key=key
        )
        FundingSettlement.objects.bulk_create(
            [
                FundingSettlement(
                    position=o.position,
                    user_id=o.position.user_id,
                    funding_time=funding_time,
                    asset=o.position.asset,
                    source=o.position.source,
                    margin_mode=o.position.margin_mode,
                    direction=o.position.direction,
                    size=o.position.size,
                    rate=o.rate,
                    price=o.price,
                    payment=o.payment,
                    collected=o.collected,
                )
                for o in outcomes
            ]
        )
        _test_crash_hook()
    return len(outcomes)


def _test_crash_hook() -> None:
    """Replaced by the crash test (monkeypatch) to fail after a given number of chunks."""


def funding_tick() -> FundingRun | None:
    """Beat entry point: settle the latest due funding instant if not done yet."""
    cfg = risk_config()
    funding_time = funding_time_for(timezone.now(), cfg.funding_interval_seconds)
    run = FundingRun.objects.filter(funding_time=funding_time).first()
    if run is not None and run.status == FundingRun.Status.COMPLETED:
        funding_compare_hl(run)
        return run
    run = funding_run(funding_time=funding_time)
    funding_compare_hl(run)
    return run


def funding_compare_hl(run: FundingRun) -> dict[str, Any] | None:
    """Compare the mirrored HYPERLIQUID funding of an hour with the trading account's actual
    ``userFunding`` (spec 04) → a drift record per asset (> 1 % alert, > 5 % P0 and HL halt).
    Waits for the HL gateway (``trading.hl_execution.trading_gateway``)."""
    from trading import hl_execution

    if run.hl_compared_at is not None or run.status != FundingRun.Status.COMPLETED:
        return None
    if not getattr(hl_execution, "available", lambda: False)() or not hasattr(
        hl_execution, "trading_gateway"
    ):
        return None
    from django.db.models import Sum

    from risk.drift import drift_record

    start_ms = int(run.funding_time.timestamp() * 1000) - 60_000
    end_ms = int(run.funding_time.timestamp() * 1000) + 60_000
    rows = hl_execution.trading_gateway().user_funding(start_ms, end_ms)
    actual: dict[str, Decimal] = {}
    for row in rows:
        delta = row.get("delta", row)
        coin, usdc = delta.get("coin"), delta.get("usdc")
        if coin and usdc is not None:
            actual[coin] = actual.get(coin, Decimal(0)) + Decimal(str(usdc))
    mirrored = dict(
        FundingSettlement.objects.filter(funding_time=run.funding_time, source=Source.HYPERLIQUID)
        .values("asset")
        .annotate(total=Sum("payment"))
        .values_list("asset", "total")
    )
    report = {}
    for asset in set(actual) | set(mirrored):
        # the trading account's flow is the opposite side of the users' mirrored flows... it holds them
        xbit = mirrored.get(asset, Decimal(0))
        hl = actual.get(asset, Decimal(0))
        drift_record(
            ref=f"funding:{int(run.funding_time.timestamp())}:{asset}",
            kind="FUNDING",
            asset=asset,
            xbit_pnl=xbit,
            hl_actual_pnl=hl,
            notional=abs(xbit) or abs(hl),
        )
        report[asset] = {"mirrored": str(xbit), "hl": str(hl)}
    FundingRun.objects.filter(pk=run.pk).update(hl_compared_at=timezone.now())
    return report
