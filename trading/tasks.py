"""Celery tasks of trading: thin, call a service, safe to run twice."""

from __future__ import annotations

import logging

import requests
from celery import shared_task
from hyperliquid.utils.error import ServerError

from trading.markets import markets_sync
from xbit_admin.celery import register_periodic

logger = logging.getLogger(__name__)


@shared_task(  # type: ignore[untyped-decorator,unused-ignore]
    name="trading.markets_sync",
    ignore_result=True,
    autoretry_for=(requests.RequestException, ServerError),
    retry_backoff=30,
    max_retries=3,
)
def markets_sync_task() -> None:
    """Hourly listing sync from HL ``meta`` (idempotent: an unchanged meta writes nothing)."""
    report = markets_sync()
    if report.changes:
        logger.info("markets sync: %s", report.summary())


register_periodic("trading.markets_sync.hourly", "trading.markets_sync", 3600, queue="default")
