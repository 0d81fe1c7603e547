"""The feed's options and the state its parts share: :class:`FeedState`, the base of
:class:`~trading.feed.supervisor.Feed` and of the parts it is made of (leader lock, latency probe,
quotes, status)."""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection

from trading import marketdata
from trading.feed.hooks import FEED_HOOKS, FeedHooks
from trading.marketdata import Quote

logger = logging.getLogger(__name__)

BACKOFF_STEPS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)


@dataclass
class FeedOptions:
    base_url: str | None = None  # default settings.HL_API_URL
    name: str = "hl"  # FeedStatus row
    assets: list[str] | None = None  # default: listed markets from the database (polled for new ones)
    silence_reconnect_s: float = 10.0  # no message at all for this long: rebuild the connection
    stale_after_s: float = 5.0  # an asset with no book/ctx for this long is reported stale
    connect_timeout_s: float = 5.0
    backoff_steps: tuple[float, ...] = BACKOFF_STEPS
    backoff_reset_s: float = 30.0  # a connection that lived this long resets the backoff
    status_interval_s: float = 1.0  # FeedStatus writes: at most this often
    push_interval_s: float = 0.25  # console pushes of marks: at most 4/s
    assets_refresh_s: float = 60.0  # poll the database for new listings
    mark_history_every_s: float = 10.0  # record an unchanged mark in the history this often
    latency_probe_s: float = 1.0  # websocket ping (latency probe) at most this often, one in flight
    latency_samples: int = 5  # round trips exposed to risk (the breaker takes their median)
    depth_levels: int = marketdata.DEPTH_LEVELS
    tick_s: float = 0.1
    alert_after_s: float = 10.0  # raise an ops alert when down this long (spec 05: > 10 s alert)
    push_console: bool = True
    leader_lock: bool = True  # one active feed per name across processes
    lock_ttl_s: float = 10.0
    standby_poll_s: float = 0.5
    refill_check_s: float = 1.0  # look this often whether Redis still holds our quotes (a quiet market
    # sends few messages, and each message write looks too)


@dataclass
class AssetState:
    values: dict[str, Any] = field(default_factory=dict)
    mark_recorded_at: float = 0.0
    last_mark: Decimal | None = None
    pushed_at: float = 0.0
    dirty_push: bool = False
    oracle_recorded: tuple[int, Decimal] | None = None  # (HL's ms, oracle) last added to the history


class FeedState:
    """What every part of the feed reads and writes; the websocket thread and the supervisor share it
    under ``_lock``."""

    def __init__(self, options: FeedOptions | None = None, *, hooks: FeedHooks = FEED_HOOKS) -> None:
        self.options = options or FeedOptions()
        self.base_url = self.options.base_url or settings.HL_API_URL
        self.hooks = hooks
        self.stop_event = threading.Event()
        self.connected = threading.Event()
        self._first_data = threading.Event()
        self._lock = threading.Lock()
        self._gen = 0
        self._info: Any = None
        self._assets: list[str] = []
        self._asset_set: frozenset[str] = frozenset()
        self._state: dict[str, AssetState] = {}
        self._last_msg_mono = 0.0
        self._last_msg_wall: float | None = None
        self._connected_at_mono = 0.0
        self._latencies: collections.deque[float] = collections.deque(maxlen=600)  # for the status
        self._round_trips: collections.deque[float] = collections.deque(maxlen=self.options.latency_samples)
        self._latency_now: float | None = None  # median of _round_trips
        self._ping_sent_mono: float | None = None  # the ping in flight
        self._next_ping_mono = 0.0
        self._hl_time_ms: int | None = None  # the latest time HL stamped on a message (its clock)
        self._messages = 0
        self._errors = 0
        self.reconnects = 0
        self.attempts = 0
        self.last_error = ""
        self._down_since: float | None = None
        self._alerted = False
        self._status_at = 0.0
        self._push_at = 0.0
        self._assets_at = 0.0
        self._next_down_hook = 0.0
        self._log_budget_at = 0.0
        self._is_leader = False
        self._renew_at = 0.0
        self._refill_due = False  # Redis holds none of this feed's quotes: rewrite them all
        self._refill_checked = 0.0
        # held by a message's handling (Redis write, memory, hooks) and by a refill, so a refill never
        # writes values older than those a message has just written
        self._write_lock = threading.Lock()
        self._refilled_before = False  # the first refill is the feed's start, not a Redis loss
        self._token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def stop(self) -> None:
        self.stop_event.set()

    @property
    def assets(self) -> list[str]:
        return list(self._assets)

    def quote(self, asset: str) -> Quote | None:
        """The feed's in-memory view of an asset (what hooks receive)."""
        st = self._state.get(asset)
        return Quote(asset, **st.values) if st is not None else None

    def _log_throttled(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now >= self._log_budget_at:
            self._log_budget_at = now + 5.0
            logger.exception(message, *args)

    def _is_leader_or_free(self) -> bool:
        return self._is_leader or not self.options.leader_lock

    @staticmethod
    def _close_db() -> None:
        try:
            close_old_connections()
            if connection.connection is not None and not connection.is_usable():
                connection.close()
        except Exception:
            logger.debug("closing the database connection failed", exc_info=True)
