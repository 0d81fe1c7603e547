"""The HL market-data feed (``manage.py run_feed``): SDK websocket -> Redis quotes + in-process hooks.

Threads:

* the SDK's websocket thread runs :meth:`Feed._on_message`: parse, write the quote to Redis
  (``trading.marketdata``), keep an in-memory mirror, then call the ``on_book`` / ``on_mark`` hooks;
* the supervisor (the thread calling :meth:`Feed.run`) owns the connection: connect, subscribe, watch
  for a dead socket or silence, tear down and rebuild with exponential backoff (1 s … 30 s), fire
  ``on_disconnect`` / ``on_reconnect``, write ``FeedStatus`` (≤ 1/s) and push marks to consoles
  (one batched push on topic ``markets`` at most every 250 ms).

One feed per name is active across processes (a Redis leader lock, ``xbit:md:feed-leader:<name>``);
another ``run_feed`` waits as a standby and takes over when the leader stops or dies.

The SDK never reconnects or resubscribes by itself and HL never replays what was missed: after every
reconnect ``on_reconnect`` hooks run so HL-state consumers re-read by REST. The feed only DETECTS and
EXPOSES (quote ages, latency, disconnects); risk decides what to do about them. The only action it
takes is an ops alert (``marketdata.feed_down``, P1) after 10 s without data, resolved on reconnect.

Latency is measured as round trips on the feed's own socket: HL's ``{"method":"ping"}`` every
``latency_probe_s`` (one in flight), timed on our monotonic clock until ``{"channel":"pong"}`` comes back
behind the market data queued before it. The recent round trips and an unanswered ping go to Redis
(``marketdata.latency_update``) for the HL_LATENCY breaker. HL's message timestamps are never used for
it: receipt minus HL's time is clock skew plus delay, so an HL clock behind ours looked like latency and
one ahead hid it. Pongs do not count as data: silence (no market data) is still silence.

Hook API (functions run in the feed process; an exception is logged and counted, never fatal)::

    from trading.feed import FEED_HOOKS

    @FEED_HOOKS.on_book        # fn(asset: str, quote: Quote) — every l2Book message (websocket thread)
    @FEED_HOOKS.on_mark        # fn(asset: str, quote: Quote) — every activeAssetCtx (mark observation)
    @FEED_HOOKS.on_reconnect   # fn() — after a reconnect, once resubscribed (supervisor thread)
    @FEED_HOOKS.on_disconnect  # fn(seconds_down: float) — when the loss is detected, then once a
                               # second while still down (seconds since the last HL message)

Book and mark hooks run on the websocket thread: keep them fast (µs); hand slow work to a queue.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from trading import marketdata
from trading.marketdata import Quote

logger = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------ metrics
FEED_MESSAGES = Counter("xbit_feed_messages_total", "HL websocket messages handled", ["channel"])
FEED_LATENCY = Histogram(
    "xbit_feed_latency_seconds",
    "HL market-data latency: websocket round trip (ping sent -> pong received) on the feed's socket",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5),
)
FEED_RECONNECTS = Counter("xbit_feed_reconnects_total", "Websocket reconnections after a loss")
FEED_CONNECTED = Gauge("xbit_feed_connected", "1 while the HL websocket is up and subscribed")
FEED_LAST_MESSAGE = Gauge("xbit_feed_last_message_timestamp_seconds", "Receipt time of the last HL message")
FEED_HOOK_ERRORS = Counter("xbit_feed_hook_errors_total", "Feed hooks that raised", ["hook"])
FEED_ERRORS = Counter("xbit_feed_errors_total", "Feed message handling / write errors", ["stage"])

BACKOFF_STEPS = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
_RENEW_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
EMPTY_SPOT_META: dict[str, Any] = {"universe": [], "tokens": []}


# ------------------------------------------------------------------------------------------ hooks
BookHook = Callable[[str, Quote], None]
ReconnectHook = Callable[[], None]
DisconnectHook = Callable[[float], None]


class FeedHooks:
    """Registry of subscribers to the feed. ``on_*`` register (usable as decorators), ``remove``
    unregisters, ``fire_*`` are called by the feed."""

    def __init__(self) -> None:
        self.book: list[BookHook] = []
        self.mark: list[BookHook] = []
        self.reconnect: list[ReconnectHook] = []
        self.disconnect: list[DisconnectHook] = []
        self._log_after: dict[int, float] = {}

    def on_book(self, fn: BookHook) -> BookHook:
        self.book.append(fn)
        return fn

    def on_mark(self, fn: BookHook) -> BookHook:
        self.mark.append(fn)
        return fn

    def on_reconnect(self, fn: ReconnectHook) -> ReconnectHook:
        self.reconnect.append(fn)
        return fn

    def on_disconnect(self, fn: DisconnectHook) -> DisconnectHook:
        self.disconnect.append(fn)
        return fn

    def remove(self, fn: Callable[..., None]) -> None:
        for hooks in (self.book, self.mark, self.reconnect, self.disconnect):
            while fn in hooks:
                hooks.remove(fn)

    def _call(self, kind: str, hooks: list[Any], *args: Any) -> None:
        for fn in tuple(hooks):
            try:
                fn(*args)
            except Exception:
                FEED_HOOK_ERRORS.labels(kind).inc()
                # a broken book hook fails on every message: one traceback per hook per 10 s
                now = time.monotonic()
                key = id(fn)
                if now >= self._log_after.get(key, 0.0):
                    self._log_after[key] = now + 10.0
                    logger.exception("feed %s hook %s failed", kind, getattr(fn, "__qualname__", fn))

    def fire_book(self, asset: str, quote: Quote) -> None:
        if self.book:
            self._call("book", self.book, asset, quote)

    def fire_mark(self, asset: str, quote: Quote) -> None:
        if self.mark:
            self._call("mark", self.mark, asset, quote)

    def fire_reconnect(self) -> None:
        self._call("reconnect", self.reconnect)

    def fire_disconnect(self, seconds_down: float) -> None:
        self._call("disconnect", self.disconnect, seconds_down)


FEED_HOOKS = FeedHooks()


# ------------------------------------------------------------------------------------------ feed
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


@dataclass
class _AssetState:
    values: dict[str, Any] = field(default_factory=dict)
    mark_recorded_at: float = 0.0
    last_mark: Decimal | None = None
    pushed_at: float = 0.0
    dirty_push: bool = False


class Feed:
    def __init__(self, options: FeedOptions | None = None, *, hooks: FeedHooks = FEED_HOOKS) -> None:
        from django.conf import settings

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
        self._state: dict[str, _AssetState] = {}
        self._last_msg_mono = 0.0
        self._last_msg_wall: float | None = None
        self._connected_at_mono = 0.0
        self._latencies: collections.deque[float] = collections.deque(maxlen=600)  # for the status
        self._round_trips: collections.deque[float] = collections.deque(maxlen=self.options.latency_samples)
        self._latency_now: float | None = None  # median of _round_trips
        self._ping_sent_mono: float | None = None  # the ping in flight
        self._next_ping_mono = 0.0
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
        self._token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    # ---------------------------------------------------------------------------- public
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
            from django.db import connections

            connections.close_all()  # this thread's connections (run() may be a thread of its own)

    # ---------------------------------------------------------------------------- leadership
    # One active feed per name (architecture: "one active instance per asset shard, leader lock in
    # Redis"): hooks such as liquidation watchers must not run twice. A standby polls for the lock
    # and takes over when the leader stops (released at once) or dies (after lock_ttl_s).
    def _lock_key(self) -> str:
        return f"{marketdata.KEY_PREFIX}:feed-leader:{self.options.name}"

    def _lead(self) -> bool:
        """Become (or stay) the leader; waits in standby. False only when stopped."""
        if not self.options.leader_lock:
            return not self.stop_event.is_set()
        announced = False
        while not self.stop_event.is_set():
            if self._is_leader:
                return True
            ttl_ms = int(self.options.lock_ttl_s * 1000)
            holder = "?"
            try:
                redis = marketdata.client()
                if redis.set(self._lock_key(), self._token, nx=True, px=ttl_ms):
                    self._is_leader = True
                    self._renew_at = time.monotonic() + self.options.lock_ttl_s / 3
                    logger.info("feed %s: leading as %s", self.options.name, self._token)
                    return True
                holder = str(redis.get(self._lock_key()))
            except Exception:
                self._log_throttled("feed could not reach Redis for its leader lock")
            if not announced:
                announced = True
                logger.info("feed %s: standby, %s leads", self.options.name, holder)
            self.stop_event.wait(self.options.standby_poll_s)
        return False

    def _keep_lead(self) -> bool:
        if not self.options.leader_lock:
            return True
        now = time.monotonic()
        if self._is_leader and now >= self._renew_at:
            self._renew_at = now + self.options.lock_ttl_s / 3
            try:
                kept = marketdata.client().eval(
                    _RENEW_LUA, 1, self._lock_key(), self._token, str(int(self.options.lock_ttl_s * 1000))
                )
            except Exception:  # Redis away: nobody else can take the lock either; keep going
                self._log_throttled("feed could not renew its leader lock")
                return True
            if not kept:
                self._is_leader = False
                self.last_error = "lost the leader lock"
        return self._is_leader

    def _release_lead(self) -> None:
        if not (self.options.leader_lock and self._is_leader):
            return
        self._is_leader = False
        try:
            marketdata.client().eval(_RELEASE_LUA, 1, self._lock_key(), self._token)
        except Exception:
            logger.warning("feed could not release its leader lock (it expires by itself)")

    def _stand_down(self) -> None:
        logger.warning("feed %s: lost the leader lock, going to standby", self.options.name)
        self._teardown()
        self.connected.clear()
        FEED_CONNECTED.set(0)

    def stop(self) -> None:
        self.stop_event.set()

    @property
    def assets(self) -> list[str]:
        return list(self._assets)

    def quote(self, asset: str) -> Quote | None:
        """The feed's in-memory view of an asset (what hooks receive)."""
        st = self._state.get(asset)
        return Quote(asset, **st.values) if st is not None else None

    # ---------------------------------------------------------------------------- connection
    def _refresh_assets(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._assets_at < self.options.assets_refresh_s:
            return
        self._assets_at = now
        if self.options.assets is not None:
            assets = list(self.options.assets)
        else:
            try:
                from trading.selectors import listed_assets

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
                self._state.setdefault(asset, _AssetState())
            self._assets = self._assets + new
            self._asset_set = frozenset(self._assets)
        info = self._info
        if info is not None and self.connected.is_set():
            for asset in new:  # listed while connected: subscribe on the live socket
                self._subscribe_asset(info, self._gen, asset)
        logger.info("feed assets: %s", ", ".join(self._assets))

    def _connect(self) -> bool:
        from hyperliquid.info import Info

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

    # ---------------------------------------------------------------------------- latency
    def _install_pong_probe(self, manager: Any, gen: int) -> None:
        """See pongs: the SDK drops them before any subscription callback, so wrap its socket's
        message callback (looked up per message by websocket-client) and pass everything on."""
        app = manager.ws
        forward = app.on_message

        def on_message(ws: Any, message: Any) -> None:
            if isinstance(message, str) and len(message) < 40 and '"pong"' in message:
                self._on_pong(gen)
            forward(ws, message)

        app.on_message = on_message

    def _probe_latency(self, info: Any) -> None:
        """Send a ping when none is in flight and ``latency_probe_s`` has passed since the last one."""
        if info is None or info.ws_manager is None:
            return
        now = time.monotonic()
        with self._lock:
            if self._ping_sent_mono is not None or now < self._next_ping_mono:
                return
            self._ping_sent_mono = now
            self._next_ping_mono = now + self.options.latency_probe_s
        # reported BEFORE sending: the pong's report (no ping pending) can then never be overwritten
        # by this one, which would leave a phantom unanswered ping growing in Redis
        self._report_latency(pending_since=time.time())
        try:
            info.ws_manager.ws.send('{"method":"ping"}')
        except Exception:
            with self._lock:
                self._ping_sent_mono = None
            self._report_latency(pending_since=None)

    def _on_pong(self, gen: int) -> None:
        """Websocket thread. A pong with no ping of ours in flight answers the SDK's keep-alive ping."""
        received_mono = time.monotonic()
        with self._lock:
            sent = self._ping_sent_mono
            if gen != self._gen or sent is None:
                return
            self._ping_sent_mono = None
            rtt = (received_mono - sent) * 1000
            self._round_trips.append(rtt)
            trips = tuple(self._round_trips)
            self._latency_now = round(statistics.median(trips), 3)
        self._latencies.append(rtt)
        FEED_LATENCY.observe(rtt / 1000)
        self._report_latency(round_trips_ms=trips, measured_at=time.time())

    def _report_latency(
        self,
        *,
        round_trips_ms: tuple[float, ...] | None = None,
        measured_at: float | None = None,
        pending_since: float | None = None,
        clear: bool = False,
    ) -> None:
        try:
            if clear:
                marketdata.latency_clear(self.options.name)
            else:
                marketdata.latency_update(
                    self.options.name,
                    round_trips_ms=round_trips_ms,
                    measured_at=measured_at,
                    pending_since=pending_since,
                )
        except Exception:
            self._errors += 1
            FEED_ERRORS.labels("redis").inc()
            self._log_throttled("feed could not write its latency to Redis")

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
        self._probe_latency(self._info)
        self._write_status()
        self._push_console()
        self._refresh_assets()

    # ---------------------------------------------------------------------------- messages
    def _on_message(self, gen: int, msg: Any) -> None:
        received = time.time()
        if gen != self._gen:
            return
        self._last_msg_mono = time.monotonic()
        self._last_msg_wall = received
        self._messages += 1
        self._first_data.set()
        try:
            channel = msg.get("channel")
            FEED_MESSAGES.labels(channel).inc()
            if channel == "l2Book":
                self._on_book(msg["data"], received)
            elif channel == "activeAssetCtx":
                self._on_ctx(msg["data"], received)
            elif channel == "allMids":
                self._on_mids(msg["data"]["mids"], received)
        except Exception:
            self._errors += 1
            FEED_ERRORS.labels("message").inc()
            self._log_throttled("feed could not handle a %s message", msg.get("channel"))

    def _on_book(self, data: dict[str, Any], received: float) -> None:
        asset = data["coin"]
        st = self._state.get(asset)
        if st is None or asset not in self._asset_set:
            return
        n = self.options.depth_levels
        raw_bids, raw_asks = data["levels"][0][:n], data["levels"][1][:n]
        bids = tuple((Decimal(lv["px"]), Decimal(lv["sz"])) for lv in raw_bids)
        asks = tuple((Decimal(lv["px"]), Decimal(lv["sz"])) for lv in raw_asks)
        hl_time = data.get("time")
        latency_ms = self._latency_now
        values = {
            "bid": bids[0][0] if bids else None,
            "bid_size": bids[0][1] if bids else None,
            "ask": asks[0][0] if asks else None,
            "ask_size": asks[0][1] if asks else None,
            "depth_bids": bids,
            "depth_asks": asks,
            "book_time_ms": int(hl_time) if hl_time else None,
            "book_latency_ms": round(latency_ms, 3) if latency_ms is not None else None,
        }
        written = {
            **values,
            "depth_bids": ",".join(f"{lv['px']}:{lv['sz']}" for lv in raw_bids),
            "depth_asks": ",".join(f"{lv['px']}:{lv['sz']}" for lv in raw_asks),
        }
        self._write({asset: written}, received)
        with self._lock:
            st.values.update(values, book_at=received)
            st.dirty_push = True
            quote = Quote(asset, **st.values)
        self.hooks.fire_book(asset, quote)

    def _on_ctx(self, data: dict[str, Any], received: float) -> None:
        asset = data["coin"]
        st = self._state.get(asset)
        if st is None or asset not in self._asset_set:
            return
        ctx = data["ctx"]
        mark = Decimal(ctx["markPx"]) if ctx.get("markPx") else None
        values: dict[str, Any] = {
            "mark": mark,
            "oracle": Decimal(ctx["oraclePx"]) if ctx.get("oraclePx") else None,
            "funding_rate": Decimal(ctx["funding"]) if ctx.get("funding") is not None else None,
            "premium": Decimal(ctx["premium"]) if ctx.get("premium") is not None else None,
            "open_interest": Decimal(ctx["openInterest"]) if ctx.get("openInterest") is not None else None,
        }
        if ctx.get("midPx"):
            values["mid"] = Decimal(ctx["midPx"])
        record = mark is not None and (
            mark != st.last_mark or received - st.mark_recorded_at >= self.options.mark_history_every_s
        )
        self._write({asset: values}, received, record_mark=record)
        with self._lock:
            if record:
                st.mark_recorded_at = received
            st.last_mark = mark
            st.values.update(values, mark_at=received, ctx_at=received)
            if "mid" in values:
                st.values["mid_at"] = received
            st.dirty_push = True
            quote = Quote(asset, **st.values)
        self.hooks.fire_mark(asset, quote)

    def _on_mids(self, mids: dict[str, str], received: float) -> None:
        updates: dict[str, dict[str, Any]] = {}
        with self._lock:
            for asset in self._assets:
                raw = mids.get(asset)
                if raw is None:
                    continue
                st = self._state[asset]
                mid = Decimal(raw)
                if st.values.get("mid") == mid:
                    continue  # unchanged: keep mid_at as the time it was first seen at this value
                st.values["mid"] = mid
                st.values["mid_at"] = received
                updates[asset] = {"mid": raw}
        self._write(updates, received)

    def _write(self, updates: dict[str, dict[str, Any]], at: float, *, record_mark: bool = True) -> None:
        if not updates:
            return
        try:
            marketdata.quote_update_many(updates, at=at, record_mark=record_mark)
        except Exception:
            self._errors += 1
            FEED_ERRORS.labels("redis").inc()
            self._log_throttled("feed could not write quotes to Redis")

    def _log_throttled(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now >= self._log_budget_at:
            self._log_budget_at = now + 5.0
            logger.exception(message, *args)

    # ---------------------------------------------------------------------------- reporting
    def stale_assets(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        limit = self.options.stale_after_s
        out = []
        for asset in self._assets:
            values = self._state[asset].values
            book_at, mark_at = values.get("book_at"), values.get("mark_at")
            if book_at is None or mark_at is None or now - book_at > limit or now - mark_at > limit:
                out.append(asset)
        return out

    def latency_summary(self) -> dict[str, float] | None:
        try:
            samples = sorted(self._latencies)
        except RuntimeError:  # appended to by the websocket thread mid-copy: report next time
            return None
        if not samples:
            return None

        def pct(p: float) -> float:
            return round(samples[min(len(samples) - 1, int(p * len(samples)))], 1)

        return {"p50": pct(0.5), "p99": pct(0.99), "max": round(samples[-1], 1), "n": len(samples)}

    def _is_leader_or_free(self) -> bool:
        return self._is_leader or not self.options.leader_lock

    def _write_status(self, *, force: bool = False, note: str = "") -> None:
        if not self._is_leader_or_free():
            return  # a standby never overwrites the leader's row
        now = time.monotonic()
        if not force and now - self._status_at < self.options.status_interval_s:
            return
        self._status_at = now
        from trading.models import FeedStatus

        last = self._last_msg_wall
        detail = {
            "url": self.base_url,
            "pid": os.getpid(),
            "assets": len(self._assets),
            "stale_assets": self.stale_assets(),
            "latency_ms": self.latency_summary(),
            "messages": self._messages,
            "errors": self._errors,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "down_since": self._down_since,
            "note": note,
        }
        try:
            FeedStatus.objects.update_or_create(
                name=self.options.name,
                defaults={
                    "connected": self.connected.is_set(),
                    "last_message_at": datetime.fromtimestamp(last, tz=UTC) if last else None,
                    "reconnects": self.reconnects,
                    "detail": detail,
                    "updated_at": datetime.now(tz=UTC),
                },
            )
        except Exception:
            FEED_ERRORS.labels("status").inc()
            self._log_throttled("feed could not write its status")
            self._close_db()
        if last:
            FEED_LAST_MESSAGE.set(last)

    def _push_console(self) -> None:
        if not self.options.push_console:
            return
        now = time.monotonic()
        if now - self._push_at < self.options.push_interval_s:
            return
        self._push_at = now
        quotes: dict[str, dict[str, Any]] = {}
        with self._lock:
            for asset in self._assets:
                st = self._state[asset]
                if not st.dirty_push:
                    continue
                st.dirty_push = False
                v = st.values
                quotes[asset] = {
                    key: v.get(key)
                    for key in (
                        "mark",
                        "oracle",
                        "mid",
                        "bid",
                        "ask",
                        "funding_rate",
                        "open_interest",
                        "mark_at",
                    )
                }
        if not quotes:
            return
        try:
            from core.live import broadcast_now

            broadcast_now("markets", {"quotes": quotes, "at": time.time()})
        except Exception:
            self._log_throttled("feed console push failed")

    def _alert(self, *, resolve: bool, seconds_down: float = 0.0) -> None:
        try:
            from core.alerts.services import alert_raise, alert_resolve_condition

            if resolve:
                alert_resolve_condition(rule="marketdata.feed_down", subject=self.options.name)
            else:
                alert_raise(
                    rule="marketdata.feed_down",
                    severity="P1",
                    subject=self.options.name,
                    message=f"No Hyperliquid market data for {seconds_down:.0f} s ({self.last_error}).",
                )
        except Exception:
            self._log_throttled("feed could not raise/resolve its alert")
            self._close_db()

    @staticmethod
    def _close_db() -> None:
        try:
            from django.db import close_old_connections, connection

            close_old_connections()
            if connection.connection is not None and not connection.is_usable():
                connection.close()
        except Exception:
            logger.debug("closing the database connection failed", exc_info=True)


def run_feed(options: FeedOptions | None = None, *, install_signals: bool = True) -> Feed:
    """Run a feed in the current thread until SIGTERM/SIGINT (the management command)."""
    import signal

    feed = Feed(options)
    if install_signals:

        def _stop(signum: int, _frame: Any) -> None:
            logger.info("feed: signal %s, stopping", signum)
            feed.stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    feed.run()
    return feed
