"""Outbox: emit inside a transaction, relay committed rows to the Redis stream, consume idempotently.

Delivery is at-least-once end to end (the relay may crash between publishing and marking a row
published); consumers get exactly-once effects from :func:`handle_once`, which records the event id in
the same transaction as the handler's own writes.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import orjson
import redis
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core import metrics
from core.events.models import OutboxEvent, ProcessedEvent
from core.redis_retry import restart_tolerant
from core.sql.batch import new_instance

logger = logging.getLogger(__name__)

STREAM = "xbit:events"
STREAM_MAXLEN = 1_000_000
NOTIFY_CHANNEL = "xbit_outbox"


@dataclass(frozen=True)
class Event:
    event_id: str
    topic: str
    aggregate: str
    payload: dict[str, Any]
    stream_id: str = ""


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL, decode_responses=True, **restart_tolerant(settings.REDIS_URL)
    )


def outbox_emit(*, topic: str, payload: dict[str, Any], aggregate: str = "") -> OutboxEvent:
    """Record an event in the caller's transaction; the relay is nudged when (and only if) it commits."""
    if not connection.in_atomic_block:
        raise RuntimeError("outbox_emit must run inside the transaction that makes the change")
    sql, params, event = outbox_statement(topic=topic, payload=payload, aggregate=aggregate)
    with connection.cursor() as cursor:
        cursor.execute(sql + " RETURNING id", params)
        event.pk = cursor.fetchone()[0]
    return event


# The relay's nudge as a statement of the transaction itself: PostgreSQL delivers a NOTIFY when (and only
# if) the transaction commits, so a batch that carries it needs no round trip after the commit.
NOTIFY_STATEMENT: tuple[str, tuple[str]] = ("SELECT pg_notify(%s, '')", (NOTIFY_CHANNEL,))


def outbox_statement(
    *, topic: str, payload: dict[str, Any], aggregate: str = "", nudge_after_commit: bool = True
) -> tuple[str, list[Any], OutboxEvent]:
    """The ``INSERT`` of an outbox event, for callers that send it together with their other writes in
    one round trip (the order path); the event's ``pk`` is not set. Registers the relay's nudge for the
    commit, like :func:`outbox_emit` — unless ``nudge_after_commit`` is False: then the caller sends
    :data:`NOTIFY_STATEMENT` in its transaction."""
    if not connection.in_atomic_block:
        raise RuntimeError("outbox events are written inside the transaction that makes the change")
    event = new_instance(
        OutboxEvent,
        event_id=uuid.uuid4(),
        topic=topic,
        aggregate=aggregate,
        payload=payload,
        created_at=timezone.now(),
    )
    if nudge_after_commit:
        _notify_on_commit()
    return (
        "INSERT INTO events_outboxevent (event_id, topic, aggregate, payload, created_at) "
        "VALUES (%s, %s, %s, %s::jsonb, %s)",
        [event.event_id, topic, aggregate, payload_json(payload), event.created_at],
        event,
    )


_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
_django_default = DjangoJSONEncoder().default


def payload_json(payload: dict[str, Any]) -> str:
    """``payload`` as JSON text for a ``jsonb`` column: the same value ``json.dumps`` with Django's
    encoder gives (dates, times, decimals and the rest written by Django's encoder), by orjson — a
    tenth of the time. Only the value matters (PostgreSQL keeps ``jsonb`` parsed, not as text); what
    orjson cannot write (an integer beyond 64 bits, a key that is not a string) goes to ``json``."""
    try:
        return orjson.dumps(payload, default=_django_default, option=_ORJSON_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(payload, cls=DjangoJSONEncoder)


def _notify_on_commit() -> None:
    # one nudge per transaction is enough: the relay drains everything committed
    if not any(func is _notify_relay for _sids, func, _robust in connection.run_on_commit):
        transaction.on_commit(_notify_relay)


def _notify_relay() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, '')", [NOTIFY_CHANNEL])


def outbox_relay_batch(*, client: redis.Redis | None = None, limit: int = 500) -> int:
    """Publish up to ``limit`` committed, unpublished events in id order. Safe to run concurrently
    (rows are claimed with SKIP LOCKED) and to crash at any point (unmarked rows are re-published)."""
    client = client or redis_client()
    with transaction.atomic():
        rows = list(
            OutboxEvent.objects.select_for_update(skip_locked=True)
            .filter(published_at__isnull=True)
            .order_by("id")[:limit]
        )
        if not rows:
            return 0
        pipe = client.pipeline(transaction=False)
        for row in rows:
            pipe.xadd(
                STREAM,
                {
                    "event_id": str(row.event_id),
                    "topic": row.topic,
                    "aggregate": row.aggregate,
                    "payload": json.dumps(row.payload, cls=DjangoJSONEncoder),
                },
                maxlen=STREAM_MAXLEN,
                approximate=True,
            )
        pipe.execute()
        OutboxEvent.objects.filter(id__in=[row.id for row in rows]).update(published_at=timezone.now())
    metrics.OUTBOX_PUBLISHED.inc(len(rows))
    return len(rows)


def handle_once(*, consumer: str, event: Event, handler: Callable[[Event], None]) -> bool:
    """Run ``handler`` for ``event`` at most once per consumer. The idempotency row and the handler's
    writes commit together, so a crash in between re-runs both. Returns False for a duplicate."""
    try:
        with transaction.atomic():
            ProcessedEvent.objects.create(consumer=consumer, event_id=uuid.UUID(event.event_id))
            handler(event)
    except IntegrityError as exc:
        if "processed_event_once" not in str(exc):
            raise
        metrics.EVENTS_HANDLED.labels(consumer, "duplicate").inc()
        return False
    metrics.EVENTS_HANDLED.labels(consumer, "handled").inc()
    return True


def _decode(stream_id: str, fields: dict[str, str]) -> Event:
    return Event(
        event_id=fields["event_id"],
        topic=fields["topic"],
        aggregate=fields.get("aggregate", ""),
        payload=json.loads(fields["payload"]),
        stream_id=stream_id,
    )


def ensure_group(client: redis.Redis, group: str, *, start: str = "0") -> None:
    try:
        client.xgroup_create(STREAM, group, id=start, mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def read_group(
    client: redis.Redis, group: str, consumer_name: str, *, start: str, count: int, block_ms: int
) -> list[Any]:
    """One ``XREADGROUP`` of the stream for ``group``: this consumer's unacknowledged entries
    (``start`` "0") or new ones (">", waiting up to ``block_ms``). A group that vanished — Redis came
    back empty from a restart while the consumer was reading — is created again and the read answers
    nothing, with a warning instead of a failed batch's traceback."""
    try:
        response = client.xreadgroup(
            group, consumer_name, {STREAM: start}, count=count, block=None if start == "0" else block_ms
        )
        return cast(list[Any], response or [])
    except redis.ResponseError as exc:
        if not str(exc).startswith("NOGROUP"):
            raise
    logger.warning("consumer group %s missing (Redis restarted empty?); creating it again", group)
    ensure_group(client, group)
    return []


def consume_batch(
    *,
    group: str,
    consumer_name: str,
    handler: Callable[[Event], None],
    topics: set[str] | None = None,
    client: redis.Redis | None = None,
    block_ms: int = 1000,
    count: int = 200,
) -> int:
    """Read a batch for a consumer group, handle each event once, then acknowledge it.

    Pending entries of this consumer (delivered before a crash, never acknowledged) are retried first."""
    client = client or redis_client()
    ensure_group(client, group)
    handled = 0
    for start in ("0", ">"):
        response = read_group(client, group, consumer_name, start=start, count=count, block_ms=block_ms)
        for _stream, entries in response:
            for stream_id, fields in entries:
                if not fields:
                    client.xack(STREAM, group, stream_id)
                    continue
                event = _decode(stream_id, fields)
                if topics is None or event.topic in topics:
                    handle_once(consumer=group, event=event, handler=handler)
                    handled += 1
                client.xack(STREAM, group, stream_id)
    return handled
