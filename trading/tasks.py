"""Celery tasks of trading: thin, call a service, safe to run twice."""

from __future__ import annotations

import logging

import requests
from celery import shared_task
from hyperliquid.utils.error import ServerError

from core.events.services import redis_client
from core.periodic import register_periodic
from trading.hl_accounts import positions_sync
from trading.markets import markets_sync
from trading.orders.algo_config import algo_settings
from trading.orders.algo_scheduler import algo_tick
from trading.orders.cancel import orders_expire
from trading.orders.deadman import deadman_check
from trading.orders.hyperliquid import hl_orders_resolve
from trading.orders.triggers import tpsl_check_all

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


@shared_task(name="trading.orders_expire", ignore_result=True)  # type: ignore[untyped-decorator,unused-ignore]
def orders_expire_task() -> None:
    """GTC internal limit orders past their expiry (spec 02: 7 days) release their holds."""

    orders_expire()


@shared_task(name="trading.hl_orders_resolve", ignore_result=True)  # type: ignore[untyped-decorator,unused-ignore]
def hl_orders_resolve_task() -> None:
    """HL orders whose answer was lost (timeout, crash): resolved by cloid, never re-sent."""

    hl_orders_resolve()


@shared_task(name="trading.hl_positions_sync", ignore_result=True)  # type: ignore[untyped-decorator,unused-ignore]
def hl_positions_sync_task() -> None:
    """Σ users' HYPERLIQUID positions vs the trading account, plus its health snapshot (every 5 s)."""

    try:
        positions_sync()
    except Exception:  # HL unreachable: the next run tries again; the feed's breakers handle outages
        logger.warning("HL position sync failed", exc_info=True)


@shared_task(name="trading.algo_orders_tick", ignore_result=True)  # type: ignore[untyped-decorator,unused-ignore]
def algo_orders_tick_task() -> None:
    """Due TWAP / split slices: beat fires every half second, a pass runs at most every ``tick_ms`` (a
    Redis key with a millisecond expiry gates it across workers; parents are claimed skip-locked)."""
    if redis_client().set("xbit:trading:algo-tick", "1", nx=True, px=max(500, algo_settings().tick_ms)):
        algo_tick()


register_periodic("trading.algo_orders_tick", "trading.algo_orders_tick", 0.5, queue="default")
register_periodic("trading.orders_expire", "trading.orders_expire", 60, queue="default")
register_periodic("trading.hl_orders_resolve", "trading.hl_orders_resolve", 2, queue="default")
register_periodic("trading.hl_positions_sync", "trading.hl_positions_sync", 5, queue="default")


@shared_task(name="trading.deadman_check", ignore_result=True)  # type: ignore[untyped-decorator,unused-ignore]
def deadman_check_task() -> None:
    """Dead-man's switches whose time has come: their users' open orders cancelled (claimed once)."""

    deadman_check()


@shared_task(name="trading.tpsl_check", ignore_result=True)  # type: ignore[untyped-decorator,unused-ignore]
def tpsl_check_task() -> None:
    """TP/SL triggers against the current marks (the feed checks on every mark; this is the safety
    net, and resumes a trigger whose checker died after claiming it)."""

    tpsl_check_all()


register_periodic("trading.deadman_check", "trading.deadman_check", 1, queue="default")
register_periodic("trading.tpsl_check", "trading.tpsl_check", 2, queue="default")
