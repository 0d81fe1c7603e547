"""Retention of delivered events: the transactional outbox gains a row per order state change and per
fill, and each consumer an idempotency record per event, so without a bound both tables grow with the
traffic for ever. Published outbox rows and idempotency records older than the configured hours are
deleted in bounded batches (short transactions, no long lock); an unpublished row is never deleted."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from core.audit.services import audit_record
from core.defaults import register
from core.errors import ApplicationError, ErrorCode
from core.events.models import EventRetention, OutboxEvent, ProcessedEvent

MIN_HOURS = 24


@dataclass(frozen=True)
class Pruned:
    outbox: int
    processed: int


def retention() -> EventRetention:
    return EventRetention.objects.get_or_create(key="default")[0]


def _delete_older(table: str, column: str, before: Any, batch: int, extra: str = "") -> int:
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} "  # noqa: S608 - our tables
                f"WHERE {column} < %s {extra} ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)",
                [before, batch],
            )
            deleted = cursor.rowcount
        total += deleted
        if deleted < batch:
            return total


def events_prune(*, now: Any = None) -> Pruned:
    """Delete what the retention allows, in batches; safe to run concurrently and to stop half-way."""
    cfg = retention()
    now = now or timezone.now()
    outbox = _delete_older(
        OutboxEvent._meta.db_table,
        "created_at",
        now - timedelta(hours=cfg.outbox_hours),
        cfg.batch_rows,
        "AND published_at IS NOT NULL",
    )
    processed = _delete_older(
        ProcessedEvent._meta.db_table,
        "processed_at",
        now - timedelta(hours=cfg.processed_hours),
        cfg.batch_rows,
    )
    return Pruned(outbox=outbox, processed=processed)


def retention_update(
    *, actor: Any, reason: str, outbox_hours: int | None = None, processed_hours: int | None = None
) -> EventRetention:
    """Change the retention (audited, with a reason). At least a day each: a consumer's idempotency
    record must outlive any redelivery of its event."""
    if not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.", {"field": "reason"})
    for field, value in (("outbox_hours", outbox_hours), ("processed_hours", processed_hours)):
        if value is not None and not MIN_HOURS <= value <= 24 * 365:
            raise ApplicationError(
                ErrorCode.VALIDATION_ERROR,
                f"{field} must be between {MIN_HOURS} and {24 * 365} hours.",
                {"field": field},
            )
    with transaction.atomic():
        row = EventRetention.objects.select_for_update().get(pk=retention().pk)
        before = {"outbox_hours": row.outbox_hours, "processed_hours": row.processed_hours}
        if outbox_hours is not None:
            row.outbox_hours = outbox_hours
        if processed_hours is not None:
            row.processed_hours = processed_hours
        row.updated_at = timezone.now()
        row.save()
        audit_record(
            action="events.retention_update",
            actor=actor,
            object_type="event_retention",
            object_id=row.pk,
            before=before,
            after={"outbox_hours": row.outbox_hours, "processed_hours": row.processed_hours},
            reason=reason,
        )
    return row


@register
def event_retention_ensure() -> None:
    retention()
