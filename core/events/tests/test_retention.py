"""Delivered events are kept for the configured hours, then deleted in batches; an unpublished outbox
row is never deleted, whatever its age; the retention changes only through its audited service."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from core.audit.models import AuditEntry
from core.errors import ApplicationError
from core.events.models import OutboxEvent, ProcessedEvent
from core.events.retention import events_prune, retention, retention_update

pytestmark = pytest.mark.django_db


def _outbox(age_hours: float, *, published: bool) -> OutboxEvent:
    at = timezone.now() - timedelta(hours=age_hours)
    return OutboxEvent.objects.create(
        topic="t", payload={}, created_at=at, published_at=at if published else None
    )


def test_old_delivered_events_go_and_everything_else_stays() -> None:
    cfg = retention()
    cfg.batch_rows = 2  # several batches
    cfg.save()
    old = [_outbox(200, published=True) for _ in range(5)]
    stuck = _outbox(500, published=False)  # never published: the relay still owes it
    recent = _outbox(10, published=True)
    for age in (200, 200, 200, 1):
        ProcessedEvent.objects.create(
            consumer="c", event_id=uuid.uuid4(), processed_at=timezone.now() - timedelta(hours=age)
        )
    pruned = events_prune()
    assert (pruned.outbox, pruned.processed) == (5, 3)
    left = set(OutboxEvent.objects.values_list("pk", flat=True))
    assert left == {stuck.pk, recent.pk} and not left & {o.pk for o in old}
    assert ProcessedEvent.objects.count() == 1
    assert events_prune() == type(pruned)(outbox=0, processed=0)


def test_the_retention_changes_only_with_a_reason_and_at_least_a_day() -> None:
    with pytest.raises(ApplicationError):
        retention_update(actor=None, reason="", outbox_hours=48)
    with pytest.raises(ApplicationError):
        retention_update(actor=None, reason="disk", outbox_hours=12)
    with transaction.atomic():
        row = retention_update(actor=None, reason="disk is small", outbox_hours=48)
    assert row.outbox_hours == 48 and row.processed_hours == 168
    entry = AuditEntry.objects.filter(action="events.retention_update").latest("id")
    assert entry.reason == "disk is small" and entry.after["outbox_hours"] == 48
    _outbox(60, published=True)
    assert events_prune().outbox == 1
