"""Notifier settings, read at call time (never at import) with the house defaults.

| setting | default | meaning |
|---|---|---|
| ``SLACK_WEBHOOK_URL`` | "" | Slack incoming webhook; empty = Slack off |
| ``PAGERDUTY_EVENTS_URL`` / ``PAGERDUTY_ROUTING_KEY`` | "" | Events API v2 endpoint and integration key; either empty = PagerDuty off |
| ``ALERTS_ROUTES`` | P0 → PagerDuty + Slack, P1 → Slack, P2 → Slack | channels per severity |
| ``ALERTS_ESCALATE_MINUTES`` | P0 5, P1 15, P2 never | re-notify an open (unacknowledged) alert this often |
| ``ALERTS_CONSOLE_URL`` | "" | console base URL for links in messages (no link when empty) |
| ``ALERTS_SOURCE`` | "xbit" | PagerDuty ``source`` and the prefix of every ``dedup_key`` (one per environment) |
| ``ALERTS_HTTP_CONNECT_TIMEOUT`` / ``ALERTS_HTTP_READ_TIMEOUT`` | 3 s / 5 s | per request |
| ``ALERTS_HTTP_ATTEMPTS`` / ``ALERTS_HTTP_BACKOFF`` | 3 / 0.5 s | in-call retries of a transient failure (backoff doubles) |
| ``ALERTS_DELIVERY_ROUNDS`` | 6 | task-level rounds (each up to ``ALERTS_HTTP_ATTEMPTS`` requests) before a delivery is failed |
| ``ALERTS_DELIVERY_LEASE_SECONDS`` | 60 | how long a claimed delivery belongs to its sender (the no-double-send window) |
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

SLACK = "slack"
PAGERDUTY = "pagerduty"
CHANNELS = (SLACK, PAGERDUTY)

DEFAULT_ROUTES: dict[str, tuple[str, ...]] = {"P0": (PAGERDUTY, SLACK), "P1": (SLACK,), "P2": (SLACK,)}
DEFAULT_ESCALATE_MINUTES: dict[str, float | None] = {"P0": 5, "P1": 15, "P2": None}


def channel_configured(channel: str) -> bool:
    if channel == SLACK:
        return bool(settings.SLACK_WEBHOOK_URL)
    if channel == PAGERDUTY:
        return bool(settings.PAGERDUTY_EVENTS_URL and settings.PAGERDUTY_ROUTING_KEY)
    return False


def routes(severity: str) -> list[str]:
    """Configured channels an alert of ``severity`` goes to (the console always shows it)."""
    table = {**DEFAULT_ROUTES, **getattr(settings, "ALERTS_ROUTES", {})}
    return [c for c in table.get(severity, ()) if c in CHANNELS and channel_configured(c)]


def escalate_interval(severity: str) -> timedelta | None:
    table = {**DEFAULT_ESCALATE_MINUTES, **getattr(settings, "ALERTS_ESCALATE_MINUTES", {})}
    minutes = table.get(severity)
    return None if minutes is None or minutes <= 0 else timedelta(minutes=float(minutes))


def console_url() -> str:
    return str(getattr(settings, "ALERTS_CONSOLE_URL", "")).rstrip("/")


def source() -> str:
    return str(getattr(settings, "ALERTS_SOURCE", "xbit"))


def http_timeout() -> tuple[float, float]:
    return (
        float(getattr(settings, "ALERTS_HTTP_CONNECT_TIMEOUT", 3.0)),
        float(getattr(settings, "ALERTS_HTTP_READ_TIMEOUT", 5.0)),
    )


def http_attempts() -> int:
    return max(1, int(getattr(settings, "ALERTS_HTTP_ATTEMPTS", 3)))


def http_backoff() -> float:
    return float(getattr(settings, "ALERTS_HTTP_BACKOFF", 0.5))


def delivery_rounds() -> int:
    return max(1, int(getattr(settings, "ALERTS_DELIVERY_ROUNDS", 6)))


def delivery_lease() -> timedelta:
    return timedelta(seconds=float(getattr(settings, "ALERTS_DELIVERY_LEASE_SECONDS", 60)))
