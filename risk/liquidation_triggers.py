"""Liquidation triggers (spec 03): detections stored as rows, and the claims that hand them to workers.

Life of a trigger::

    detected (watcher / sweep) ─ PENDING ─ claim ─ EXECUTING ─┬─ COMPLETED  (position(s) closed, recorded)
                                                              ├─ CANCELLED  (position changed, or no longer
                                                              │              liquidatable at the trigger mark)
                                                              └─ FAILED ─(1 s)─ claim … ─ ESCALATED (after 3
                                                                 retries: P0 alert, HL_MODE, breaker)

* Detections (the watcher, the sweep) become PENDING rows with idempotent ids (:func:`triggers_record`);
  the ``critical`` queue is woken on commit (:func:`liquidation_wake`).
* Claims are conditional UPDATEs on the row (``FOR UPDATE SKIP LOCKED`` to pick the next due one),
  committed before the work starts, with a lease: a worker killed mid-way leaves an EXECUTING row
  whose lease expires, and the sweep (or any drain) re-drives it. Nothing relies on the broker
  redelivering a task.
* INTERNAL triggers are claimed before HYPERLIQUID ones (``priority``).

Executing a claimed trigger is ``risk.liquidation_execute``; what that writes (records, the outcome,
retries, escalation) is ``risk.liquidation_outcome``.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from core.sql.json_rows import insert_rows
from core.switches.store import LIQ_LIVE, LIQ_SHADOW, liquidation_mode
from risk.config import risk_config
from risk.enqueue import LIQUIDATIONS_DRAIN, task_enqueue
from risk.liquidation_background import push_on_commit
from risk.liquidation_core import ISOLATED, Hit
from risk.models import LiquidationTrigger

logger = logging.getLogger(__name__)

WORKER = f"{socket.gethostname()}:{os.getpid()}"
PRIORITY = {"INTERNAL": 0, "MIXED": 1, "HYPERLIQUID": 2}
Status = LiquidationTrigger.Status
SHADOW = "SHADOW"  # liquidation_mode SHADOW: a detection recorded, never executed
SHADOW_PREFIX = "shadow:"


# ------------------------------------------------------------------------------------------ detect
def triggers_record(hits: Iterable[Hit], *, source: str = "watcher", wake: bool = True) -> int:
    """Store detections as PENDING triggers and wake the ``critical`` queue on commit. A trigger id
    already stored is left alone, unless it was CANCELLED (the account recovered, then fell again in
    the same version): that one gets a rerun suffix. Returns how many rows were new.

    One round trip in the usual case (an insert that skips the ids already stored); the wake is the
    first thing after the commit (before the console push).

    ``liquidation_mode`` (spec 10): SHADOW records the same detections as SHADOW rows (never claimed,
    nothing closed); OFF records nothing."""
    mode = liquidation_mode()
    if mode != LIQ_LIVE:
        return _shadow_record(list(hits), source=source) if mode == LIQ_SHADOW else 0
    hits = list(hits)
    if not hits:
        return 0
    now = timezone.now()
    with transaction.atomic():
        created = _insert_new([_trigger_row(hit, source=source, now=now) for hit in hits])
        stored = [hit for hit in hits if hit.trigger_id not in created]
        reruns = _reruns(stored) if stored else []
        if reruns:
            created |= _insert_new([_trigger_row(hit, source=source, now=now) for hit in reruns])
        count = len(created)
        if count:
            if wake:
                transaction.on_commit(lambda: liquidation_wake(count))
            push_on_commit({"event": "detected", "count": count, "asset": hits[0].asset})
    return count


def _insert_new(rows: list[LiquidationTrigger]) -> set[str]:
    """Insert the rows whose trigger id is not stored yet; returns the ids inserted."""
    created: set[str] = set()
    with connection.cursor() as cursor:
        for i in range(0, len(rows), 5000):
            sql, params = insert_rows(LiquidationTrigger, rows[i : i + 5000], with_pk=False)
            cursor.execute(sql + " ON CONFLICT (trigger_id) DO NOTHING RETURNING trigger_id", params)
            created.update(row[0] for row in cursor.fetchall())
    return created


def _reruns(hits: list[Hit]) -> list[Hit]:
    """Of detections whose trigger id is already stored, those to record again: the stored trigger
    and every rerun of it were CANCELLED (the next one gets the next ``#r<n>`` suffix). A rerun still
    open or completed is left alone: a sweep repeating the detection does not stack reruns."""
    out = []
    for hit in hits:
        base = hit.trigger_id
        statuses = dict(
            LiquidationTrigger.objects.filter(
                Q(trigger_id=base) | Q(trigger_id__startswith=f"{base}#r")
            ).values_list("trigger_id", "status")
        )
        if statuses and all(status == Status.CANCELLED for status in statuses.values()):
            out.append(replace(hit, rerun=len(statuses)))
    return out


def _trigger_row(hit: Hit, *, source: str, now: datetime) -> LiquidationTrigger:
    return LiquidationTrigger(
        trigger_id=hit.trigger_id,
        kind=hit.kind,
        user_id=hit.user_id,
        position_id=hit.key if hit.kind == ISOLATED else None,
        position_version=hit.version,
        asset=hit.asset,
        venue=hit.venue,
        priority=PRIORITY.get(hit.venue, 1),
        trigger_price=hit.mark,
        marks={a: str(m) for a, m in hit.marks},
        plan=list(hit.position_ids),
        source=source,
        detected_at=now,
        next_attempt_at=now,
    )


def _shadow_record(hits: list[Hit], *, source: str) -> int:
    """SHADOW mode: what LIVE would have liquidated (same positions, same trigger marks) as rows with
    status SHADOW and id ``shadow:<trigger id>`` (so a later LIVE detection is never shadowed by
    them); no claim ever picks the status, nothing is woken, nothing is closed."""
    now = timezone.now()
    rows = []
    for hit in hits:
        row = _trigger_row(hit, source=source, now=now)
        row.trigger_id = f"{SHADOW_PREFIX}{hit.trigger_id}"
        row.status = SHADOW
        row.completed_at = now
        rows.append(row)
    if not rows:
        return 0
    ids = [r.trigger_id for r in rows]
    with transaction.atomic():
        existing = set(
            LiquidationTrigger.objects.filter(trigger_id__in=ids).values_list("trigger_id", flat=True)
        )
        LiquidationTrigger.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
        created = len(set(ids) - existing)
        if created:
            push_on_commit({"event": "shadow", "count": created, "asset": rows[0].asset})
    return created


def liquidation_wake(count: int = 1) -> None:
    """Ask the ``critical`` workers to drain the queue: one drain task per batch of triggers, at most
    eight (each drains until nothing is due). A broker outage is only logged: the beat sweep drains
    from the database anyway."""
    batches = -(-max(1, count) // max(1, risk_config().liquidation_batch_size))
    try:
        for _ in range(min(batches, 8)):
            task_enqueue(LIQUIDATIONS_DRAIN, queue="critical")
    except Exception:
        logger.warning("could not wake the critical queue; the sweep will drain the triggers", exc_info=True)


# ------------------------------------------------------------------------------------------ claim
_CLAIM_DUE = """
UPDATE risk_liquidationtrigger SET status = 'EXECUTING', attempts = attempts + 1,
       lease_until = clock_timestamp() + make_interval(secs => %s), claimed_by = %s
WHERE id = (
    SELECT id FROM risk_liquidationtrigger
    WHERE (status IN ('PENDING', 'FAILED') AND next_attempt_at <= clock_timestamp())
       OR (status = 'EXECUTING' AND lease_until < clock_timestamp())
    ORDER BY priority, next_attempt_at, id
    FOR UPDATE SKIP LOCKED LIMIT 1
)
RETURNING id, trigger_id, kind, user_id, position_id, venue
"""
_CLAIM_ONE = """
UPDATE risk_liquidationtrigger SET status = 'EXECUTING', attempts = attempts + 1,
       lease_until = clock_timestamp() + make_interval(secs => %s), claimed_by = %s
WHERE trigger_id = %s AND (
    (status IN ('PENDING', 'FAILED') AND next_attempt_at <= clock_timestamp())
    OR (status = 'EXECUTING' AND lease_until < clock_timestamp())
)
RETURNING id, trigger_id, kind, user_id, position_id, venue
"""
# the drain's claim: up to N due INTERNAL triggers (a batch), or, when none is due, the next other one
# (MIXED, HYPERLIQUID: one by one) — INTERNAL first, as by priority, in one statement
_CLAIM_NEXT = """
WITH internal AS (
    SELECT id FROM risk_liquidationtrigger
    WHERE venue = 'INTERNAL' AND (
        (status IN ('PENDING', 'FAILED') AND next_attempt_at <= clock_timestamp())
        OR (status = 'EXECUTING' AND lease_until < clock_timestamp())
    )
    ORDER BY priority, next_attempt_at, id
    FOR UPDATE SKIP LOCKED LIMIT %s
), other AS (
    SELECT id FROM risk_liquidationtrigger
    WHERE venue <> 'INTERNAL' AND NOT EXISTS (SELECT 1 FROM internal) AND (
        (status IN ('PENDING', 'FAILED') AND next_attempt_at <= clock_timestamp())
        OR (status = 'EXECUTING' AND lease_until < clock_timestamp())
    )
    ORDER BY priority, next_attempt_at, id
    FOR UPDATE SKIP LOCKED LIMIT 1
)
UPDATE risk_liquidationtrigger SET status = 'EXECUTING', attempts = attempts + 1,
       lease_until = clock_timestamp() + make_interval(secs => %s), claimed_by = %s
WHERE id IN (SELECT id FROM internal UNION ALL SELECT id FROM other)
RETURNING id, trigger_id, kind, user_id, position_id, venue
"""


@dataclass(frozen=True, slots=True)
class Claim:
    """A trigger this worker claimed (what the claim's UPDATE returned)."""

    pk: int
    trigger_id: str
    kind: str
    user_id: int
    position_id: int | None
    venue: str


def _claim(sql: str, params: list[Any]) -> list[Claim]:
    if liquidation_mode() != LIQ_LIVE:
        return []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return sorted((Claim(*row) for row in rows), key=lambda c: c.pk)


def liquidation_claim(*, trigger_id: str | None = None, worker: str = WORKER) -> str | None:
    """Claim one due trigger (that one, or the next by priority) for ``worker``; None if nothing is due.
    Commits immediately: the claim (attempt count, lease) survives the worker. Outside LIVE
    ``liquidation_mode`` nothing is claimed: SHADOW and OFF close nothing."""
    claims = liquidation_claim_one(trigger_id=trigger_id, worker=worker)
    return claims[0].trigger_id if claims else None


def liquidation_claim_one(*, trigger_id: str | None, worker: str) -> list[Claim]:
    """Claim that trigger if it is due (or, without ``trigger_id``, the next due one by priority):
    zero or one :class:`Claim`, committed like :func:`liquidation_claim`."""
    lease = risk_config().liquidation_lease_seconds
    if trigger_id is None:
        return _claim(_CLAIM_DUE, [lease, worker])
    return _claim(_CLAIM_ONE, [lease, worker, trigger_id])


def liquidation_claim_next(*, worker: str = WORKER, limit: int | None = None) -> list[Claim]:
    """Claim what the drain runs next: up to ``limit`` (default ``liquidation_batch_size``) due
    INTERNAL triggers, by priority, skipping rows other workers hold; or, when none is due, the next
    MIXED / HYPERLIQUID one. Committed immediately, like :func:`liquidation_claim`."""
    cfg = risk_config()
    size = max(1, limit if limit is not None else cfg.liquidation_batch_size)
    return _claim(_CLAIM_NEXT, [size, cfg.liquidation_lease_seconds, worker])
