"""Prometheus metrics shared across the house. Each app adds its own next to its code."""

from prometheus_client import Counter, Histogram

HTTP_LATENCY = Histogram(
    "xbit_http_request_seconds",
    "HTTP request latency by method and route",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
HTTP_RESPONSES = Counter(
    "xbit_http_responses_total", "HTTP responses by method, route and status", ["method", "route", "status"]
)
OUTBOX_PUBLISHED = Counter("xbit_outbox_published_total", "Outbox events published to the stream")
EVENTS_HANDLED = Counter(
    "xbit_events_handled_total", "Domain events handled by consumer", ["consumer", "outcome"]
)
ALERTS_RAISED = Counter(
    "xbit_alerts_raised_total", "Alerts raised by rule and severity", ["rule", "severity"]
)
