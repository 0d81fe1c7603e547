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
