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
import socket
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from risk.config import risk_config
from risk.liquidation_core import ISOLATED, CrossBook, CrossLeg, Hit, cross_plan
from risk.models import LiquidationRecord, LiquidationTrigger
from trading import margin
from trading.account import SIGN as MARGIN_SIDE
from trading.account import margin_table_for_asset, user_balances
from trading.config import trading_settings
from trading.liquidation import (
    LiquidationClose,
    isolated_still_liquidatable,
    liquidation_close_hl,
    liquidation_close_internal,
    position_version,
)
from trading.models import MarginMode, Position, Source
from wallets.models import AccountKind
from xbit_admin.live import broadcast_on_commit
from xbit_admin.locks import user_lock
from xbit_admin.money import ZERO
from xbit_admin.switches.store import LIQ_LIVE, LIQ_SHADOW, liquidation_mode

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

    ``liquidation_mode`` (spec 10): SHADOW records the same detections as SHADOW rows (never claimed,
    nothing closed); OFF records nothing."""
    mode = liquidation_mode()
    if mode != LIQ_LIVE:
        return _shadow_record(list(hits), source=source) if mode == LIQ_SHADOW else 0
    now = timezone.now()
    hits = _fresh(list(hits))
    rows = [_trigger_row(hit, source=source, now=now) for hit in hits]
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
            broadcast_on_commit(
                "liquidations", {"event": "detected", "count": created, "asset": rows[0].asset}
            )
            if wake:
                transaction.on_commit(lambda: liquidation_wake(created))
    return created


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
            broadcast_on_commit("liquidations", {"event": "shadow", "count": created, "asset": rows[0].asset})
    return created


def _fresh(hits: list[Hit]) -> list[Hit]:
    existing = dict(
        LiquidationTrigger.objects.filter(trigger_id__in=[h.trigger_id for h in hits]).values_list(
            "trigger_id", "status"
        )
    )
    out = []
    for hit in hits:
        status = existing.get(hit.trigger_id)
        if status is None:
            out.append(hit)
        elif status == Status.CANCELLED:
            reruns = LiquidationTrigger.objects.filter(trigger_id__startswith=f"{hit.trigger_id}#r").count()
            out.append(replace(hit, rerun=reruns + 1))
    return out


def liquidation_wake(count: int = 1) -> None:
    """Ask the ``critical`` workers to drain the queue (one drain task per few triggers). A broker
    outage is only logged: the beat sweep drains from the database anyway."""
    from risk import tasks

    try:
        for _ in range(max(1, min(count, 8))):
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
RETURNING trigger_id
"""
_CLAIM_ONE = """
UPDATE risk_liquidationtrigger SET status = 'EXECUTING', attempts = attempts + 1,
       lease_until = clock_timestamp() + make_interval(secs => %s), claimed_by = %s
WHERE trigger_id = %s AND (
    (status IN ('PENDING', 'FAILED') AND next_attempt_at <= clock_timestamp())
    OR (status = 'EXECUTING' AND lease_until < clock_timestamp())
)
RETURNING trigger_id
"""


def liquidation_claim(*, trigger_id: str | None = None, worker: str = WORKER) -> str | None:
    """Claim one due trigger (that one, or the next by priority) for ``worker``; None if nothing is due.
    Commits immediately: the claim (attempt count, lease) survives the worker. Outside LIVE
    ``liquidation_mode`` nothing is claimed: SHADOW and OFF close nothing."""
    if liquidation_mode() != LIQ_LIVE:
        return None
    lease = risk_config().liquidation_lease_seconds
    with transaction.atomic(), connection.cursor() as cursor:
        if trigger_id is None:
            cursor.execute(_CLAIM_DUE, [lease, worker])
        else:
            cursor.execute(_CLAIM_ONE, [lease, worker, trigger_id])
        row = cursor.fetchone()
    return row[0] if row else None


def liquidations_drain(*, worker: str = WORKER, budget_s: float = 10.0, limit: int = 100_000) -> int:
    """Claim and execute due triggers until none is due (or the time budget is spent)."""
    deadline = time.monotonic() + budget_s
    done = 0
    while done < limit and time.monotonic() < deadline:
        trigger_id = liquidation_claim(worker=worker)
        if trigger_id is None:
            break
        liquidation_execute(trigger_id=trigger_id, worker=worker)
        done += 1
    return done


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


def _record(trigger: LiquidationTrigger, close: LiquidationClose) -> None:
    LiquidationRecord.objects.create(
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
    trigger.close_price = close.close_price
    trigger.size += close.size
    trigger.margin_zeroed += close.margin_zeroed
    trigger.loss += close.loss
    trigger.platform_share += close.platform_share
    trigger.reserve_share += close.reserve_share
    trigger.bankrupt_amount += close.bankrupt_amount
    trigger.drift_amount += close.drift_amount
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


def _finish(trigger: LiquidationTrigger, status: str, *, note: str = "") -> None:
    trigger.status = status
    trigger.completed_at = timezone.now()
    trigger.lease_until = None
    if note:
        trigger.errors = [*trigger.errors, {"at": trigger.completed_at.isoformat(), "note": note}]
    trigger.save(update_fields=["status", "completed_at", "lease_until", "errors"])
    broadcast_on_commit(
        "liquidations",
        {
            "event": status.lower(),
            "trigger_id": trigger.trigger_id,
            "asset": trigger.asset,
            "user_id": trigger.user_id,
            "venue": trigger.venue,
            "loss": str(trigger.loss),
        },
    )


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
    from risk.breakers import breaker_trip
    from routing.models import RoutingModeLog
    from routing.services import routing_mode_switch
    from xbit_admin.alerts.services import alert_raise

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
    broadcast_on_commit("liquidations", {"event": "escalated", "trigger_id": trigger.trigger_id})


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
