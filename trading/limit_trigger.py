"""The internal limit-order trigger (spec 02): resting INTERNAL limit orders fill at their limit price
when HL's book touches them (buy: best ask ≤ limit; sell: best bid ≥ limit), within a second.

Runs in the feed process. The book hook only records the latest touch per asset (µs, on the
websocket thread); a worker thread looks up crossing orders in PostgreSQL (partial index
``order_internal_queue_idx``) and fills each through ``internal_limit_fill`` — which re-checks the
touch under the user's lock, so a fill is never made on a stale price or twice. Orders missed while
the feed was down are caught on the next book message, since the query asks for everything crossing.
"""

from __future__ import annotations

import logging
import threading
from decimal import Decimal

from django.db import close_old_connections

from trading.feed.hooks import FEED_HOOKS
from trading.marketdata import Quote
from trading.orders.internal import internal_limit_fill, internal_limit_orders_crossing

logger = logging.getLogger(__name__)


class LimitOrderTrigger:
    def __init__(self) -> None:
        self._latest: dict[str, tuple[Decimal | None, Decimal | None]] = {}
        self._checked: dict[str, tuple[Decimal | None, Decimal | None]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def on_book(self, asset: str, quote: Quote) -> None:
        with self._lock:
            self._latest[asset] = (quote.bid, quote.ask)
        self._wake.set()
        if self._thread is None or not self._thread.is_alive():
            self.start()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="limit-trigger", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            with self._lock:
                pending = {a: t for a, t in self._latest.items() if self._checked.get(a) != t}
            for asset, (bid, ask) in pending.items():
                try:
                    self.check(asset, bid, ask)
                    self._checked[asset] = (bid, ask)
                except Exception:
                    logger.exception("limit trigger for %s failed; retrying on the next book", asset)
                    close_old_connections()

    @staticmethod
    def check(asset: str, bid: Decimal | None, ask: Decimal | None) -> int:
        filled = 0
        for order_id in internal_limit_orders_crossing(asset=asset, bid=bid, ask=ask):
            order = internal_limit_fill(order_id=order_id)
            filled += order is not None and order.status in ("FILLED", "PARTIALLY_FILLED")
        return filled


TRIGGER = LimitOrderTrigger()


def register() -> None:
    if TRIGGER.on_book not in FEED_HOOKS.book:
        FEED_HOOKS.on_book(TRIGGER.on_book)
