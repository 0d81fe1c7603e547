"""Transactional outbox: rolled back → never published; committed → published at least once and
handled exactly once."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import transaction

from core.events.models import OutboxEvent, ProcessedEvent
from core.events.services import (
    STREAM,
    Event,
    consume_batch,
    handle_once,
    outbox_emit,
    outbox_relay_batch,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stream() -> Any:
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    client.delete(STREAM)
    yield client
    client.delete(STREAM)


def _stream_event_ids(client: Any) -> list[str]:
    return [fields["event_id"] for _id, fields in client.xrange(STREAM)]


def test_an_event_in_a_rolled_back_transaction_is_never_published(stream: Any) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), transaction.atomic():
        outbox_emit(topic="fill.created", payload={"order": 1})
        raise Boom
    assert OutboxEvent.objects.count() == 0
    assert outbox_relay_batch(client=stream) == 0
    assert _stream_event_ids(stream) == []


def test_a_committed_event_is_published_and_handled_once(stream: Any) -> None:
    with transaction.atomic():
        event = outbox_emit(topic="fill.created", payload={"order": 7}, aggregate="order:7")
    assert outbox_relay_batch(client=stream) == 1
    assert _stream_event_ids(stream) == [str(event.event_id)]
    event.refresh_from_db()
    assert event.published_at is not None

    # at-least-once: the relay crashed after XADD but before marking, so the event goes out twice
    stream.xadd(
        STREAM,
        {
            "event_id": str(event.event_id),
            "topic": "fill.created",
            "aggregate": "",
            "payload": '{"order": 7}',
        },
    )
    seen: list[dict[str, Any]] = []
    handled = consume_batch(
        group="test-consumer",
        consumer_name="c1",
        handler=lambda e: seen.append(e.payload),
        client=stream,
        block_ms=10,
    )
    assert handled == 2
    assert seen == [{"order": 7}]
    assert ProcessedEvent.objects.filter(consumer="test-consumer", event_id=event.event_id).count() == 1


def test_a_failing_handler_leaves_the_event_unprocessed_for_retry() -> None:
    event = Event(event_id=str(uuid.uuid4()), topic="t", aggregate="", payload={})

    def broken(_e: Event) -> None:
        raise RuntimeError("handler crashed")

    with pytest.raises(RuntimeError):
        handle_once(consumer="c", event=event, handler=broken)
    assert not ProcessedEvent.objects.filter(consumer="c").exists()
    assert handle_once(consumer="c", event=event, handler=lambda e: None) is True
    assert handle_once(consumer="c", event=event, handler=lambda e: None) is False


def test_outbox_emit_outside_a_transaction_is_a_programming_error() -> None:
    with pytest.raises(RuntimeError):
        outbox_emit(topic="x", payload={})


def test_relay_publishes_in_commit_order(stream: Any) -> None:
    ids = []
    for i in range(5):
        with transaction.atomic():
            ids.append(str(outbox_emit(topic="t", payload={"i": i}).event_id))
    assert outbox_relay_batch(client=stream, limit=2) == 2
    assert outbox_relay_batch(client=stream) == 3
    assert _stream_event_ids(stream) == ids


def test_a_read_whose_group_vanished_with_a_restarted_redis_creates_it_again(
    stream: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from core.events.services import ensure_group, read_group

    ensure_group(stream, "test-vanishing")
    stream.delete(STREAM)  # what a Redis restarted empty holds: no stream, so no group
    with caplog.at_level(logging.WARNING, logger="core.events.services"):
        assert read_group(stream, "test-vanishing", "c1", start=">", count=10, block_ms=10) == []
    assert "consumer group test-vanishing missing" in caplog.text
    assert [g["name"] for g in stream.xinfo_groups(STREAM)] == ["test-vanishing"]
    # the next read goes through the new group
    stream.xadd(STREAM, {"event_id": "e1", "topic": "t", "aggregate": "", "payload": "{}"})
    ((_name, entries),) = read_group(stream, "test-vanishing", "c1", start=">", count=10, block_ms=10)
    assert [fields["event_id"] for _id, fields in entries] == ["e1"]
