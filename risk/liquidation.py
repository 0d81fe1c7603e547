"""Liquidation orchestration (spec 03): trigger rows in, ledger-domain commands out.

Life of a trigger::

    detected (watcher / sweep) ─ PENDING ─ claim ─ EXECUTING ─┬─ COMPLETED  (position(s) closed, recorded)
                                                              ├─ CANCELLED  (position changed, or no longer
                                                              │              liquidatable at the trigger mark)
                                                              └─ FAILED ─(1 s)─ claim … ─ ESCALATED (after 3
                                                                 retries: P0 alert, HL_MODE, breaker)

* Claims are conditional UPDATEs on the row (``FOR UPDATE SKIP LOCKED`` to pick the next due one),
  committed before the work starts, with a lease: a worker killed mid-way leaves an EXECUTING row
  whose lease expires, and the sweep (or any drain) re-drives it. Nothing relies on the broker
  redelivering a task.
* INTERNAL work commits in ONE transaction with the trigger's new status (user lock first, then
  the trigger row, then the position): it happens exactly once whatever crashes, and the ledger
  postings carry the trigger id as idempotency key as a second line.
* INTERNAL triggers run before HYPERLIQUID ones (``priority``); liquidation ignores market trading
  states and HL connectivity: marks are the last valid ones in the quote cache (or the price the
  price-jump breaker holds).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from core.live import broadcast_now
from core.locks import user_lock
from core.money import ZERO
from core.sql.batch import SqlBatch
from core.sql.json_rows import insert_rows, update_rows
from core.switches.store import LIQ_LIVE, LIQ_SHADOW, liquidation_mode
from risk.config import risk_config
from risk.liquidation_core import ISOLATED, CrossBook, CrossLeg, Hit, cross_plan
from risk.models import LiquidationRecord, LiquidationTrigger
from trading import margin
from trading.account import SIGN as MARGIN_SIDE
from trading.account import margin_table_for_asset, user_balances
from trading.config import trading_settings
from trading.liquidation.announce import liquidation_emails_send
from trading.liquidation.batch import InternalLiquidationBatch, concrete_columns, instances_from_rows
from trading.liquidation.hyperliquid import liquidation_close_hl
from trading.liquidation.internal import liquidation_close_internal
from trading.liquidation.prices import isolated_still_liquidatable
from trading.liquidation.records import LiquidationClose, position_version
from trading.models import MarginMode, Position, Source
from wallets.models import AccountKind

logger = logging.getLogger(__name__)

WORKER = f"{socket.gethostname()}:{os.getpid()}"
PRIORITY = {"INTERNAL": 0, "MIXED": 1, "HYPERLIQUID": 2}
Status = LiquidationTrigger.Status
SHADOW = "SHADOW"  # liquidation_mode SHADOW: a detection recorded, never executed
SHADOW_PREFIX = "shadow:"


class _Background:
    """One daemon thread per process running after-commit side work in order (console pushes, the
    emails' hand-over): milliseconds of channel-layer or broker I/O never delay the next detection or
    liquidation. Best effort, like the work itself: what is still queued when the process exits is
    dropped (call :func:`background_flush` first where that matters)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.jobs: queue.Queue[Callable[[], None]] = queue.Queue()
        threading.Thread(target=self._run, name="liquidation-background", daemon=True).start()

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                job()
            except Exception:
                logger.exception("liquidation background work failed")
            finally:
                self.jobs.task_done()


_background: _Background | None = None


def _in_background(job: Callable[[], None]) -> None:
    global _background
    if _background is None or _background.pid != os.getpid():  # a forked process gets its own
        _background = _Background()
    _background.jobs.put(job)


def _push_on_commit(payload: dict[str, Any]) -> None:
    """Push a liquidation event to the consoles after commit, from the background thread."""
    transaction.on_commit(lambda: _in_background(lambda: broadcast_now("liquidations", payload)))


def background_flush(timeout: float = 10.0) -> None:
    """Wait until the after-commit work handed to the background thread is done (tests, a process
    about to exit)."""
    done = threading.Event()
    _in_background(done.set)
    done.wait(timeout)


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
            _push_on_commit({"event": "detected", "count": count, "asset": hits[0].asset})
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
            _push_on_commit({"event": "shadow", "count": created, "asset": rows[0].asset})
    return created


def liquidation_wake(count: int = 1) -> None:
    """Ask the ``critical`` workers to drain the queue: one drain task per batch of triggers, at most
    eight (each drains until nothing is due). A broker outage is only logged: the beat sweep drains
    from the database anyway."""
    from risk import tasks

    batches = -(-max(1, count) // max(1, risk_config().liquidation_batch_size))
    try:
        for _ in range(min(batches, 8)):
            tasks.liquidations_drain_task.apply_async(queue="critical")
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
    claims = _claim_one(trigger_id=trigger_id, worker=worker)
    return claims[0].trigger_id if claims else None


def _claim_one(*, trigger_id: str | None, worker: str) -> list[Claim]:
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


def liquidation_claim_and_run(*, trigger_id: str, worker: str = WORKER) -> bool:
    """Claim that trigger if it is due and execute it (the retry task). False when it was not due."""
    claims = _claim_one(trigger_id=trigger_id, worker=worker)
    liquidation_run(claims, worker=worker)
    return bool(claims)


def liquidations_drain(*, worker: str = WORKER, budget_s: float = 10.0, limit: int = 100_000) -> int:
    """Claim and execute due triggers until none is due (or the time budget is spent): INTERNAL ones
    in batches of ``liquidation_batch_size``, then the others one by one. Returns how many ran."""
    deadline = time.monotonic() + budget_s
    done = 0
    while done < limit and time.monotonic() < deadline:
        claims = liquidation_claim_next(
            worker=worker, limit=min(risk_config().liquidation_batch_size, limit - done)
        )
        if not claims:
            break
        liquidation_run(claims, worker=worker)
        done += len(claims)
    return done


def liquidation_run(claims: list[Claim], *, worker: str = WORKER) -> None:
    """Execute claimed triggers: INTERNAL ones set-based in one transaction
    (:func:`liquidation_execute_batch`), the rest one by one (:func:`liquidation_execute`)."""
    internal = [c for c in claims if c.venue == Source.INTERNAL]
    if internal:
        liquidation_execute_batch(claims=internal, worker=worker)
    for claim in claims:
        if claim.venue != Source.INTERNAL:
            liquidation_execute(trigger_id=claim.trigger_id, worker=worker)


# ------------------------------------------------------------------------------------------ execute
def liquidation_execute(*, trigger_id: str, worker: str = WORKER) -> str:
    """Execute a trigger this worker has claimed. Returns the trigger's status afterwards.

    Side effects: ledger-domain liquidation (fills, postings, events, email), LiquidationRecord rows,
    the trigger's outcome; on failure a retry in 1 s or escalation. Idempotency key: ``trigger_id``.
    """
    trigger = LiquidationTrigger.objects.filter(trigger_id=trigger_id).first()
    if trigger is None or trigger.status != Status.EXECUTING or trigger.claimed_by != worker:
        return trigger.status if trigger else "MISSING"
    try:
        if trigger.kind == ISOLATED:
            _execute_isolated(trigger, worker)
        else:
            _execute_cross(trigger, worker)
    except Exception as exc:
        logger.warning("liquidation %s attempt %s failed: %s", trigger_id, trigger.attempts, exc)
        _fail(trigger.pk, worker, exc)
    return LiquidationTrigger.objects.values_list("status", flat=True).get(pk=trigger.pk)


def liquidation_execute_batch(*, claims: list[Claim], worker: str = WORKER) -> None:
    """Execute claimed INTERNAL triggers together, set-based: ONE transaction for all of them (users
    locked in ascending id order, positions and accounts read and locked in one round trip, every
    close computed in memory, every write in one more, the platform ledger rows locked last and moved
    once), committed with every trigger's outcome — each liquidation still happens exactly once
    whatever crashes (a killed worker leaves only the claims; the sweep re-drives them after the lease).

    A trigger the batch does not handle (a cross account with resting orders or HYPERLIQUID legs, a
    mark missing, a non-INTERNAL position) is left claimed and runs one by one after the commit; if
    the batch fails as a whole it is rolled back and every trigger runs one by one
    (:func:`liquidation_execute`: retries, escalation), so one bad trigger never holds up the others.
    Idempotency keys: as one by one (``trigger_id`` / ``trigger_id:position`` and ``…:settle``)."""
    if not claims:
        return
    try:
        rest = _execute_internal_batch(claims, worker)
    except Exception as exc:
        if len(claims) > 1:
            logger.warning("liquidation batch of %d failed (%s); executing them one by one", len(claims), exc)
        else:
            logger.info("liquidation %s: batched attempt failed (%s); one by one", claims[0].trigger_id, exc)
        rest = [c.trigger_id for c in claims]
    for trigger_id in rest:
        liquidation_execute(trigger_id=trigger_id, worker=worker)


_TRIGGER_OUTCOME_FIELDS = (
    "status",
    "completed_at",
    "lease_until",
    "errors",
    "close_price",
    "size",
    "margin_zeroed",
    "loss",
    "platform_share",
    "reserve_share",
    "bankrupt_amount",
    "drift_amount",
)


def _execute_internal_batch(claims: list[Claim], worker: str) -> list[str]:
    """One transaction for ``claims``; returns the trigger ids left for the one-by-one path."""
    cross_users = {c.user_id for c in claims if c.kind != ISOLATED}
    reserve_share = trading_settings().client_loss_reserve_share
    rest: list[str] = []
    finished: list[LiquidationTrigger] = []
    with transaction.atomic():
        book = InternalLiquidationBatch(
            user_ids=[c.user_id for c in claims],
            isolated_position_ids=[c.position_id for c in claims if c.kind == ISOLATED and c.position_id],
            cross_user_ids=cross_users,
            reserve_share=reserve_share,
            notify=_emails_later,
        )
        read = SqlBatch()
        book.queue_lock(read)  # the users' locks first, then our command rows, then theirs
        i_triggers = read.add(
            f"SELECT {concrete_columns(LiquidationTrigger)} FROM {LiquidationTrigger._meta.db_table} "  # noqa: S608
            "WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            [[c.pk for c in claims]],
        )
        book.queue_read(read)
        results = read.run()
        book.load(results)
        records: list[LiquidationRecord] = []
        for trigger in instances_from_rows(LiquidationTrigger, results[i_triggers] or []):
            if trigger.status != Status.EXECUTING or trigger.claimed_by != worker:
                continue  # our lease expired and another worker took it over
            if trigger.kind == ISOLATED:
                outcome = _batch_isolated(book, trigger, records)
            else:
                outcome = _batch_cross(book, trigger, records)
            if outcome is None:
                rest.append(trigger.trigger_id)
            else:
                status, note = outcome
                _finish_fields(trigger, status, note=note)
                finished.append(trigger)
        write = SqlBatch()
        if records:
            write.add(*insert_rows(LiquidationRecord, records, with_pk=False))
        if finished:
            write.add(*update_rows(finished, _TRIGGER_OUTCOME_FIELDS))
        book.queue_write(write)
        book.verify(write.run())
        if records:
            _test_pause()
        if finished:
            _broadcast_finished(finished)
    return rest


def _emails_later(closes: list[LiquidationClose]) -> None:
    """After commit: the users' emails go to the ``default`` queue (handed over from the background
    thread, so neither the broker nor the mail server ever slows the critical workers in a flash
    crash); sent right there if the broker cannot take them. Best effort, as any email."""
    payload = [c.as_event() for c in closes]

    def hand_over() -> None:
        from risk import tasks

        try:
            tasks.liquidation_emails_task.apply_async(args=[payload], queue="default")
        except Exception:
            logger.warning(
                "could not queue %d liquidation emails; sending them now", len(closes), exc_info=True
            )
            liquidation_emails_send(closes)
        finally:
            connection.close()  # this thread's own connection, if the sending needed one

    _in_background(hand_over)


def _batch_isolated(
    book: InternalLiquidationBatch, trigger: LiquidationTrigger, records: list[LiquidationRecord]
) -> tuple[str, str] | None:
    assert trigger.position_id is not None
    position = book.position(trigger.position_id)
    if position is None or position_version(position) != trigger.position_version:
        return Status.CANCELLED, "the position changed after detection (superseded)"
    if position.source != Source.INTERNAL:
        return None
    mark = trigger.trigger_price
    if not isolated_still_liquidatable(position, mark, book.margin_table(position.asset)):
        return Status.CANCELLED, "not liquidatable at the trigger mark"
    close = book.close(position, mark, trigger.trigger_id)
    records.append(_record_row(trigger, close))
    return Status.COMPLETED, ""


def _batch_cross(
    book: InternalLiquidationBatch, trigger: LiquidationTrigger, records: list[LiquidationRecord]
) -> tuple[str, str] | None:
    """Spec 03's cross order in memory: close the most losing position, recompute, repeat while the
    account is at or below its maintenance margin — all in this transaction."""
    user_id = trigger.user_id
    positions = book.open_positions(user_id, MarginMode.CROSS)
    marks = {asset: Decimal(value) for asset, value in trigger.marks.items()}
    if (
        book.has_open_orders(user_id)
        or any(p.source != Source.INTERNAL for p in positions)
        or {p.asset for p in positions} - set(marks)
    ):
        return None  # orders to cancel, HYPERLIQUID legs or a new asset: the one-by-one path
    closed_any = trigger.size > 0  # an earlier one-by-one attempt may have closed some already
    for _step in range(100):
        positions = book.open_positions(user_id, MarginMode.CROSS)
        book_now = CrossBook(user_id, 0, book.collateral(user_id), tuple(cross_leg_of(p) for p in positions))
        plan = cross_plan(book_now, marks) if positions else ()
        if not plan:
            if closed_any:
                return Status.COMPLETED, ""
            return Status.CANCELLED, "account above maintenance margin at the trigger marks"
        target = next(p for p in positions if p.pk == plan[0])
        close = book.close(target, marks[target.asset], f"{trigger.trigger_id}:{target.pk}")
        records.append(_record_row(trigger, close))
        closed_any = True
    raise RuntimeError("cross liquidation did not converge in 100 closes")


def _locked_claim(pk: int, worker: str) -> LiquidationTrigger | None:
    trigger = LiquidationTrigger.objects.select_for_update().get(pk=pk)
    if trigger.status != Status.EXECUTING or trigger.claimed_by != worker:
        return None  # our lease expired and another worker took it over
    return trigger


def _execute_isolated(trigger: LiquidationTrigger, worker: str) -> None:
    assert trigger.position_id is not None
    if trigger.venue == Source.HYPERLIQUID:
        _execute_hl(trigger, worker, trigger.position_id, trigger.trigger_price)
        return
    with transaction.atomic():
        user_lock(trigger.user_id)  # first lock of every money transaction
        locked = _locked_claim(trigger.pk, worker)
        if locked is None:
            return
        position = Position.objects.select_for_update().get(pk=trigger.position_id)
        if position.status != Position.Status.OPEN or position_version(position) != trigger.position_version:
            _finish(locked, Status.CANCELLED, note="the position changed after detection (superseded)")
            return
        mark = trigger.trigger_price
        if not isolated_still_liquidatable(position, mark, margin_table_for_asset(position.asset)):
            _finish(locked, Status.CANCELLED, note="not liquidatable at the trigger mark")
            return
        close = liquidation_close_internal(
            position=position,
            mark=mark,
            idempotency_key=trigger.trigger_id,
            reserve_share=trading_settings().client_loss_reserve_share,
        )
        _test_pause()
        _record(locked, close)
        _finish(locked, Status.COMPLETED)


def _execute_hl(trigger: LiquidationTrigger, worker: str, position_id: int, mark: Decimal) -> None:
    """HYPERLIQUID close through ``trading.liquidation`` (venue call outside any lock); the outcome,
    the drift record and (isolated) the trigger's completion commit with the settlement."""
    from risk.drift import drift_record

    position = Position.objects.get(pk=position_id)
    key = trigger.trigger_id if trigger.kind == ISOLATED else f"{trigger.trigger_id}:{position_id}"

    def record(close: LiquidationClose) -> None:  # runs inside the settlement transaction
        locked = _locked_claim(trigger.pk, worker)
        if locked is None:
            raise RuntimeError("lost the claim on the trigger while HL was closing")
        _record(locked, close)
        drift_record(
            ref=f"liquidation:{key}",
            kind="LIQUIDATION",
            asset=close.asset,
            position_id=close.position_id,
            xbit_pnl=close.xbit_pnl,
            hl_actual_pnl=close.hl_pnl if close.hl_pnl is not None else close.xbit_pnl,
            notional=close.size * close.trigger_price,
        )
        if trigger.kind == ISOLATED:
            _finish(locked, Status.COMPLETED)

    liquidation_close_hl(
        position=position,
        trigger_mark=mark,
        idempotency_key=key,
        refund_favourable_drift=risk_config().drift_refund_user_when_favourable,
        on_settled=record,
    )


def cross_leg_of(p: Position) -> CrossLeg:
    """A cross position as the detection core sees it (shared by detection and execution)."""
    return CrossLeg(
        p.pk,
        p.asset,
        MARGIN_SIDE[p.direction],
        p.size,
        p.entry_price,
        p.leverage,
        margin_table_for_asset(p.asset),
        p.source,
    )


def _cross_book(user_id: int, positions: list[Position]) -> CrossBook:
    balances = user_balances(user_id)
    collateral = balances.get(AccountKind.CASH, ZERO) + balances.get(AccountKind.ORDER_HOLD, ZERO)
    legs = tuple(cross_leg_of(p) for p in positions)
    return CrossBook(user_id, 0, collateral, legs)


def _execute_cross(trigger: LiquidationTrigger, worker: str) -> None:
    """Close the most losing cross position, recompute, and repeat while the account is still at or
    below its maintenance margin (spec 03), each close in its own transaction (a crash resumes)."""
    marks = {asset: Decimal(value) for asset, value in trigger.marks.items()}
    for _step in range(100):
        hl_target: Position | None = None
        with transaction.atomic():
            user_lock(trigger.user_id)
            locked = _locked_claim(trigger.pk, worker)
            if locked is None:
                return
            positions = list(
                Position.objects.select_for_update()
                .filter(user_id=trigger.user_id, status=Position.Status.OPEN, margin_mode=MarginMode.CROSS)
                .order_by("id")
            )
            missing = sorted({p.asset for p in positions} - set(marks))
            if missing:
                from risk.marks import effective_marks

                marks.update(effective_marks(missing))
            plan = cross_plan(_cross_book(trigger.user_id, positions), marks) if positions else ()
            if not plan:
                closed_any = locked.records.exists()
                _finish(
                    locked,
                    Status.COMPLETED if closed_any else Status.CANCELLED,
                    note="" if closed_any else "account above maintenance margin at the trigger marks",
                )
                return
            target = next(p for p in positions if p.pk == plan[0])
            if target.source == Source.HYPERLIQUID:
                hl_target = target
            else:
                close = liquidation_close_internal(
                    position=target,
                    mark=marks[target.asset],
                    idempotency_key=f"{trigger.trigger_id}:{target.pk}",
                    reserve_share=trading_settings().client_loss_reserve_share,
                )
                _test_pause()
                _record(locked, close)
        if hl_target is not None:
            _execute_hl(trigger, worker, hl_target.pk, marks[hl_target.asset])
    raise RuntimeError("cross liquidation did not converge in 100 closes")


def _record_row(trigger: LiquidationTrigger, close: LiquidationClose) -> LiquidationRecord:
    """The close's record, and its figures added to the trigger (in memory)."""
    trigger.close_price = close.close_price
    trigger.size += close.size
    trigger.margin_zeroed += close.margin_zeroed
    trigger.loss += close.loss
    trigger.platform_share += close.platform_share
    trigger.reserve_share += close.reserve_share
    trigger.bankrupt_amount += close.bankrupt_amount
    trigger.drift_amount += close.drift_amount
    return LiquidationRecord(
        trigger=trigger,
        position_id=close.position_id,
        user_id=close.user_id,
        asset=close.asset,
        venue=close.venue,
        margin_mode=close.margin_mode,
        direction=close.direction,
        trigger_price=close.trigger_price,
        close_price=close.close_price,
        size=close.size,
        margin_zeroed=close.margin_zeroed,
        loss=close.loss,
        platform_share=close.platform_share,
        reserve_share=close.reserve_share,
        bankrupt_amount=close.bankrupt_amount,
        xbit_pnl=close.xbit_pnl,
        hl_pnl=close.hl_pnl,
        drift_amount=close.drift_amount,
        fee=close.fee,
    )


def _record(trigger: LiquidationTrigger, close: LiquidationClose) -> None:
    _record_row(trigger, close).save(force_insert=True)
    trigger.save(
        update_fields=[
            "close_price",
            "size",
            "margin_zeroed",
            "loss",
            "platform_share",
            "reserve_share",
            "bankrupt_amount",
            "drift_amount",
        ]
    )


def _finish_fields(trigger: LiquidationTrigger, status: str, *, note: str = "") -> None:
    trigger.status = status
    trigger.completed_at = timezone.now()
    trigger.lease_until = None
    if note:
        trigger.errors = [*trigger.errors, {"at": trigger.completed_at.isoformat(), "note": note}]


def _broadcast_finished(triggers: list[LiquidationTrigger]) -> None:
    """One console push per batch (the pages re-render their region on any event)."""
    if len(triggers) == 1:
        _broadcast_one(triggers[0])
        return
    counts: dict[str, int] = {}
    for t in triggers:
        counts[t.status.lower()] = counts.get(t.status.lower(), 0) + 1
    _push_on_commit(
        {
            "event": "batch",
            **counts,
            "assets": sorted({t.asset for t in triggers}),
            "loss": str(sum((t.loss for t in triggers), ZERO)),
        },
    )


def _broadcast_one(trigger: LiquidationTrigger) -> None:
    _push_on_commit(
        {
            "event": trigger.status.lower(),
            "trigger_id": trigger.trigger_id,
            "asset": trigger.asset,
            "user_id": trigger.user_id,
            "venue": trigger.venue,
            "loss": str(trigger.loss),
        },
    )


def _finish(trigger: LiquidationTrigger, status: str, *, note: str = "") -> None:
    _finish_fields(trigger, status, note=note)
    trigger.save(update_fields=["status", "completed_at", "lease_until", "errors"])
    _broadcast_one(trigger)


def _fail(pk: int, worker: str, exc: Exception) -> None:
    cfg = risk_config()
    with transaction.atomic():
        trigger = LiquidationTrigger.objects.select_for_update().get(pk=pk)
        if trigger.claimed_by != worker or trigger.status != Status.EXECUTING:
            return
        now = timezone.now()
        trigger.errors = [
            *trigger.errors,
            {
                "at": now.isoformat(),
                "attempt": trigger.attempts,
                "error": f"{type(exc).__name__}: {exc}"[:500],
            },
        ]
        trigger.lease_until = None
        if trigger.attempts > cfg.liquidation_max_retries:
            trigger.status = Status.ESCALATED
            trigger.completed_at = now
            trigger.save(update_fields=["status", "errors", "lease_until", "completed_at"])
            _escalate(trigger)
            return
        delay = cfg.liquidation_retry_delay_ms / 1000
        trigger.status = Status.FAILED
        trigger.next_attempt_at = now + timedelta(seconds=delay)
        trigger.save(update_fields=["status", "errors", "lease_until", "next_attempt_at"])
        trigger_id = trigger.trigger_id
        transaction.on_commit(lambda: _retry_later(trigger_id, delay))


def _retry_later(trigger_id: str, delay: float) -> None:
    from risk import tasks

    try:
        tasks.liquidation_execute_task.apply_async(args=[trigger_id], countdown=delay, queue="critical")
    except Exception:
        logger.warning("could not schedule the retry of %s; the sweep will", trigger_id, exc_info=True)


def _escalate(trigger: LiquidationTrigger) -> None:
    """Spec 03: a liquidation that failed its retries is handed to people (P0), and the asset stops
    taking new internal risk (HL_MODE + liquidation-failure breaker). Never silently left open."""
    from core.alerts.services import alert_raise
    from risk.breakers import breaker_trip
    from routing.models import RoutingModeLog
    from routing.services import routing_mode_switch

    last = trigger.errors[-1]["error"] if trigger.errors else ""
    alert_raise(
        rule="risk.liquidation_escalated",
        severity="P0",
        subject=trigger.trigger_id,
        message=(
            f"Liquidation {trigger.trigger_id} ({trigger.venue} {trigger.kind.lower()}, {trigger.asset}, user "
            f"{trigger.user_id}) failed {trigger.attempts} times and needs manual handling: {last}"
        ),
        details={"trigger_id": trigger.trigger_id, "errors": trigger.errors},
    )
    breaker_trip(
        kind="LIQUIDATION_FAILURE",
        scope=trigger.asset,
        reason=f"liquidation {trigger.trigger_id} escalated",
        details={"trigger_id": trigger.trigger_id},
    )
    routing_mode_switch(
        asset=trigger.asset,
        mode="HL_MODE",
        acting_user=None,
        reason=f"liquidation {trigger.trigger_id} escalated",
        change_id=f"liqfail:{trigger.trigger_id}"[:80],
        trigger=RoutingModeLog.Trigger.AUTO,
    )
    _push_on_commit({"event": "escalated", "trigger_id": trigger.trigger_id})


def _test_pause() -> None:
    """Test-only hook (the kill -9 fault test): ``XBIT_TEST_LIQUIDATION_PAUSE=<file>:<seconds>`` makes
    the executor announce itself in ``<file>`` and sleep inside the open transaction."""
    spec = os.environ.get("XBIT_TEST_LIQUIDATION_PAUSE")
    if not spec:
        return
    path, _, seconds = spec.rpartition(":")
    with open(path, "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(float(seconds))


# ------------------------------------------------------------------------------------------ reads
def side_of(direction: str) -> margin.Side:
    return MARGIN_SIDE[direction]
