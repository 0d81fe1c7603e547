"""The user-stream fan-out: domain events from ``xbit:events`` → each user's log and live sockets.

One consumer group (``user-stream``) reads the outbox's Redis stream; for each event it works out the
users and frames (``mapping.plan_for``; positions and balances from one account read per user), appends them to each user's log (``userlog.append``: the
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
from redis.exceptions import ResponseError

from core.events.services import STREAM, Event, ensure_group, redis_client
from trading.stream import userlog
from trading.stream.config import StreamSettings, stream_settings
from trading.stream.mapping import TOPICS, Items, account_items, plan_for, user_of

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


def db(fn: Any) -> Any:
    """``fn`` in a worker thread of its own (reads of different users run side by side)."""
    return database_sync_to_async(fn, thread_sensitive=False)


async def append_publish(user_id: int, key: str, items: Items, config: StreamSettings, layer: Any) -> int:
    frames = await userlog.append(
        user_id,
        key,
        items,
        retention_seconds=config.retention_seconds,
        retention_events=config.retention_events,
    )
    if frames:
        await publish(user_id, frames, layer)
    return len(frames)


async def handle_chain(events: list[Event], config: StreamSettings, layer: Any) -> int:
    """Append and publish the frames of one user's events, in order; returns the frames count.

    Each event's own frames go first (a fill reaches the socket without waiting for an account read),
    each idempotent on the event's id. The positions and balances of the accounts they moved follow
    once for the whole chain — one read per account, keyed by the chain's last such event: states are
    whole, so the newest one stands for those before it (under load, a batch holds several events of a
    user and the reads do not pile up)."""
    sent = 0
    accounts: dict[int, dict[int, str]] = {}
    account_key = ""
    for event in events:
        # only a fill's plan reads the database (its fill rows); the others are the event itself
        plan = await db(plan_for)(event) if event.topic == "trading.fill" else plan_for(event)
        for user_id, items in plan.primary.items():
            sent += await append_publish(user_id, event.event_id, items, config, layer)
        for user_id, touched in plan.accounts.items():
            accounts.setdefault(user_id, {}).update(touched)
            account_key = f"{event.event_id}:account"
    for user_id, touched in accounts.items():
        items = await db(account_items)(user_id, touched)
        sent += await append_publish(user_id, account_key, items, config, layer)
    return sent


async def handle_events(events: list[Event], config: StreamSettings, layer: Any) -> None:
    """Events in stream order per user, different users side by side. An event of several users (a
    funding settlement) is a barrier: what came before it is done first, what follows waits for it."""
    segment: dict[int, list[Event]] = {}

    async def flush() -> None:
        if segment:
            await asyncio.gather(*(handle_chain(items, config, layer) for items in segment.values()))
            segment.clear()

    for event in events:
        user_id = user_of(event) if event.topic != "trading.funding" else None
        if user_id is None:
            await flush()
            await handle_chain([event], config, layer)
        else:
            segment.setdefault(user_id, []).append(event)
    await flush()


async def fanout_batch(consumer: str, *, block_ms: int = 1000, count: int = 200) -> int:
    """One pass: this consumer's unacknowledged entries (after a crash), then new ones; a batch is
    acknowledged once all of it is handled (a failure leaves it pending: retried first next pass)."""
    redis = userlog.client()
    layer = get_channel_layer()
    config = await db(stream_settings)()
    handled = 0
    for start in ("0", ">"):
        try:
            response = await redis.xreadgroup(
                GROUP, consumer, {STREAM: start}, count=count, block=None if start == "0" else block_ms
            )
        except ResponseError as exc:
            if not str(exc).startswith("NOGROUP"):
                raise
            await _group_lost()
            return handled
        for _stream, entries in response or []:
            events = [event_of(i, f) for i, f in entries if f and f.get("topic") in TOPICS]
            await handle_events(events, config, layer)
            if entries:
                await redis.xack(STREAM, GROUP, *[stream_id for stream_id, _ in entries])
            handled += len(events)
    return handled


async def _group_lost() -> None:
    """The stream and its group are gone while the fan-out runs: Redis restarted without its data.
    Everything in the stream now was written after the restart and none of it was read, so the group is
    made again at the stream's start (``$`` would skip what the relay wrote in between)."""
    logger.warning(
        "user stream: consumer group %s missing (Redis restarted empty?); creating it again", GROUP
    )
    await db(ensure_group)(redis_client(), GROUP, start="0")


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
