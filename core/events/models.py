from __future__ import annotations

import uuid

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class OutboxEvent(models.Model):
    """A domain event written in the same transaction as the change it announces (transactional
    outbox). A relay publishes committed rows to the Redis stream; a rolled-back transaction leaves no
    row, so nothing that did not happen is ever announced."""

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    topic = models.CharField(max_length=80)
    aggregate = models.CharField(
        max_length=120, blank=True, help_text="e.g. position:42, for ordering and lookups"
    )
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(default=timezone.now)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["id"], condition=models.Q(published_at__isnull=True), name="outbox_unpublished_idx"
            ),
            models.Index(fields=["topic", "-id"]),
        ]

    def __str__(self) -> str:
        return f"{self.topic} {self.event_id}"


class ProcessedEvent(models.Model):
    """Idempotency record of a consumer: the stream is at-least-once, handlers are exactly-once."""

    consumer = models.CharField(max_length=80)
    event_id = models.UUIDField()
    processed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["consumer", "event_id"], name="processed_event_once")]

    def __str__(self) -> str:
        return f"{self.consumer}:{self.event_id}"


class EventRetention(models.Model):
    """How long delivered events are kept (one row, ``key="default"``): published outbox rows and the
    consumers' idempotency records older than this are deleted by the retention task. Unpublished rows
    are never deleted. Changed through :func:`core.events.retention.retention_update` (audited)."""

    key = models.CharField(max_length=20, unique=True, default="default")
    outbox_hours = models.PositiveIntegerField(default=168)
    processed_hours = models.PositiveIntegerField(default=168)
    batch_rows = models.PositiveIntegerField(default=5000)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # a consumer's record must outlive any redelivery of its event: at least a day, both
            models.CheckConstraint(
                name="event_retention_at_least_a_day",
                condition=models.Q(outbox_hours__gte=24, processed_hours__gte=24, batch_rows__gt=0),
            )
        ]

    def __str__(self) -> str:
        return f"outbox {self.outbox_hours} h, processed {self.processed_hours} h"
