"""The feed's Prometheus metrics (``xbit_feed_*``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
