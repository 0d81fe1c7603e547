"""The console's beat task: the venue-health latency history (one row every 15 s; safe to run twice)."""

from __future__ import annotations

from celery import shared_task

from core.periodic import register_periodic
from xbit_admin.console.venue import venue_sample


@shared_task(name="console.venue_sample", ignore_result=True)
def venue_sample_task() -> None:
    venue_sample()


register_periodic("console.venue_sample", "console.venue_sample", 15)
