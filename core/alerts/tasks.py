"""Celery tasks of the alert notifier: thin, ids in, safe to run twice (a sent delivery is never sent
again; a claimed one belongs to its sender until the lease expires)."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache

from core.alerts.notifications import DELIVER_TASK, alerts_tick, delivery_send
from core.periodic import register_periodic

TICK_SECONDS = 60


@shared_task(name=DELIVER_TASK, ignore_result=True)
def deliver_task(delivery_id: int) -> None:
    """Send one delivery. Channel failures are recorded on the row (never raised): transient ones come
    back pending with backoff and the tick re-drives them."""
    delivery_send(delivery_id=delivery_id)


@shared_task(name="alerts.tick", ignore_result=True)
def alerts_tick_task() -> None:
    """Escalations, reconciliation with alert state, re-drive of due deliveries. One at a time."""
    if not cache.add("alerts:tick", 1, timeout=TICK_SECONDS - 5):
        return
    try:
        alerts_tick()
    finally:
        cache.delete("alerts:tick")


register_periodic("alerts.tick", "alerts.tick", TICK_SECONDS, queue="default")
