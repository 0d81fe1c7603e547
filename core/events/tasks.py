"""Beat work of the events room: the retention of delivered events."""

from __future__ import annotations

from celery import shared_task
from django.core.cache import cache

from core.events.retention import events_prune
from core.periodic import register_periodic

PRUNE_SECONDS = 600


@shared_task(name="events.prune", ignore_result=True)
def events_prune_task() -> None:
    if not cache.add("events:prune", 1, timeout=PRUNE_SECONDS - 30):  # one pass at a time
        return
    try:
        events_prune()
    finally:
        cache.delete("events:prune")


register_periodic("events.prune", "events.prune", PRUNE_SECONDS, queue="default")
