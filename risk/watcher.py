"""The liquidation watcher in the feed process (spec 03 detection, architecture "feed process").

The ``on_mark`` hook (websocket thread, µs) only records the latest mark per asset and wakes a
worker thread. The thread owns a :class:`risk.liquidation_core.LiquidationIndex`:

* built from PostgreSQL when it starts, refreshed from rows changed since the last refresh (fills,
  margin changes, funding, liquidations — anything that touches a position row) every
  ``REFRESH_S``, and rebuilt completely every ``FULL_RELOAD_S``;
* on each new mark: the price-jump rule (a jump holds the last valid price), then the index finds
  what crossed in O(log n + k) and the hits become ``LiquidationTrigger`` rows (idempotent ids);
  storing them wakes the ``critical`` Celery queue. With ``execute_inline`` the thread also drains
  the triggers itself (benchmarks, a single-process deployment).

Liquidation detection keeps running while HL is disconnected: the index keeps the last valid marks.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from datetime import timedelta
from decimal import Decimal

from django.db import close_old_connections
from django.utils import timezone

from risk import breaker_rules as rules
from risk.breakers import price_jump_event
from risk.config import risk_config
from risk.detection import POSITION_FIELDS, books_of, index_load, isolated_of, open_positions
from risk.liquidation_core import LiquidationIndex
from risk.liquidation_execute import liquidations_drain
from risk.liquidation_triggers import triggers_record
from trading.feed.hooks import FEED_HOOKS
from trading.marketdata import Quote
from trading.models import MarginMode, Position

logger = logging.getLogger(__name__)

REFRESH_S = 0.5
FULL_RELOAD_S = 60.0


class LiquidationWatcher:
    def __init__(self, *, execute_inline: bool = False, price_jump: bool = True) -> None:
        self.index = LiquidationIndex()
        self.execute_inline = execute_inline
        self.price_jump = price_jump
        self._latest: dict[str, Decimal] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loaded = threading.Event()
        self._refreshed_at = timezone.now()
        self._full_at = 0.0
        self._jumps: dict[str, rules.PriceJumpState] = {}
        self.detected = 0
        self.last_latency_ms: float | None = None

    # ---------------------------------------------------------------- feed hooks (websocket thread)
    def on_mark(self, asset: str, quote: Quote) -> None:
        if quote.mark is None:
            return
        with self._lock:
            self._latest[asset] = quote.mark
        self._wake.set()
        if self._thread is None or not self._thread.is_alive():
            self.start()

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="liquidation-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def wait_loaded(self, timeout: float = 30.0) -> bool:
        return self._loaded.wait(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self._loaded.is_set() or time.monotonic() - self._full_at > FULL_RELOAD_S:
                    self.reload()
                self._wake.wait(timeout=REFRESH_S)
                self._wake.clear()
                self.refresh()
                self.process()
            except Exception:
                logger.exception("liquidation watcher step failed; continuing")
                close_old_connections()
                time.sleep(0.2)

    # ---------------------------------------------------------------- state
    def reload(self) -> None:
        started = timezone.now()
        index = LiquidationIndex()
        index.marks.update(self.index.marks)
        index_load(index)
        self.index = index
        self._refreshed_at = started
        self._full_at = time.monotonic()
        self._loaded.set()

    def refresh(self) -> None:
        """Apply position rows changed since the last refresh (closed ones leave the index; a cross
        account is reloaded whole when any of its positions changed)."""
        since = self._refreshed_at - timedelta(seconds=1)  # overlap: a commit may carry an older stamp
        now = timezone.now()
        changed = list(Position.objects.filter(updated_at__gte=since).only(*POSITION_FIELDS))
        self._refreshed_at = now
        if not changed:
            return
        cross_users: set[int] = set()
        for p in changed:
            if p.margin_mode == MarginMode.ISOLATED:
                if p.status == Position.Status.OPEN:
                    self.index.upsert_isolated(isolated_of(p))
                else:
                    self.index.remove_isolated(p.pk)
            else:
                cross_users.add(p.user_id)
        if cross_users:
            rows = open_positions() if len(cross_users) > 5000 else None
            positions = (
                [p for p in rows if p.user_id in cross_users and p.margin_mode == MarginMode.CROSS]
                if rows is not None
                else list(
                    Position.objects.filter(
                        user_id__in=cross_users, status=Position.Status.OPEN, margin_mode=MarginMode.CROSS
                    ).only(*POSITION_FIELDS)
                )
            )
            books = {b.user_id: b for b in books_of(positions)}
            for user_id in cross_users:
                book = books.get(user_id)
                if book is None:
                    self.index.remove_cross(user_id)
                else:
                    self.index.upsert_cross(book)

    def process(self) -> int:
        """Run detection for every asset whose mark changed since the last pass."""
        with self._lock:
            pending, self._latest = self._latest, {}
        if not pending:
            return 0
        started = time.perf_counter()
        hits = []
        for asset, mark in pending.items():
            mark = self._price_jump(asset, mark)
            if mark is None:
                continue
            hits += self.index.on_mark(asset, mark)
        if hits:
            self.detected += triggers_record(hits, wake=not self.execute_inline)
            if self.execute_inline:
                liquidations_drain()
        self.last_latency_ms = (time.perf_counter() - started) * 1000
        return len(hits)

    def _price_jump(self, asset: str, mark: Decimal) -> Decimal | None:
        """The mark detection should use: the new one, or None while the price-jump breaker is tripped
        (recorded in the breaker row): detection on the asset waits until the new level is confirmed."""
        if not self.price_jump:
            return mark
        cfg = risk_config()
        max_move = Decimal(str(cfg.price_jump_overrides.get(asset, cfg.price_jump_move)))
        state = self._jumps.get(asset, rules.PriceJumpState())
        state, event = rules.price_jump_observe(
            state, mark, max_move=max_move, reset_after=cfg.price_jump_reset_updates
        )
        self._jumps[asset] = state
        if event:
            try:
                price_jump_event(asset, event, held_price=state.last_valid, mark=mark)
            except Exception:
                logger.exception("could not record the price-jump breaker for %s", asset)
        if state.tripped:
            return None  # a held price liquidates nobody (``risk.marks``): wait for the confirmed level
        return mark


WATCHER = LiquidationWatcher()


def _enabled() -> bool:
    """The watcher runs in the feed process (``manage.py run_feed``), or where XBIT_RISK_WATCHER=1
    asks for it; other processes that happen to run a feed (tests of the feed) leave it alone."""
    flag = os.environ.get("XBIT_RISK_WATCHER")
    if flag is not None:
        return flag == "1"
    return "run_feed" in sys.argv


def register() -> None:
    """Hook the watcher into the feed (it only starts in a process whose feed delivers marks)."""
    if not _enabled():
        return
    if WATCHER.on_mark not in FEED_HOOKS.mark:
        FEED_HOOKS.on_mark(WATCHER.on_mark)
