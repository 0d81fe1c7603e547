"""Net exposure (spec 05), kept incrementally from the ledger's events and recomputable from
PostgreSQL at any time.

The consumer (``manage.py run_risk_consumer``) handles ``trading.fill`` and ``trading.liquidation``
events once each (``consume_batch`` / ``handle_once``). A fill event carries the resulting state of
every position it touched, so the consumer SETS ``ExposurePosition`` rows and applies the difference
to the per-asset totals (``ExposureAsset``: long/short size and Σ size×entry) — replaying or
reordering duplicates cannot double-count. Notional and the B-book uPnL follow the live mark from
those totals without touching positions. ``ExposureDaily`` accumulates today's INTERNAL results.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Context, Decimal, localcontext
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Sum
from django.utils import timezone

from core.alerts.services import alert_raise, alert_resolve_condition
from core.events.models import OutboxEvent, ProcessedEvent
from core.events.services import Event, consume_batch
from core.live import broadcast_on_commit
from core.loops import Backoff
from core.money import ZERO
from risk.config import risk_config
from risk.marks import effective_marks
from risk.models import ExposureAsset, ExposureDaily, ExposurePosition, ExposureSnapshot
from trading.models import Position, Source

logger = logging.getLogger(__name__)

# Exposure totals are exact sums of size × entry (see ``ExposureAsset``): enough digits that no sum of
# this magnitude is ever rounded, so the incremental totals and a recompute agree to the last digit.
EXACT = Context(prec=60)
TOPICS = {"trading.fill", "trading.liquidation"}
CONSUMER_GROUP = "risk-exposure"


@dataclass(frozen=True)
class AssetExposure:
    asset: str
    mark: Decimal | None
    long_size: Decimal
    short_size: Decimal
    long_notional: Decimal
    short_notional: Decimal
    net_notional: Decimal  # users' longs − shorts: positive = users net long, platform net short
    bbook_upnl: Decimal  # the platform's unrealized P&L as the users' counterparty
    positions: int

    def as_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in self.__dict__.items()}


def _view(row: ExposureAsset, mark: Decimal | None) -> AssetExposure:
    price = mark if mark is not None else ZERO
    long_notional = row.long_size * price
    short_notional = row.short_size * price
    users_upnl = (
        (long_notional - row.long_cost) + (row.short_cost - short_notional) if mark is not None else ZERO
    )
    return AssetExposure(
        asset=row.asset,
        mark=mark,
        long_size=row.long_size,
        short_size=row.short_size,
        long_notional=long_notional,
        short_notional=short_notional,
        net_notional=long_notional - short_notional,
        bbook_upnl=-users_upnl,
        positions=row.positions,
    )


# ------------------------------------------------------------------------------------------ consumer
def exposure_handle(event: Event) -> None:
    """The idempotent handler (``handle_once`` wraps it in the transaction that records the event)."""
    payload = event.payload
    if payload.get("source") != Source.INTERNAL and payload.get("venue") != Source.INTERNAL:
        return
    if event.topic == "trading.fill":
        _apply_fill(payload)
    elif event.topic == "trading.liquidation":
        _apply_liquidation(payload)


def _apply_fill(payload: dict[str, Any]) -> None:
    asset = payload["asset"]
    today = timezone.now().date()
    row, _ = ExposureAsset.objects.select_for_update().get_or_create(asset=asset)
    for state in payload.get("positions", []):
        pid = int(state["id"])
        old = ExposurePosition.objects.filter(position_id=pid).first()
        if old is not None:
            _add(row, old.direction, -old.size, old.entry_price, -1)
        if state["status"] == Position.Status.OPEN and Decimal(state["size"]) > 0:
            size, entry = Decimal(state["size"]), Decimal(state["entry_price"])
            ExposurePosition.objects.update_or_create(
                position_id=pid,
                defaults={
                    "asset": asset,
                    "direction": state["direction"],
                    "size": size,
                    "entry_price": entry,
                },
            )
            _add(row, state["direction"], size, entry, 1)
        elif old is not None:
            old.delete()
    row.updated_at = timezone.now()
    row.save()
    realized, fee = Decimal(payload.get("realized_pnl") or 0), Decimal(payload.get("fee") or 0)
    if realized or fee:
        _daily(today, asset, client_pnl=realized, fees=fee)
    _push(asset, row)


def _apply_liquidation(payload: dict[str, Any]) -> None:
    # the isolated margin remainder taken at a liquidation is client loss beyond the realized P&L
    loss = Decimal(payload.get("loss") or 0)
    pnl = Decimal(payload.get("xbit_pnl") or 0)
    remainder = loss - min(max(-pnl, ZERO), loss)
    if remainder > 0:
        _daily(timezone.now().date(), payload["asset"], liquidation_margin=remainder)


def _add(row: ExposureAsset, direction: str, size: Decimal, entry: Decimal, count: int) -> None:
    """Move the asset's totals by a signed ``size`` at ``entry``, exactly (see ``EXACT``)."""
    with localcontext(EXACT):
        cost = size * entry
        if direction == Position.Direction.LONG:
            row.long_size += size
            row.long_cost += cost
        else:
            row.short_size += size
            row.short_cost += cost
    row.positions = max(0, row.positions + count)


def _daily(
    day: date,
    asset: str,
    *,
    client_pnl: Decimal = ZERO,
    fees: Decimal = ZERO,
    liquidation_margin: Decimal = ZERO,
) -> None:
    row, _ = ExposureDaily.objects.select_for_update().get_or_create(day=day, asset=asset)
    row.client_realized_pnl += client_pnl
    row.fees += fees
    row.liquidation_margin += liquidation_margin
    row.updated_at = timezone.now()
    row.save()


def _push(asset: str, row: ExposureAsset) -> None:
    try:
        mark = effective_marks([asset]).get(asset)
    except Exception:
        mark = None
    broadcast_on_commit("exposure", {"asset": asset, **_view(row, mark).as_dict()})


def run_consumer(*, consumer_name: str, stop: Any, block_ms: int = 200) -> int:
    """Loop ``consume_batch`` until ``stop()`` is true (the management command). A failed batch (database
    or Redis away) closes the broken connection and backs off; unacknowledged events are read again."""
    handled = 0
    backoff = Backoff()
    while not stop():
        try:
            handled += consume_batch(
                group=CONSUMER_GROUP,
                consumer_name=consumer_name,
                handler=exposure_handle,
                topics=TOPICS,
                block_ms=block_ms,
            )
            backoff.succeeded()
        except Exception:
            logger.exception("risk consumer batch failed; retrying")
            backoff.failed(stop)
    return handled


# ------------------------------------------------------------------------------------------ reads
def exposure_current(marks: dict[str, Decimal] | None = None) -> dict[str, AssetExposure]:
    """Per-asset exposure from the incremental totals at the current (or given) marks."""
    rows = list(ExposureAsset.objects.all())
    marks = marks if marks is not None else effective_marks(r.asset for r in rows)
    return {r.asset: _view(r, marks.get(r.asset)) for r in rows}


def exposure_recompute(*, apply: bool = False) -> dict[str, dict[str, str]]:
    """Recompute per-asset totals from the open INTERNAL positions in PostgreSQL and compare them with
    the incremental ones. Returns the differences ({} = they agree); ``apply`` rewrites the tables
    from the database (restart recovery, or after a reported mismatch)."""
    totals: dict[str, dict[str, Decimal]] = defaultdict(
        lambda: {
            "long_size": ZERO,
            "short_size": ZERO,
            "long_cost": ZERO,
            "short_cost": ZERO,
            "positions": ZERO,
        }
    )
    positions = list(
        Position.objects.filter(source=Source.INTERNAL, status=Position.Status.OPEN).values_list(
            "id", "asset", "direction", "size", "entry_price"
        )
    )
    with localcontext(EXACT):
        for _pid, asset, direction, size, entry in positions:
            side = "long" if direction == Position.Direction.LONG else "short"
            totals[asset][f"{side}_size"] += size
            totals[asset][f"{side}_cost"] += size * entry
            totals[asset]["positions"] += 1
    current = {r.asset: r for r in ExposureAsset.objects.all()}
    diffs: dict[str, dict[str, str]] = {}
    for asset in set(totals) | set(current):
        want = totals.get(asset) or dict.fromkeys(
            ("long_size", "short_size", "long_cost", "short_cost", "positions"), ZERO
        )
        row = current.get(asset)
        for field, value in want.items():
            have = Decimal(getattr(row, field)) if row is not None else ZERO
            if have != value:
                diffs.setdefault(asset, {})[field] = f"incremental {have} != database {value}"
    if apply:
        with transaction.atomic():
            ExposurePosition.objects.all().delete()
            ExposurePosition.objects.bulk_create(
                [
                    ExposurePosition(position_id=pid, asset=a, direction=d, size=s, entry_price=e)
                    for pid, a, d, s, e in positions
                ],
                batch_size=2000,
            )
            for asset in set(totals) | set(current):
                want = totals.get(asset)
                ExposureAsset.objects.update_or_create(
                    asset=asset,
                    defaults={
                        "long_size": want["long_size"] if want else ZERO,
                        "short_size": want["short_size"] if want else ZERO,
                        "long_cost": want["long_cost"] if want else ZERO,
                        "short_cost": want["short_cost"] if want else ZERO,
                        "positions": int(want["positions"]) if want else 0,
                        "updated_at": timezone.now(),
                    },
                )
    return diffs


IN_FLIGHT_WINDOW = timedelta(minutes=15)
_FIELDS = ("long_size", "short_size", "long_cost", "short_cost", "positions")


def _sum_positions(rows: Any) -> dict[str, dict[str, Decimal]]:
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: dict.fromkeys(_FIELDS, ZERO))
    with localcontext(EXACT):
        for asset, direction, size, entry in rows:
            side = "long" if direction == Position.Direction.LONG else "short"
            totals[asset][f"{side}_size"] += size
            totals[asset][f"{side}_cost"] += size * entry
            totals[asset]["positions"] += 1
    return totals


def _positions_in_flight() -> set[int]:
    """Positions named by fill or liquidation events the exposure consumer has not processed yet (the
    last ``IN_FLIGHT_WINDOW``: an event older than that is not in flight, its consumer is stuck)."""
    processed = ProcessedEvent.objects.filter(consumer=CONSUMER_GROUP, event_id=OuterRef("event_id"))
    payloads = (
        OutboxEvent.objects.filter(
            topic__in=("trading.fill", "trading.liquidation"),
            created_at__gte=timezone.now() - IN_FLIGHT_WINDOW,
        )
        .exclude(Exists(processed))
        .values_list("payload", flat=True)
    )
    ids: set[int] = set()
    for payload in payloads:
        ids.update(int(p["id"]) for p in payload.get("positions", []))
        if payload.get("position_id") is not None:
            ids.add(int(payload["position_id"]))
    return ids


def exposure_compare() -> dict[str, dict[str, str]]:
    """The reconciliation's check of the incremental exposure, free of the race between a fill's commit
    and the consumer applying its event: one REPEATABLE READ snapshot reads the open INTERNAL positions,
    the consumer's last view of each (``ExposurePosition``), its totals and the events it has not
    processed yet. Positions with an event in flight are left out of both sides; everything else must
    agree exactly — the totals with the consumer's per-position rows, and those rows with the
    positions. Returns the differences per asset ({} = they agree)."""
    with transaction.atomic():
        if len(connection.atomic_blocks) == 1:  # the transaction starts here: take its snapshot
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        in_flight = _positions_in_flight()
        open_positions = {
            pid: (asset, direction, size, entry)
            for pid, asset, direction, size, entry in Position.objects.filter(
                source=Source.INTERNAL, status=Position.Status.OPEN
            ).values_list("id", "asset", "direction", "size", "entry_price")
        }
        seen = {
            pid: (asset, direction, size, entry)
            for pid, asset, direction, size, entry in ExposurePosition.objects.values_list(
                "position_id", "asset", "direction", "size", "entry_price"
            )
        }
        current = {r.asset: r for r in ExposureAsset.objects.all()}
    diffs: dict[str, dict[str, str]] = {}
    # 1. the consumer's totals are the sum of its own per-position rows, in flight or not
    totals = _sum_positions(seen.values())
    for asset in set(totals) | set(current):
        want = totals.get(asset) or dict.fromkeys(_FIELDS, ZERO)
        row = current.get(asset)
        for name in _FIELDS:
            have = Decimal(getattr(row, name)) if row is not None else ZERO
            if have != want[name]:
                diffs.setdefault(asset, {})[name] = f"incremental {have} != its positions' sum {want[name]}"
    # 2. every position with no event in flight is seen as it is in the database
    for pid in (set(open_positions) | set(seen)) - in_flight:
        ours, theirs = seen.get(pid), open_positions.get(pid)
        if ours != theirs:
            asset = (theirs or ours)[0]  # type: ignore[index]
            diffs.setdefault(asset, {})[f"position {pid}"] = (
                f"incremental {_describe(ours)} != database {_describe(theirs)}"
            )
    return diffs


def _describe(state: tuple[str, str, Decimal, Decimal] | None) -> str:
    return "none" if state is None else f"{state[1]} {state[2]} @ {state[3]}"


def daily_net_loss(day: date | None = None) -> Decimal:
    """Today's INTERNAL net loss of the platform (UTC day): clients' realized P&L minus the fees and
    liquidation margin they paid. Positive = the platform lost money today."""
    day = day or timezone.now().date()
    agg = ExposureDaily.objects.filter(day=day).aggregate(
        pnl=Sum("client_realized_pnl"), fees=Sum("fees"), liq=Sum("liquidation_margin")
    )
    return (agg["pnl"] or ZERO) - (agg["fees"] or ZERO) - (agg["liq"] or ZERO)


def exposure_snapshot_take(*, at: datetime | None = None) -> int:
    """Store one snapshot per asset (charts) and raise/resolve the exposure alerts of spec 05."""
    at = at or timezone.now()
    views = exposure_current()
    ExposureSnapshot.objects.bulk_create(
        [
            ExposureSnapshot(
                asset=v.asset,
                at=at,
                mark=v.mark,
                long_notional=v.long_notional,
                short_notional=v.short_notional,
                net_notional=v.net_notional,
                bbook_upnl=v.bbook_upnl,
            )
            for v in views.values()
        ]
    )
    cfg = risk_config()
    for v in views.values():
        net = abs(v.net_notional)
        if net > cfg.exposure_asset_alert:
            alert_raise(
                rule="risk.exposure_asset",
                severity="P0" if net > cfg.exposure_asset_critical else "P1",
                subject=v.asset,
                message=f"{v.asset} net internal exposure {v.net_notional:,.0f}",
            )
        else:
            alert_resolve_condition(rule="risk.exposure_asset", subject=v.asset)
    total = sum((abs(v.net_notional) for v in views.values()), ZERO)
    if total > cfg.exposure_total_alert:
        alert_raise(
            rule="risk.exposure_total",
            severity="P0" if total > cfg.exposure_total_critical else "P1",
            subject="*",
            message=f"total internal exposure {total:,.0f}",
        )
    else:
        alert_resolve_condition(rule="risk.exposure_total", subject="*")
    return len(views)
