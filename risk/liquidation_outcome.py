"""What executing a liquidation trigger writes (spec 03): the close's record and the figures it adds to
the trigger, the trigger's outcome and its console push, a failed attempt's retry, and the escalation
to people after the last retry."""

from __future__ import annotations

import logging
import os
import time
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from core.alerts.services import alert_raise
from core.money import ZERO
from risk.breakers import breaker_trip
from risk.config import risk_config
from risk.enqueue import LIQUIDATION_EXECUTE, task_enqueue
from risk.liquidation_background import push_on_commit
from risk.models import LiquidationRecord, LiquidationTrigger
from routing.models import RoutingModeLog
from routing.services import routing_mode_switch
from trading.liquidation.records import LiquidationClose

logger = logging.getLogger(__name__)

Status = LiquidationTrigger.Status


def liquidation_record_row(trigger: LiquidationTrigger, close: LiquidationClose) -> LiquidationRecord:
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


def liquidation_record(trigger: LiquidationTrigger, close: LiquidationClose) -> None:
    liquidation_record_row(trigger, close).save(force_insert=True)
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


def trigger_outcome_set(trigger: LiquidationTrigger, status: str, *, note: str = "") -> None:
    trigger.status = status
    trigger.completed_at = timezone.now()
    trigger.lease_until = None
    if note:
        trigger.errors = [*trigger.errors, {"at": trigger.completed_at.isoformat(), "note": note}]


def triggers_finished_push(triggers: list[LiquidationTrigger]) -> None:
    """One console push per batch (the pages re-render their region on any event)."""
    if len(triggers) == 1:
        _broadcast_one(triggers[0])
        return
    counts: dict[str, int] = {}
    for t in triggers:
        counts[t.status.lower()] = counts.get(t.status.lower(), 0) + 1
    push_on_commit(
        {
            "event": "batch",
            **counts,
            "assets": sorted({t.asset for t in triggers}),
            "loss": str(sum((t.loss for t in triggers), ZERO)),
        },
    )


def _broadcast_one(trigger: LiquidationTrigger) -> None:
    push_on_commit(
        {
            "event": trigger.status.lower(),
            "trigger_id": trigger.trigger_id,
            "asset": trigger.asset,
            "user_id": trigger.user_id,
            "venue": trigger.venue,
            "loss": str(trigger.loss),
        },
    )


def trigger_finish(trigger: LiquidationTrigger, status: str, *, note: str = "") -> None:
    trigger_outcome_set(trigger, status, note=note)
    trigger.save(update_fields=["status", "completed_at", "lease_until", "errors"])
    _broadcast_one(trigger)


def trigger_fail(pk: int, worker: str, exc: Exception) -> None:
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
    try:
        task_enqueue(LIQUIDATION_EXECUTE, args=[trigger_id], countdown=delay, queue="critical")
    except Exception:
        logger.warning("could not schedule the retry of %s; the sweep will", trigger_id, exc_info=True)


def _escalate(trigger: LiquidationTrigger) -> None:
    """Spec 03: a liquidation that failed its retries is handed to people (P0), and the asset stops
    taking new internal risk (HL_MODE + liquidation-failure breaker). Never silently left open."""
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
    push_on_commit({"event": "escalated", "trigger_id": trigger.trigger_id})


def pause_for_fault_test() -> None:
    """Test-only hook (the kill -9 fault test): ``XBIT_TEST_LIQUIDATION_PAUSE=<file>:<seconds>`` makes
    the executor announce itself in ``<file>`` and sleep inside the open transaction."""
    spec = os.environ.get("XBIT_TEST_LIQUIDATION_PAUSE")
    if not spec:
        return
    path, _, seconds = spec.rpartition(":")
    with open(path, "w") as fh:
        fh.write(str(os.getpid()))
    time.sleep(float(seconds))
