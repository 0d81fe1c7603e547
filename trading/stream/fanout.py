"""The user-stream fan-out: domain events from ``xbit:events`` → each user's log and live sockets.

One consumer group (``user-stream``) reads the outbox's Redis stream; for each event it works out the
users and frames (``mapping.frames_for``), appends them to each user's log (``userlog.append``: the
sequence is assigned there, once per event and user, even when the stream redelivers) and publishes them
to the user's Channels group, where every open socket of the user picks them up. An event is
acknowledged only after all of that, so a crash re-reads it (pending entries first) and the append's
idempotency keeps the sequences whole; a re-published frame is dropped by sockets that already sent it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from core.events.services import STREAM, Event, ensure_group, redis_client
from trading.stream import userlog
from trading.stream.config import StreamSettings, stream_settings
from trading.stream.mapping import TOPICS, frames_for

logger = logging.getLogger(__name__)

GROUP = "user-stream"


def event_of(stream_id: str, fields: dict[str, str]) -> Event:
    return Event(
        event_id=fields["event_id"],
        topic=fields["topic"],
        aggregate=fields.get("aggregate", ""),
        payload=json.loads(fields["payload"]),
        stream_id=stream_id,
    )


def group_create() -> None:
    """The consumer group, created at the stream's end: a first start does not replay history."""
    ensure_group(redis_client(), GROUP, start="$")


async def publish(user_id: int, frames: list[userlog.Frame], layer: Any) -> None:
    await layer.group_send(
        userlog.group_name(user_id),
        {"type": "stream.frames", "frames": [[f.seq, f.channel, f.text] for f in frames]},
    )


async def handle_event(event: Event, config: StreamSettings, layer: Any) -> int:
    """Append and publish one event's frames for every user it concerns; returns the frames count."""
    per_user = await database_sync_to_async(frames_for)(event)
    sent = 0
    for user_id, items in per_user.items():
        frames = await userlog.append(
            user_id,
            event.event_id,
            items,
            retention_seconds=config.retention_seconds,
            retention_events=config.retention_events,
        )
        if frames:
            await publish(user_id, frames, layer)
            sent += len(frames)
    return sent


async def fanout_batch(consumer: str, *, block_ms: int = 1000, count: int = 200) -> int:
    """One pass: this consumer's unacknowledged entries (after a crash), then new ones. Stops at the
    first event that fails (it stays pending and is retried first next pass: a user's order is kept)."""
    redis = userlog.client()
    layer = get_channel_layer()
    config = await database_sync_to_async(stream_settings)()
    handled = 0
    for start in ("0", ">"):
        response = await redis.xreadgroup(
            GROUP, consumer, {STREAM: start}, count=count, block=None if start == "0" else block_ms
        )
        for _stream, entries in response or []:
            for stream_id, fields in entries:
                if fields and fields.get("topic") in TOPICS:
                    await handle_event(event_of(stream_id, fields), config, layer)
                    handled += 1
                await redis.xack(STREAM, GROUP, stream_id)
    return handled


async def run_fanout(stop: asyncio.Event, *, consumer: str = "fanout-1", block_ms: int = 1000) -> None:
    await database_sync_to_async(group_create)()
    failures = 0
    while not stop.is_set():
        try:
            await fanout_batch(consumer, block_ms=block_ms)
            failures = 0
        except Exception:
            failures += 1
            logger.exception("user stream fan-out failed; retrying")
            await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))
