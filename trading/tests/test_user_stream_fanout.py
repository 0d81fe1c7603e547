"""The fan-out's crash safety (real Redis and PostgreSQL): an event redelivered — pending after a crash
before its acknowledgement, or published twice by the relay — is appended once per user, so sequences
never repeat or skip; and the market stream (real server): snapshot, throttled updates, unknown asset."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
import redis
from django.conf import settings

from core.events.services import STREAM
from trading.stream import userlog
from trading.stream.fanout import GROUP, fanout_batch, group_create
from trading.stream.testing import StreamServer
from trading.tests.user_stream_client import open_socket, recv, recv_until, send

pytestmark = pytest.mark.django_db(transaction=True)


def publish(client: redis.Redis, event_id: str, user_id: int, status: str) -> None:
    payload = {"user_id": user_id, "id": 41, "status": status, "symbol": "BTC"}
    client.xadd(
        STREAM,
        {
            "event_id": event_id,
            "topic": "trading.order",
            "aggregate": f"user:{user_id}",
            "payload": json.dumps(payload),
        },
    )


def test_a_redelivered_event_is_appended_once_and_sequences_stay_whole(trader: Any) -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    group_create()
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    publish(client, first, trader.pk, "OPEN")
    # a fan-out read it and died before acknowledging: it is pending for that consumer
    client.xreadgroup(GROUP, "c1", {STREAM: ">"}, count=10)
    publish(client, first, trader.pk, "OPEN")  # the relay published it again (crash before marking it)
    publish(client, second, trader.pk, "FILLED")

    async def passes() -> list[int]:
        handled = [await fanout_batch("c1", block_ms=50), await fanout_batch("c1", block_ms=50)]
        return handled

    assert sum(asyncio.run(passes())) == 3  # the pending one, its duplicate, the next one
    log = client.xrange(userlog.log_key(trader.pk))
    assert [entry_id for entry_id, _ in log] == ["1-0", "2-0"]
    assert [json.loads(fields["f"])["data"]["status"] for _, fields in log] == ["OPEN", "FILLED"]
    assert client.get(userlog.seq_key(trader.pk)) == "2"
    assert client.xpending(STREAM, GROUP)["pending"] == 0


def test_after_redis_restarts_empty_the_fan_out_makes_its_group_again_and_misses_nothing(trader: Any) -> None:
    """The soak's Redis restart took the stream and its consumer group; the fan-out failed on NOGROUP
    every 30 s from then on and no user saw another event. The events the relay writes after the restart
    — also those written before the fan-out notices — reach the user's log."""
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    group_create()
    publish(client, str(uuid.uuid4()), trader.pk, "OPEN")
    client.flushdb()  # Redis restarted without its data
    publish(client, str(uuid.uuid4()), trader.pk, "FILLED")  # the relay, before the fan-out's next read

    async def passes() -> list[int]:
        return [await fanout_batch("c1", block_ms=50) for _ in range(2)]

    assert sum(asyncio.run(passes())) == 1
    log = client.xrange(userlog.log_key(trader.pk))
    assert [json.loads(fields["f"])["data"]["status"] for _, fields in log] == ["FILLED"]
    assert client.xpending(STREAM, GROUP)["pending"] == 0


def test_the_market_stream_sends_a_snapshot_then_throttled_updates(set_quote: Any) -> None:
    set_quote("BTC", "80000", bid="79999", ask="80001")
    with StreamServer() as server:
        ws = open_socket(server.url("/ws/v1/market"))
        send(ws, {"op": "subscribe", "id": 1, "assets": ["BTC", "NOPE"]})
        error = recv(ws)
        assert (error["type"], error["code"]) == ("error", "UNKNOWN_SYMBOL")
        send(ws, {"op": "subscribe", "id": 2, "assets": ["BTC"]})
        assert recv(ws)["type"] == "subscribed"
        snap = recv(ws)
        assert (snap["asset"], snap["mark"], snap["best_bid"], snap["best_ask"], snap["funding_rate"]) == (
            "BTC",
            "80000",
            "79999",
            "80001",
            "0.0000125",
        )
        started = time.monotonic()
        for step in range(20):  # 20 quote changes in one second
            set_quote("BTC", str(80000 + step + 1))
            time.sleep(0.05)
        frames = recv_until(ws, lambda f: f.get("mark") == "80020", 5)
        elapsed = time.monotonic() - started
        assert all(f["type"] == "market" for f in frames)
        assert len(frames) <= elapsed / 0.25 + 2  # at most one per asset per 250 ms
        ws.close()
