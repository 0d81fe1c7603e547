"""Markouts from fill events, kept incrementally.

Intake: the consumer group ``risk-markouts`` reads ``trading.fill`` from the outbox stream and writes
one :class:`FillMarkout` per fill (``handle_once``: exactly once). Horizons: :func:`markouts_process_due`
takes the rows whose next horizon is due (``SKIP LOCKED``, so several loops may run), reads each
asset's mid history once for the whole batch, fills in every horizon that has passed and moves
``next_due_at`` on; a horizon whose mid is not in the history ``GRACE_S`` after it passed is given up
(bit in ``missing``). The clients touched get their metrics recomputed (:mod:`.metrics`)."""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import redis
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from core.events.models import ProcessedEvent
from core.events.services import STREAM, Event, ensure_group, read_group, redis_client
from core.loops import db_recover
from core.money import q_usdc
from risk.client_risk.metrics import client_metrics_refresh
from risk.client_risk.midhistory import MAX_SAMPLE_AGE_S, mid_at, mid_newest, mid_series
from risk.client_risk.models import HORIZONS, FillMarkout
from trading.models import Fill, Position

logger = logging.getLogger(__name__)

CONSUMER_GROUP = "risk-markouts"
TOPICS = {"trading.fill"}
GRACE_S = 15.0  # how long past a horizon to wait for the mid history to reach it
BP = Decimal(10_000)
BP_QUANTUM = Decimal("0.0001")
SIDE = {"BUY": 1, "SELL": -1}


def markout_rows(fills: Iterable[Fill], opened_at: dict[int, datetime]) -> list[FillMarkout]:
    rows = []
    for fill in fills:
        held = opened_at.get(fill.position_id) if fill.closed_size > 0 else None
        rows.append(
            FillMarkout(
                fill_id=fill.pk,
                user_id=fill.user_id,
                asset=fill.asset,
                source=fill.source,
                side=SIDE[fill.side],
                size=fill.size,
                price=fill.price,
                notional=q_usdc(fill.size * fill.price),
                realized_pnl=fill.realized_pnl,
                fee=fill.fee,
                is_liquidation=fill.is_liquidation,
                holding_seconds=(fill.created_at - held).total_seconds() if held else None,
                filled_at=fill.created_at,
                next_due_at=fill.created_at + timedelta(seconds=HORIZONS[0]),
            )
        )
    return rows


def markouts_intake(fill_ids: list[int]) -> int:
    """Start the markouts of these fills (idempotent: a fill already taken in is skipped)."""
    fills = list(Fill.objects.filter(pk__in=fill_ids))
    closing = [f.position_id for f in fills if f.closed_size > 0]
    opened = dict(Position.objects.filter(pk__in=closing).values_list("pk", "opened_at")) if closing else {}
    rows = markout_rows(fills, opened)
    FillMarkout.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def markout_handle(event: Event) -> None:
    """One event's intake, for callers that deliver events one by one (``handle_once``)."""
    ids = [int(i) for i in event.payload.get("fill_ids") or []]
    if ids:
        markouts_intake(ids)


def markouts_consume(
    *, consumer_name: str, block_ms: int = 200, count: int = 1000, client: redis.Redis | None = None
) -> int:
    """One read of the consumer group (this consumer's unacknowledged entries first, then new ones),
    taken in as a batch: the events' idempotency rows and every fill's markout row commit in one
    transaction, so a crash re-delivers the batch and an event already taken in is skipped. Returns the
    number of fill events taken in."""
    client = client or redis_client()
    ensure_group(client, CONSUMER_GROUP)
    handled = 0
    for start in ("0", ">"):
        response = read_group(
            client, CONSUMER_GROUP, consumer_name, start=start, count=count, block_ms=block_ms
        )
        entries = [entry for _stream, batch in response for entry in batch]
        if not entries:
            continue
        events = [
            (fields["event_id"], json.loads(fields["payload"]).get("fill_ids") or [])
            for _sid, fields in entries
            if fields and fields.get("topic") in TOPICS
        ]
        if events:
            handled += _intake_once(events)
        client.xack(STREAM, CONSUMER_GROUP, *[sid for sid, _fields in entries])
    return handled


@transaction.atomic
def _intake_once(events: list[tuple[str, list[Any]]]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {ProcessedEvent._meta.db_table} (consumer, event_id, processed_at) "
            "SELECT %s, unnest(%s::uuid[]), now() ON CONFLICT DO NOTHING RETURNING event_id",
            [CONSUMER_GROUP, [event_id for event_id, _ids in events]],
        )
        new = {str(row[0]) for row in cursor.fetchall()}
    ids = [int(i) for event_id, fill_ids in events if event_id in new for i in fill_ids]
    if ids:
        markouts_intake(ids)
    return len(new)


def _bp(name: int) -> str:
    return f"mo_{name}_bp"


def _usdc(name: int) -> str:
    return f"mo_{name}_usdc"


def _advance(row: FillMarkout, series: Any, newest: float, now: float) -> bool:
    """Fill in every horizon of ``row`` that has passed; True if anything changed."""
    t0 = row.filled_at.timestamp()
    changed = False
    if row.mid_at_fill is None:
        mid0 = mid_at(series, t0)
        if mid0 is not None:
            row.mid_at_fill, changed = mid0, True
    pending_due: float | None = None
    for bit, horizon in enumerate(HORIZONS):
        if getattr(row, _bp(horizon)) is not None or row.missing & (1 << bit):
            continue
        due = t0 + horizon
        if due > now or (newest < due and now - due <= GRACE_S):
            pending_due = due if pending_due is None else min(pending_due, due)
            continue
        mid = mid_at(series, due)
        changed = True
        if mid is None:
            row.missing |= 1 << bit
            continue
        move = row.side * (mid - row.price)
        setattr(row, _bp(horizon), (move / row.price * BP).quantize(BP_QUANTUM))
        setattr(row, _usdc(horizon), q_usdc(move * row.size))
    if pending_due is None:
        row.next_due_at, row.done_at = None, timezone.now()
    else:
        next_due = datetime.fromtimestamp(max(pending_due, now + 0.2), tz=timezone.get_current_timezone())
        # not due yet, or waiting for the history: look again shortly (never a busy loop)
        row.next_due_at = next_due if pending_due > now else timezone.now() + timedelta(seconds=0.5)
    return changed


UPDATE_FIELDS = [
    "mid_at_fill",
    *(_bp(h) for h in HORIZONS),
    *(_usdc(h) for h in HORIZONS),
    "missing",
    "next_due_at",
    "done_at",
]


def _write(rows: list[FillMarkout]) -> None:
    """One ``UPDATE … FROM (VALUES …)`` for the batch (Django's ``bulk_update`` builds a CASE per
    column and row, many times slower at a few thousand rows)."""
    table = FillMarkout._meta.db_table
    columns = ", ".join(UPDATE_FIELDS)
    sets = ", ".join(f"{f} = v.{f}" for f in UPDATE_FIELDS)
    casts = [FillMarkout._meta.get_field(f).db_type(connection) for f in UPDATE_FIELDS]
    row_sql = "(%s::bigint, " + ", ".join(f"%s::{c}" for c in casts) + ")"
    for start in range(0, len(rows), 1000):
        chunk = rows[start : start + 1000]
        params: list[Any] = []
        for row in chunk:
            params.append(row.pk)
            params.extend(getattr(row, f) for f in UPDATE_FIELDS)
        values = ", ".join([row_sql] * len(chunk))
        sql = f"UPDATE {table} AS t SET {sets} FROM (VALUES {values}) AS v(id, {columns}) WHERE t.id = v.id"  # noqa: S608 - our own table and columns
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def markouts_process_due(*, limit: int = 2000, now: float | None = None) -> int:
    """One batch of due horizons. Returns how many rows were looked at (0 = nothing due)."""
    at = timezone.now().timestamp() if now is None else now
    cutoff = datetime.fromtimestamp(at, tz=timezone.get_current_timezone())
    with transaction.atomic():
        rows = list(
            FillMarkout.objects.select_for_update(skip_locked=True)
            .filter(next_due_at__lte=cutoff)
            .order_by("next_due_at")[:limit]
        )
        if not rows:
            return 0
        by_asset: dict[str, list[FillMarkout]] = defaultdict(list)
        for row in rows:
            by_asset[row.asset].append(row)
        touched: set[int] = set()
        for asset, group in by_asset.items():
            start = min(r.filled_at.timestamp() for r in group) - MAX_SAMPLE_AGE_S
            end = min(max(r.filled_at.timestamp() for r in group) + HORIZONS[-1], at)
            series = mid_series(asset, start, end)
            newest = mid_newest(asset) or float("-inf")  # how far the history reaches
            for row in group:
                if _advance(row, series, newest, at):
                    touched.add(row.user_id)
        _write(rows)
        if touched:
            client_metrics_refresh(touched)
    return len(rows)


def markouts_drain(*, now: float | None = None, limit: int = 2000) -> int:
    """Process due horizons until none is left (tests, rebuild)."""
    total = 0
    while True:
        done = markouts_process_due(limit=limit, now=now)
        total += done
        if done < limit:
            return total


def markouts_backfill(*, since: datetime, recompute: bool = False) -> int:
    """The rebuild: take in every fill since ``since`` that has no markout row; with ``recompute`` also
    clear the markouts of the existing rows so the next passes compute them again from the mid history.
    Returns the number of fills taken in."""
    taken = 0
    last = 0
    while True:
        ids = list(
            Fill.objects.filter(created_at__gte=since, pk__gt=last)
            .order_by("pk")
            .values_list("pk", flat=True)[:5000]
        )
        if not ids:
            break
        last = ids[-1]
        known = set(FillMarkout.objects.filter(fill_id__in=ids).values_list("fill_id", flat=True))
        missing = [i for i in ids if i not in known]
        if missing:
            taken += markouts_intake(missing)
    if recompute:
        cleared: dict[str, Any] = {field: None for field in UPDATE_FIELDS if field.startswith("mo_")}
        FillMarkout.objects.filter(filled_at__gte=since).update(
            **cleared,
            mid_at_fill=None,
            missing=0,
            done_at=None,
            next_due_at=F("filled_at") + timedelta(seconds=HORIZONS[0]),
        )
    return taken


def run_markouts(
    *,
    consumer_name: str,
    stop: Callable[[], bool],
    sample: Callable[[], object] | None = None,
    every_minute: Callable[[], object] | None = None,
) -> int:
    """The markout loop: take in fills, sample mids, process due horizons, and once a minute run
    ``every_minute`` (the classifier) — until ``stop()``."""
    handled = 0
    last_minute = time.monotonic()
    while not stop():
        try:
            if sample is not None:
                sample()
            handled += markouts_consume(consumer_name=consumer_name)
            if sample is not None:
                sample()
            while markouts_process_due() >= 2000 and not stop():
                pass
            if every_minute is not None and time.monotonic() - last_minute >= 60:
                last_minute = time.monotonic()
                every_minute()
        except Exception:  # the loop survives a lost database or Redis and retries
            logger.exception("markout loop failed; retrying")
            db_recover()
            time.sleep(1.0)
    return handled
