"""Database-backed settings of the trader streams (one row, ``key="default"``)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class StreamConfig(models.Model):
    """Operator-tunable limits of the user and market streams; read through a process cache
    (``trading.stream.config``) invalidated on write."""

    key = models.CharField(max_length=20, unique=True, default="default")
    # a user's events are kept for resume this long and at most this many (whichever is shorter)
    retention_seconds = models.PositiveIntegerField(default=900)
    retention_events = models.PositiveIntegerField(default=10_000)
    heartbeat_seconds = models.PositiveIntegerField(default=15)
    auth_timeout_seconds = models.PositiveIntegerField(default=10)
    max_connections_per_user = models.PositiveSmallIntegerField(default=10)
    # client → server frames per second on one socket: above it RATE_LIMITED, above twice it close 4009
    max_messages_per_second = models.PositiveSmallIntegerField(default=20)
    market_interval_ms = models.PositiveIntegerField(default=250)  # at most one update per asset per interval
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="stream_config_positive",
                condition=Q(
                    retention_seconds__gt=0,
                    retention_events__gt=0,
                    heartbeat_seconds__gt=0,
                    auth_timeout_seconds__gt=0,
                    max_connections_per_user__gt=0,
                    max_messages_per_second__gt=0,
                    market_interval_ms__gt=0,
                ),
            )
        ]

    def __str__(self) -> str:
        return "stream config"
