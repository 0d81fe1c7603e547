"""Celery tasks of risk: thin, ids in, call a service, safe to run twice. Liquidation work is claimed
from database state; a killed worker loses nothing (the sweep re-drives expired leases).

The tasks are the top of the room: they import the services, never the other way round (a service
that queues one goes through ``risk.enqueue`` by the task's name). The names are fixed: beat schedules
and other processes send them."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from core.events.services import redis_client
from core.periodic import register_periodic
from risk.auto_switch import auto_switch_evaluate
from risk.breakers import breakers_tick
from risk.config import risk_config
from risk.detection import liquidation_sweep
from risk.exposure import exposure_snapshot_take
from risk.funding import funding_tick
from risk.hedge_engine import hedge_evaluate, hedge_events_consume, hedge_tick
from risk.liquidation_execute import liquidation_claim_and_run, liquidations_drain
from risk.reconciliation import reconciliation_run
from trading.liquidation.announce import liquidation_emails_send
from trading.liquidation.records import LiquidationClose

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ liquidation
@shared_task(name="risk.liquidation_execute", ignore_result=True)
def liquidation_execute_task(trigger_id: str) -> None:
    liquidation_claim_and_run(trigger_id=trigger_id)


@shared_task(name="risk.liquidation_emails", ignore_result=True)
def liquidation_emails_task(closes: list[dict[str, Any]]) -> None:
    """The users' emails for a batch of liquidations (queued on commit, off the critical queue)."""
    liquidation_emails_send([LiquidationClose.from_event(c) for c in closes])


@shared_task(name="risk.liquidations_drain", ignore_result=True)
def liquidations_drain_task() -> None:
    liquidations_drain(budget_s=20.0)


@shared_task(name="risk.liquidation_sweep", ignore_result=True)
def liquidation_sweep_task() -> None:
    """Beat fires every half second; the sweep runs at most every ``liquidation_sweep_ms`` (a Redis
    key with a millisecond expiry gates it across workers)."""
    interval_ms = max(100, int(risk_config().liquidation_sweep_ms))
    if not redis_client().set("xbit:risk:liquidation-sweep", "1", nx=True, px=interval_ms):
        return
    liquidation_sweep()


# -------------------------------------------------------------------------------- funding, breakers, exposure
@shared_task(name="risk.funding_tick", ignore_result=True)
def funding_tick_task() -> None:
    funding_tick()


@shared_task(name="risk.breakers_tick", ignore_result=True)
def breakers_tick_task() -> None:
    breakers_tick()


@shared_task(name="risk.exposure_snapshot", ignore_result=True)
def exposure_snapshot_task() -> None:
    exposure_snapshot_take()


register_periodic("risk.liquidation_sweep", "risk.liquidation_sweep", 0.5, queue="critical")
# HL-driven: a new HL funding instant is settled within 15 s of HL booking it
register_periodic("risk.funding_tick", "risk.funding_tick", 15, queue="critical")
register_periodic("risk.breakers_tick", "risk.breakers_tick", 5, queue="critical")
register_periodic("risk.exposure_snapshot.minutely", "risk.exposure_snapshot", 60, queue="default")


# ------------------------------------------------------------------------------------------ hedge
@shared_task(name="risk.hedge_evaluate", ignore_result=True)
def hedge_evaluate_task(assets: list[str] | None = None) -> None:
    """The debounced decision for the assets whose exposure changed (``hedge_schedule``)."""
    hedge_evaluate(assets=assets)


@shared_task(name="risk.hedge_tick", ignore_result=True)
def hedge_tick_task() -> None:
    hedge_tick()


@shared_task(name="risk.hedge_events", ignore_result=True)
def hedge_events_task() -> None:
    """Exposure changes from the ledger's events → debounced hedge decisions and auto mode switching."""
    hedge_events_consume()


register_periodic("risk.hedge_tick", "risk.hedge_tick", 5, queue="hedge")
register_periodic("risk.hedge_events", "risk.hedge_events", 1, queue="hedge")


# ------------------------------------------------------------------------------------ routing, reconciliation
@shared_task(name="risk.auto_switch", ignore_result=True)
def auto_switch_task() -> None:
    auto_switch_evaluate()


register_periodic("risk.auto_switch", "risk.auto_switch", 5, queue="default")


@shared_task(name="risk.reconciliation_run", ignore_result=True)
def reconciliation_task() -> None:
    reconciliation_run()


register_periodic("risk.reconciliation.5min", "risk.reconciliation_run", 300, queue="default")
