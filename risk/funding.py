"""Funding runs (spec 04): exactly once per (position, funding time) even when run twice or crashed
half way — at HL's funding instants, with what HL booked.

**Driven by HL's events** (:func:`funding_sync`, the beat's ``funding_tick`` every 15 s): HL's
``fundingHistory`` says which instants HL has settled (HL's clock, not ours); for each new one the run
reads what HL booked there — the rate per coin (``fundingHistory``, or the accounts' own rows), and
``userFunding`` of the trading and hedge accounts — and records it once in ``FundingRun.rates``:

* the rate is HL's; the price is HL's oracle at the instant, as HL applied it: recovered from what an
  account of ours was paid on (``−usdc / (szi × rate)``, the account with the largest payment, which
  makes the recovered price exact to well under a basis point), else — neither account held the coin,
  or its payment was too small to recover a price from — the feed's last reading of HL's oracle dated
  at or before the instant on HL's clock (``source: "hl:oracle"``, ``trading.feed.oracles``), else the
  oracle in our quote cache (``source: "quote"``, our time);
* HYPERLIQUID positions mirror the trading account's payment for the coin: each user's share is
  ``usdc × size / szi`` (``trading.funding.hl_share``); after the run, what HL booked beyond the users'
  shares (the rounding) is posted between the platform (``fee_revenue`` sub ``funding``) and the
  trading account's ``hl_pnl``, and what users could not pay (capped payments) from the risk reserve,
  so the account's ``hl_pnl`` moves by exactly what HL booked;
* the hedge account's funding is posted between the hedge P&L (``bbook_pnl`` sub ``hedge``) and its
  ``hl_pnl`` (as its fills are);
* INTERNAL positions pay size × that price × HL's rate to the B-book.

Positions held at the instant settle even if closed since (on cash), at the size they held then (the
fills since are undone). Without an HL trading account configured the run falls back to our wall
clock and the quote cache's rate and oracle (:func:`funding_tick` without HL).

A run settles positions in chunks: each chunk is one transaction — the users' locks first, the
positions, ``trading.funding.funding_settle_positions`` (ledger), and one ``FundingSettlement`` row per
position (unique per position and funding time). A crash rolls back the chunk in flight; a re-run skips
every position that already has its row; the platform's postings carry keys per instant and coin.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, Sum
from django.utils import timezone

from core.live import broadcast_now
from core.money import ZERO
from risk.config import risk_config
from risk.drift import drift_record
from risk.models import FundingRun, FundingSettlement
from trading.feed.oracles import oracle_at
from trading.funding import FundingRate, funding_dues, funding_settle_positions, users_lock
from trading.marketdata import get_quotes
from trading.models import Fill, Position, Source
from trading.orders.hyperliquid import available as hl_available
from trading.orders.hyperliquid import trading_gateway
from trading.venues.hl import gateway
from wallets.ledger import AccountRef, TransferSpec, ledger_post
from wallets.models import AccountKind, TransferKind

logger = logging.getLogger(__name__)


def funding_time_for(now: datetime, interval_s: int) -> datetime:
    """The latest funding instant at or before ``now`` (multiples of the interval since the epoch: on
    the hour for 3600)."""
    seconds = int(now.timestamp()) // interval_s * interval_s
    return datetime.fromtimestamp(seconds, tz=UTC)


PRICE_Q = Decimal("0.00000001")
# a recovered oracle is used when the payment it comes from is at least this large: the payment's
# micro-dollar rounding then moves the price by less than 0.1 basis point
MIN_RECOVERY_USDC = Decimal("0.05")
# without a recovered oracle: the feed's reading of HL's oracle dated at most this long before the
# instant (HL republishes its oracle every few seconds; the feed records an unchanged one every 10 s)
ORACLE_MAX_AGE_S = 60.0


@dataclass(frozen=True)
class HLFundingInstant:
    """What HL booked at one funding instant (HL's time): its rate per coin, and each of our
    accounts' ``userFunding`` rows per coin as (signed cash flow, netted size paid on)."""

    at: datetime
    rates: dict[str, Decimal] = field(default_factory=dict)
    trading: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)
    hedge: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)


def recovered_oracle(usdc: Decimal, szi: Decimal, rate: Decimal) -> Decimal | None:
    """HL's oracle at an instant as HL applied it to a position: ``usdc = −szi × oracle × rate``."""
    if not szi or not rate or abs(usdc) < MIN_RECOVERY_USDC:
        return None
    price = -usdc / (szi * rate)
    return price.quantize(PRICE_Q) if price > 0 else None


def hl_instant_rates(instant: HLFundingInstant, assets: set[str]) -> dict[str, dict[str, str]]:
    """The recorded form of HL's numbers for ``assets`` (pure): rate, price and its source, and the
    trading account's row the HYPERLIQUID positions mirror. An asset HL has no rate for is left out."""
    out: dict[str, dict[str, str]] = {}
    for asset in sorted(assets):
        rate = instant.rates.get(asset)
        if rate is None:
            continue
        entry = {"rate": str(rate)}
        candidates = [
            (abs(row[0]), name, row)
            for name, rows in (("hl:trading", instant.trading), ("hl:hedge", instant.hedge))
            if (row := rows.get(asset)) is not None
        ]
        for _size, name, (usdc, szi) in sorted(candidates, key=lambda c: c[0], reverse=True):
            price = recovered_oracle(usdc, szi, rate)
            if price is not None:
                entry.update(price=str(price), source=name)
                break
        if asset in instant.trading:
            usdc, szi = instant.trading[asset]
            entry.update(hl_usdc=str(usdc), hl_szi=str(szi))
        out[asset] = entry
    return out


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
    return _as_rates(recorded)


def _as_rates(recorded: dict[str, Any]) -> dict[str, FundingRate]:
    return {
        a: FundingRate(
            Decimal(v["rate"]),
            Decimal(v["price"]),
            Decimal(v["hl_usdc"]) if v.get("hl_usdc") is not None else None,
            Decimal(v["hl_szi"]) if v.get("hl_szi") is not None else None,
        )
        for a, v in recorded.items()
        if v.get("price") is not None
    }


def _hl_rates_for(run: FundingRun, assets: set[str], instant: HLFundingInstant) -> dict[str, FundingRate]:
    """:func:`_rates_for` at an HL instant: HL's numbers recorded once (a re-run uses the same). A price
    HL's rows cannot give is the feed's last oracle reading dated (HL's clock) at or before the instant
    and at most :data:`ORACLE_MAX_AGE_S` older (``source: "hl:oracle"``, ``oracle_time`` its HL ms), else
    the quote cache's current oracle (``source: "quote"``: our time, the last resort)."""
    recorded = dict(run.rates)
    missing = sorted(a for a in assets if a not in recorded)
    if missing:
        fresh = hl_instant_rates(instant, set(missing))
        at_ms = int(instant.at.timestamp() * 1000)
        unpriced = []
        for asset in sorted(a for a, v in fresh.items() if "price" not in v):
            reading = oracle_at(asset, at_ms, ORACLE_MAX_AGE_S)
            if reading is not None:
                fresh[asset].update(price=str(reading[1]), source="hl:oracle", oracle_time=str(reading[0]))
            else:
                unpriced.append(asset)
        quotes = get_quotes(unpriced) if unpriced else {}
        for asset in unpriced:
            quote = quotes.get(asset)
            if quote is not None and quote.oracle:
                fresh[asset].update(price=str(quote.oracle), source="quote")
        recorded.update({a: v for a, v in fresh.items() if "price" in v})
        unknown = sorted(a for a in assets if a not in recorded)
        FundingRun.objects.filter(pk=run.pk).update(rates=recorded, missing_assets=unknown)
        run.rates, run.missing_assets = recorded, unknown
    return _as_rates(recorded)


def _due(funding_time: datetime) -> Any:
    """Positions held at the instant without a settlement yet: opened by then, and still open or closed
    after it."""
    return (
        Position.objects.filter(opened_at__lte=funding_time)
        .filter(Q(status=Position.Status.OPEN) | Q(closed_at__gt=funding_time))
        .exclude(Exists(FundingSettlement.objects.filter(position=OuterRef("pk"), funding_time=funding_time)))
    )


def sizes_at(positions: list[Position], at: datetime) -> dict[int, Decimal]:
    """The size each position held at ``at`` where fills since changed it (adds undone, closes put
    back): a closed position settles on what it held at the instant."""
    deltas: defaultdict[int, Decimal] = defaultdict(lambda: ZERO)
    rows = Fill.objects.filter(position_id__in=[p.pk for p in positions], created_at__gt=at).values_list(
        "position_id", "size", "closed_size"
    )
    for position_id, size, closed in rows:
        deltas[position_id] += closed if closed else -size
    by_id = {p.pk: p for p in positions}
    return {pk: max(by_id[pk].size + delta, ZERO) for pk, delta in deltas.items()}


def funding_run(
    *, funding_time: datetime | None = None, chunk: int = 500, instant: HLFundingInstant | None = None
) -> FundingRun:
    """Settle one funding instant (default: the latest due one by our clock). ``instant``: what HL
    booked there (HL-driven runs, see the module docstring); without it the quote cache's rate and
    oracle are used. Idempotent; safe to run concurrently (chunks lock their users and positions; the
    unique settlement row is the final arbiter; the platform's postings have keys)."""
    cfg = risk_config()
    if instant is not None:
        funding_time = instant.at
    funding_time = funding_time or funding_time_for(timezone.now(), cfg.funding_interval_seconds)
    run, _ = FundingRun.objects.get_or_create(funding_time=funding_time)
    if run.status == FundingRun.Status.COMPLETED:
        return run
    due = _due(funding_time)
    assets = set(due.values_list("asset", flat=True).distinct())
    rates = _rates_for(run, assets) if instant is None else _hl_rates_for(run, assets, instant)
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
        with transaction.atomic():
            if instant is not None:
                _platform_postings(run, instant)
            FundingRun.objects.filter(pk=run.pk).update(
                status=FundingRun.Status.COMPLETED, completed_at=timezone.now()
            )
    else:
        logger.warning(
            "funding %s: no rate/oracle yet for %s; retried next tick", funding_time, run.missing_assets
        )
    run.refresh_from_db()
    if settled:
        broadcast_now("funding", {"funding_time": funding_time.isoformat(), "settled": settled})
    return run


def _settle_chunk(batch: list[tuple[int, int]], rates: dict[str, FundingRate], funding_time: datetime) -> int:
    ids = [pid for pid, _uid in batch]
    with transaction.atomic():
        users_lock(uid for _pid, uid in batch)  # first locks of the transaction, ascending
        # the position rows after the users' locks (every money transaction's order), by id
        positions = list(_due(funding_time).select_for_update().filter(pk__in=ids).order_by("id"))
        if not positions:
            return 0
        dues = funding_dues(positions, rates, sizes_at(positions, funding_time))
        key = f"funding:{int(funding_time.timestamp())}:{positions[0].pk}-{positions[-1].pk}:{len(positions)}"
        outcomes = funding_settle_positions(dues=dues, funding_time=funding_time, key=key)
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
                    size=o.size,
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


def _platform_postings(run: FundingRun, instant: HLFundingInstant) -> None:
    """After every position of an HL instant is settled (inside the transaction that completes the
    run): per coin, what the trading account booked beyond the users' mirrored payments — the
    rounding of the shares, against the platform (``fee_revenue`` sub ``funding``), and what users
    could not pay, from the risk reserve — and the hedge account's own funding. Idempotency keys:
    ``funding-platform:<instant>:<coin>``, ``hedge-funding:<instant>:<coin>``."""
    at = int(run.funding_time.timestamp())
    trading = AccountRef.platform(AccountKind.HL_PNL, sub="trading")
    platform = AccountRef.platform(AccountKind.FEE_REVENUE, sub="funding")
    reserve = AccountRef.platform(AccountKind.RISK_RESERVE)
    mirrored = {
        row["asset"]: row
        for row in FundingSettlement.objects.filter(funding_time=run.funding_time, source=Source.HYPERLIQUID)
        .values("asset")
        .annotate(payment=Sum("payment"), collected=Sum("collected"))
        .order_by()
    }
    for coin, (usdc, _szi) in sorted(instant.trading.items()):
        row = mirrored.get(coin) or {"payment": ZERO, "collected": ZERO}
        # the users' mirror moved hl_pnl by −Σ collected; HL moved the account by usdc (value ≈ capital −
        # hl_pnl): the platform books −usdc − (−Σ payment) (the rounding) and the reserve the shortfall
        rounding = row["payment"] - usdc
        shortfall = row["collected"] - row["payment"]
        transfers = []
        if rounding:
            debit, credit = (platform, trading) if rounding > 0 else (trading, platform)
            transfers.append(TransferSpec(debit, credit, abs(rounding), TransferKind.FUNDING, "funding", at))
        if shortfall > 0:
            transfers.append(TransferSpec(reserve, trading, shortfall, TransferKind.FUNDING, "funding", at))
        if transfers:
            ledger_post(key=f"funding-platform:{at}:{coin}", transfers=transfers)
    hedge_hl = AccountRef.platform(AccountKind.HL_PNL, sub="hedge")
    hedge_pnl = AccountRef.platform(AccountKind.BBOOK_PNL, sub="hedge")
    for coin, (usdc, _szi) in sorted(instant.hedge.items()):
        if not usdc:
            continue
        # paid: the hedge account's value fell (hl_pnl up), a cost of the hedge; received the reverse
        debit, credit = (hedge_pnl, hedge_hl) if usdc < 0 else (hedge_hl, hedge_pnl)
        ledger_post(
            key=f"hedge-funding:{at}:{coin}",
            transfers=[TransferSpec(debit, credit, abs(usdc), TransferKind.FUNDING, "hedge_funding", at)],
        )


def _rows_by_coin(
    rows: list[dict[str, Any]], at_ms: int
) -> tuple[dict[str, tuple[Decimal, Decimal]], dict[str, Decimal]]:
    """An account's ``userFunding`` rows at one instant: (usdc, szi) per coin, and the rates they carry."""
    booked: dict[str, tuple[Decimal, Decimal]] = {}
    rates: dict[str, Decimal] = {}
    for entry in rows:
        delta = entry.get("delta") or {}
        if int(entry.get("time", -1)) != at_ms or delta.get("type", "funding") != "funding":
            continue
        coin = str(delta["coin"])
        usdc, szi = Decimal(str(delta["usdc"])), Decimal(str(delta["szi"]))
        old = booked.get(coin, (ZERO, ZERO))
        booked[coin] = (old[0] + usdc, old[1] + szi)
        rates[coin] = Decimal(str(delta["fundingRate"]))
    return booked, rates


def hl_funding_instant(at_ms: int, assets: set[str]) -> HLFundingInstant:
    """Read what HL booked at ``at_ms``: both accounts' ``userFunding`` rows (they carry the rate of the
    coins they hold) and ``fundingHistory`` for the other ``assets``."""
    trading_gw = gateway("trading")
    if trading_gw is None:
        raise RuntimeError("the HL trading account is not configured")
    trading, rates = _rows_by_coin(trading_gw.user_funding(at_ms, at_ms), at_ms)
    hedge: dict[str, tuple[Decimal, Decimal]] = {}
    hedge_gw = gateway("hedge")
    if hedge_gw is not None:
        hedge, hedge_rates = _rows_by_coin(hedge_gw.user_funding(at_ms, at_ms), at_ms)
        rates = {**hedge_rates, **rates}
    for asset in sorted(assets - set(rates)):
        for row in trading_gw.funding_history(asset, at_ms, at_ms):
            if int(row["time"]) == at_ms:
                rates[asset] = Decimal(str(row["fundingRate"]))
    return HLFundingInstant(datetime.fromtimestamp(at_ms / 1000, tz=UTC), rates, trading, hedge)


def funding_sync(*, now: datetime | None = None) -> list[FundingRun]:
    """Settle every funding instant HL has settled since the last completed one (HL's clock decides,
    never ours), oldest first; then compare each with HL (drift). The first time, instants up to two
    intervals back are considered. One ``fundingHistory`` read per call when nothing is new."""
    gw = gateway("trading")
    if gw is None:
        raise RuntimeError("the HL trading account is not configured")
    interval = risk_config().funding_interval_seconds
    last = FundingRun.objects.filter(status=FundingRun.Status.COMPLETED).order_by("-funding_time").first()
    floor = (now or timezone.now()) - timedelta(seconds=2 * interval)
    since = last.funding_time + timedelta(milliseconds=1) if last is not None else floor
    held = set(
        Position.objects.filter(Q(status=Position.Status.OPEN) | Q(closed_at__gte=since))
        .values_list("asset", flat=True)
        .distinct()
    )
    reference = sorted(held)[0] if held else "BTC"  # every coin funds at the same instants
    instants = sorted({int(r["time"]) for r in gw.funding_history(reference, int(since.timestamp() * 1000))})
    runs = []
    for at_ms in instants:
        at = datetime.fromtimestamp(at_ms / 1000, tz=UTC)
        if last is not None and at <= last.funding_time:
            continue
        assets = set(_due(at).values_list("asset", flat=True).distinct())
        run = funding_run(instant=hl_funding_instant(at_ms, assets))
        funding_compare_hl(run)
        runs.append(run)
        if run.status != FundingRun.Status.COMPLETED:
            break  # an asset without a rate yet: the next tick retries this instant first
    return runs


def funding_tick() -> FundingRun | None:
    """Beat entry point. With an HL trading account: :func:`funding_sync` (HL's instants). Without one
    (a deployment not connected to HL): the latest instant by our clock, at the quote cache's rate and
    oracle."""
    if gateway("trading") is not None:
        runs = funding_sync()
        return runs[-1] if runs else None
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
    Waits for the HL gateway (``trading.orders.hyperliquid.trading_gateway``)."""
    if run.hl_compared_at is not None or run.status != FundingRun.Status.COMPLETED:
        return None
    if not hl_available():
        return None
    at_ms = int(run.funding_time.timestamp() * 1000)
    rows = trading_gateway().user_funding(at_ms, at_ms)  # HL's instants are exact
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
