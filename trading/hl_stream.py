"""Fills of resting HL orders (``manage.py run_hl_user_stream``).

Subscribes through the SDK's websocket to ``userFills`` and ``orderUpdates`` of the trading account's
master address and applies fills of our resting orders (``trading.orders.hl_fills.ingest_fills``, idempotent per
HL trade id). HL does not replay missed user events and the SDK never reconnects, so: on every
(re)connect — and every ``backfill_every_s`` as a safety net — the account's fills since the last
seen time are re-read by REST and applied; a silent or dead socket is rebuilt with backoff.

Funding: HL's ``userFundings`` events for the account mean HL has just settled a funding
instant; each one asks the ``critical`` workers for a funding tick at once (``risk.funding_tick``, by
name: trading never imports risk), so our mirror follows HL's event rather than waiting for the beat.

Every streamed batch is ingested twice: at once, and again ``RECHECK_S`` later. HL publishes the
trades of an order as it matches it, usually before the placing process has committed HL's answer
(the order's oid is not recorded yet), so the first pass cannot match them; the second settles them
(both passes are idempotent: trade ids for resting orders, once per order for the trade details of
orders booked from the answer — ``trading.orders.hl_fills.fill_details_reconcile``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

from celery import current_app
from django.db import close_old_connections, connection
from hyperliquid.info import Info

from core.loops import db_recover
from trading.orders.hl_fills import backfill, ingest_fills
from trading.venues.hl import HLFill, gateway, meta_from_markets

logger = logging.getLogger(__name__)
BACKOFF = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
RECHECK_S = 0.5


class UserStream:
    def __init__(
        self, *, base_url: str | None = None, backfill_every_s: float = 15.0, silence_s: float = 70.0
    ) -> None:
        self.base_url = base_url
        self.backfill_every_s = backfill_every_s
        self.silence_s = silence_s
        self.stop_event = threading.Event()
        self.last_message = time.monotonic()
        self.since_ms = int(time.time() * 1000) - 10 * 60 * 1000
        self.info: Info | None = None
        self.recheck: deque[tuple[float, list[HLFill]]] = deque()  # (due, fills) for the second pass

    def _on_fills(self, message: Any) -> None:
        self.last_message = time.monotonic()
        data = message.get("data", {}) if isinstance(message, dict) else {}
        rows = data.get("fills", [])
        if data.get("isSnapshot") or not rows:
            return
        try:
            fills = [HLFill.parse(r) for r in rows]
            self.recheck.append((time.monotonic() + RECHECK_S, fills))
            ingest_fills(fills)
            self.since_ms = max(self.since_ms, max(f.time_ms for f in fills) - 60_000)
        except Exception:
            logger.exception("applying streamed HL fills failed; the backfill will retry")
        finally:
            close_old_connections()

    def recheck_due(self) -> None:
        """The second pass over streamed batches whose ``RECHECK_S`` has passed."""
        now = time.monotonic()
        if not self.recheck or self.recheck[0][0] > now:
            return
        while self.recheck and self.recheck[0][0] <= now:
            _due, fills = self.recheck.popleft()
            try:
                ingest_fills(fills)
            except Exception:
                logger.exception("re-applying streamed HL fills failed; the backfill will retry")
        close_old_connections()

    def _on_order_updates(self, message: Any) -> None:
        self.last_message = time.monotonic()

    def _on_fundings(self, message: Any) -> None:
        """HL settled a funding instant on the account: settle ours now (the beat would within 15 s)."""
        self.last_message = time.monotonic()
        data = message.get("data", {}) if isinstance(message, dict) else {}
        if data.get("isSnapshot") or not data.get("fundings"):
            return
        try:
            current_app.send_task("risk.funding_tick", queue="critical")
        except Exception:  # the beat's tick settles it anyway
            logger.warning("could not ask for a funding tick after HL's funding event", exc_info=True)

    def connect(self) -> None:
        gw = gateway("trading")
        if gw is None:
            raise RuntimeError("the HL trading account is not configured")
        url = self.base_url or gw.base_url
        self.info = Info(
            url, skip_ws=False, meta=meta_from_markets(), spot_meta={"universe": [], "tokens": []}, timeout=10
        )  # type: ignore[arg-type]
        master = gw.credentials.master
        self.info.subscribe({"type": "userFills", "user": master}, self._on_fills)
        self.info.subscribe({"type": "orderUpdates", "user": master}, self._on_order_updates)
        self.info.subscribe({"type": "userFundings", "user": master}, self._on_fundings)
        self.last_message = time.monotonic()

    def disconnect(self) -> None:
        if self.info is not None:
            try:
                self.info.disconnect_websocket()
            except Exception:  # already dead
                logger.debug("websocket already closed", exc_info=True)
            self.info = None

    def _alive(self) -> bool:
        manager = getattr(self.info, "ws_manager", None)
        thread_ok = manager is not None and manager.is_alive()
        return thread_ok and time.monotonic() - self.last_message < self.silence_s

    def run(self) -> None:
        attempt = 0
        while not self.stop_event.is_set():
            try:
                self.connect()
                backfill(since_ms=self.since_ms)  # what happened while we were not listening
                attempt = 0
                next_backfill = time.monotonic() + self.backfill_every_s
                while not self.stop_event.wait(RECHECK_S / 2):
                    self.recheck_due()
                    if not self._alive():
                        logger.warning("HL user stream silent or closed; reconnecting")
                        break
                    if time.monotonic() >= next_backfill:
                        backfill(since_ms=self.since_ms)
                        close_old_connections()
                        next_backfill = time.monotonic() + self.backfill_every_s
            except Exception:
                logger.exception("HL user stream failed")
                db_recover()  # a PostgreSQL restart: the next backfill needs a new connection
            finally:
                self.disconnect()
            if self.stop_event.is_set():
                break
            self.stop_event.wait(BACKOFF[min(attempt, len(BACKOFF) - 1)])
            attempt += 1
        connection.close()  # this thread's own database connection

    def stop(self) -> None:
        self.stop_event.set()
