"""HL latency as round trips on the feed's own socket: ``{"method":"ping"}`` every ``latency_probe_s``
(one in flight), timed on our monotonic clock until ``{"channel":"pong"}`` comes back; the recent round
trips and an unanswered ping go to Redis for the HL_LATENCY breaker (see :mod:`trading.feed`)."""

from __future__ import annotations

import statistics
import time
from typing import Any

from trading import marketdata
from trading.feed.metrics import FEED_ERRORS, FEED_LATENCY
from trading.feed.state import FeedState


class FeedLatency(FeedState):
    """The latency probe: pings sent, pongs timed, round trips reported."""

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
