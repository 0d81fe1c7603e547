"""The feed's supervisor (:class:`Feed`, ``manage.py run_feed``): connect, subscribe, watch for a dead
socket or silence, tear down and rebuild with exponential backoff, report while down (see
:mod:`trading.feed`)."""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from typing import Any

from django.db import connections
from hyperliquid.info import Info

from trading.feed.leader import FeedLeadership
from trading.feed.metrics import FEED_CONNECTED, FEED_RECONNECTS
from trading.feed.state import AssetState, FeedOptions
from trading.feed.status import FeedReporting
from trading.selectors import listed_assets

logger = logging.getLogger(__name__)

EMPTY_SPOT_META: dict[str, Any] = {"universe": [], "tokens": []}


class Feed(FeedLeadership, FeedReporting):
    """One HL market-data feed: the supervisor loop and the websocket connection it owns."""

    def run(self) -> None:
        """Blocking supervisor loop until :meth:`stop`. Never raises for HL or Redis trouble."""
        logger.info("feed %s starting against %s", self.options.name, self.base_url)
        first = True
        step = 0
        try:
            while self._lead():
                self._refresh_assets(force=True)
                if self._connect():
                    if not first:
                        self.reconnects += 1
                        FEED_RECONNECTS.inc()
                        logger.warning("feed reconnected after %s attempt(s)", self.attempts)
                        self.hooks.fire_reconnect()
                    first = False
                    self._came_up()
                    self._watch()
                    lived = time.monotonic() - self._connected_at_mono
                    if lived >= self.options.backoff_reset_s:
                        step = 0
                    if self.stop_event.is_set():
                        break
                    if not self._is_leader:
                        self._stand_down()
                        continue
                    self._went_down()  # report first: tearing the socket down may take a moment
                    self._teardown()
                else:
                    self._teardown()
                    if self.stop_event.is_set():
                        break
                    if not self._is_leader:
                        self._stand_down()
                        continue
                    if self._down_since is None:
                        self._went_down()
                delay = self.options.backoff_steps[min(step, len(self.options.backoff_steps) - 1)]
                step += 1
                self._wait_down(delay)
        finally:
            self._teardown()
            self.connected.clear()
            FEED_CONNECTED.set(0)
            self._write_status(force=True, note="stopped")
            self._release_lead()
            logger.info("feed %s stopped", self.options.name)
            connections.close_all()  # this thread's connections (run() may be a thread of its own)

    def _stand_down(self) -> None:
        logger.warning("feed %s: lost the leader lock, going to standby", self.options.name)
        self._teardown()
        self.connected.clear()
        FEED_CONNECTED.set(0)

    def _refresh_assets(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._assets_at < self.options.assets_refresh_s:
            return
        self._assets_at = now
        if self.options.assets is not None:
            assets = list(self.options.assets)
        else:
            try:
                assets = listed_assets()
            except Exception:
                logger.exception("feed could not read listed markets; keeping %s", self._assets)
                self._close_db()
                return
        new = [a for a in assets if a not in self._asset_set]
        if not new:
            return
        with self._lock:
            for asset in new:
                self._state.setdefault(asset, AssetState())
            self._assets = self._assets + new
            self._asset_set = frozenset(self._assets)
        info = self._info
        if info is not None and self.connected.is_set():
            for asset in new:  # listed while connected: subscribe on the live socket
                self._subscribe_asset(info, self._gen, asset)
        logger.info("feed assets: %s", ", ".join(self._assets))

    def _connect(self) -> bool:
        self.attempts += 1
        with self._lock:
            self._gen += 1
            gen = self._gen
        try:
            info = Info(
                self.base_url,
                skip_ws=False,
                meta={"universe": []},
                spot_meta=EMPTY_SPOT_META,
                timeout=5,
            )
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            return False
        self._info = info
        manager = info.ws_manager
        deadline = time.monotonic() + self.options.connect_timeout_s
        while not manager.ws_ready:
            if self.stop_event.is_set() or not self._is_leader_or_free():
                return False
            if not manager.is_alive() or time.monotonic() > deadline:
                self.last_error = "websocket did not open" + (" (timeout)" if manager.is_alive() else "")
                return False
            self._down_tick()
            time.sleep(0.01)
        deadline = time.monotonic() + self.options.connect_timeout_s
        self._first_data.clear()
        self._install_pong_probe(manager, gen)
        self._probe_latency(info)  # first, so that the snapshots already carry a latency figure
        try:
            info.subscribe({"type": "allMids"}, lambda msg: self._on_message(gen, msg))
            for asset in self._assets:
                self._subscribe_asset(info, gen, asset)
        except Exception as exc:
            self.last_error = f"subscribe failed: {type(exc).__name__}: {exc}"[:300]
            return False
        # Up means data flows: HL answers each subscription with a snapshot. A socket that opens but
        # stays silent (HL degraded) is not "connected" and goes round the backoff again.
        while not self._first_data.wait(0.05):
            self._down_tick()
            if self.stop_event.is_set() or not self._is_leader_or_free():
                return False
            if not manager.is_alive():
                self.last_error = "websocket closed while subscribing"
                return False
            if time.monotonic() > deadline:
                self.last_error = "no data after subscribing"
                return False
        self._last_msg_mono = time.monotonic()
        self._connected_at_mono = time.monotonic()
        return True

    def _subscribe_asset(self, info: Any, gen: int, asset: str) -> None:
        callback = lambda msg: self._on_message(gen, msg)  # noqa: E731
        info.name_to_coin.setdefault(asset, asset)  # the SDK remaps coin names through meta; ours is empty
        info.subscribe({"type": "l2Book", "coin": asset}, callback)
        info.subscribe({"type": "activeAssetCtx", "coin": asset}, callback)

    def _teardown(self) -> None:
        info, self._info = self._info, None
        with self._lock:
            self._gen += 1  # late messages of the old socket are ignored from here on
            self._ping_sent_mono = None
            self._next_ping_mono = 0.0
            self._round_trips.clear()
            self._latency_now = None
        if info is None:
            return
        if self._is_leader_or_free():  # a new socket is measured afresh (a standby leaves the leader's)
            self._report_latency(clear=True)
        manager = info.ws_manager
        if manager is None:
            return
        # WebsocketManager.stop(), made prompt: send the close frame without waiting for the peer's
        # (the peer we leave is usually the one not answering), then shut the socket down so the
        # SDK thread's select() wakes now instead of after its 10 s timeout.
        manager.stop_event.set()
        sock = manager.ws.sock
        if sock is not None and sock.sock is not None:
            try:
                sock.send_close()
                sock.sock.shutdown(socket.SHUT_RDWR)
            except Exception:
                logger.debug("websocket shutdown failed", exc_info=True)
        try:
            manager.ws.close(timeout=0.2)
        except Exception:
            logger.debug("websocket close failed", exc_info=True)
        for thread in (manager.ping_sender, manager):
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=2)

    def _came_up(self) -> None:
        self.connected.set()
        FEED_CONNECTED.set(1)
        if self._down_since is not None:
            logger.warning("feed up again after %.1f s down", time.time() - self._down_since)
        self._down_since = None
        self.last_error = ""
        if self._alerted:
            self._alerted = False
            self._alert(resolve=True)
        self._write_status(force=True)

    def _went_down(self) -> None:
        self.connected.clear()
        FEED_CONNECTED.set(0)
        now = time.time()
        self._down_since = self._last_msg_wall or now
        seconds_down = now - self._down_since
        logger.warning(
            "feed down (%s); %.1f s since the last HL message", self.last_error or "lost", seconds_down
        )
        self.hooks.fire_disconnect(seconds_down)
        self._next_down_hook = time.monotonic() + 1.0
        self._write_status(force=True)

    def _watch(self) -> None:
        """Until the socket dies, goes silent, or we are stopped."""
        opts = self.options
        info = self._info
        while not self.stop_event.wait(opts.tick_s):
            manager = info.ws_manager
            if manager is None or not manager.is_alive():
                self.last_error = "websocket closed"
                return
            silence = time.monotonic() - self._last_msg_mono
            if silence > opts.silence_reconnect_s:
                self.last_error = f"no message for {silence:.1f} s"
                return
            if not self._keep_lead():
                return
            self._periodic()

    def _wait_down(self, delay: float) -> None:
        """Back off before the next attempt, still reporting (status, hooks, alert) while down."""
        logger.info("feed: next connection attempt in %.0f s", delay)
        deadline = time.monotonic() + delay
        while not self.stop_event.is_set() and self._is_leader_or_free():
            now = time.monotonic()
            if now >= deadline:
                return
            self._down_tick()
            self.stop_event.wait(min(self.options.tick_s, max(0.0, deadline - now)))

    def _down_tick(self) -> None:
        """While down (also while reconnecting): once a second, tell the hooks how long it has been
        and raise the ops alert past ``alert_after_s``; keep the status row current."""
        if not self._keep_lead():
            return
        now = time.monotonic()
        if self._down_since is not None and now >= self._next_down_hook:
            self._next_down_hook = now + 1.0
            seconds_down = time.time() - self._down_since
            self.hooks.fire_disconnect(seconds_down)
            if seconds_down >= self.options.alert_after_s and not self._alerted:
                self._alerted = True
                self._alert(resolve=False, seconds_down=seconds_down)
        self._write_status()

    def _periodic(self) -> None:
        self._check_filled()
        self._probe_latency(self._info)
        self._write_status()
        self._push_console()
        self._refresh_assets()


def run_feed(options: FeedOptions | None = None, *, install_signals: bool = True) -> Feed:
    """Run a feed in the current thread until SIGTERM/SIGINT (the management command)."""
    feed = Feed(options)
    if install_signals:

        def _stop(signum: int, _frame: Any) -> None:
            logger.info("feed: signal %s, stopping", signum)
            feed.stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    feed.run()
    return feed
