"""The streams' settings from memory (``LiveConfig``, reloaded when the row changes)."""

from __future__ import annotations

from dataclasses import dataclass

from core.live_config import LiveConfig
from trading.stream.models import StreamConfig


@dataclass(frozen=True, slots=True)
class StreamSettings:
    retention_seconds: int
    retention_events: int
    heartbeat_seconds: int
    auth_timeout_seconds: int
    max_connections_per_user: int
    max_messages_per_second: int
    market_interval_s: float


def _load() -> StreamSettings:
    # the row is created with the model's defaults at first read (no seeding step to forget)
    row = StreamConfig.objects.get_or_create(key="default")[0]
    return StreamSettings(
        retention_seconds=row.retention_seconds,
        retention_events=row.retention_events,
        heartbeat_seconds=row.heartbeat_seconds,
        auth_timeout_seconds=row.auth_timeout_seconds,
        max_connections_per_user=row.max_connections_per_user,
        max_messages_per_second=row.max_messages_per_second,
        market_interval_s=row.market_interval_ms / 1000,
    )


STREAM_CACHE: LiveConfig[StreamSettings] = LiveConfig("stream", _load)


def stream_settings() -> StreamSettings:
    return STREAM_CACHE.get()
