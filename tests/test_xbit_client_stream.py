"""The client's user and market streams against the real stream server (uvicorn serving the ASGI app,
the outbox relay and the fan-out running; PostgreSQL and Redis real), trading through the client's
REST side over the same server: a socket dropped for 10 s resumes from its sequence and the program
sees every event exactly once, in order; a resume too old falls back to snapshots; silence past the
heartbeat timeout reconnects; prices arrive as Decimals."""

# ruff: noqa: F811 - the trading suite's fixtures are imported by name and requested as arguments
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connections

from conftest import PASSWORD
from core.accounts.api_keys import api_key_create
from core.live_config import invalidate
from trading.models import Fill, Order
from trading.stream import userlog
from trading.stream.models import StreamConfig
from trading.stream.testing import StreamServer
from trading.tests.conftest import (  # noqa: F401 - the markets, quotes and funded trader of the trading suite
    fund,
    hl_meta,
    internalization_on,
    markets,
    set_quote,
    trader,
)
from xbit_client import (
    AsyncClient,
    Client,
    MarketStream,
    StreamMessage,
    SyncUserStream,
    UserStream,
    XbitApiError,
)
from xbit_client.stream import Backoff

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("internalization_on")]


@pytest.fixture
def stream_config() -> Callable[..., None]:
    def _set(**changes: Any) -> None:
        StreamConfig.objects.update_or_create(key="default", defaults=changes)
        invalidate("stream")

    return _set


@pytest.fixture
def server() -> Iterator[StreamServer]:
    with StreamServer() as running:
        yield running


def http_url(server: StreamServer) -> str:
    return f"http://127.0.0.1:{server.port}"


def last_seq(user_id: int) -> int:
    return int(redis.Redis.from_url(settings.REDIS_URL).get(userlog.seq_key(user_id)) or 0)


class Trading(threading.Thread):
    """Market orders through the client over HTTP, alternately buy and sell, until stopped. A refusal
    (the router may send a busy client's flow to HL, absent here) is counted: it is an event too."""

    def __init__(self, client: Client, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.client, self.interval = client, interval
        self.stop = threading.Event()
        self.placed = 0
        self.refused = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                side = "BUY" if self.placed % 2 == 0 else "SELL"
                try:
                    self.client.place_order("BTC", side, "MARKET", "0.01", leverage=10, margin_mode="CROSS")
                    self.placed += 1
                except XbitApiError:
                    self.refused += 1
                time.sleep(self.interval)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            connections.close_all()


def test_a_client_dropped_for_10_s_resumes_and_yields_every_event_once_in_order(
    trader: Any, set_quote: Any, stream_config: Callable[..., None], server: StreamServer
) -> None:
    stream_config(heartbeat_seconds=1)
    set_quote("BTC", "80000", bid="79999", ask="80001")
    key, secret = api_key_create(user=trader, label="stream", permissions=["read", "trade"])
    rest = Client(http_url(server), api_key=key.key_id, api_secret=secret)
    trading = Trading(rest)
    received: list[StreamMessage] = []

    async def until(condition: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.02)

    def events() -> list[StreamMessage]:
        return [m for m in received if m.kind == "event"]

    async def run() -> tuple[UserStream, float, int]:
        async with AsyncClient(http_url(server), api_key=key.key_id, api_secret=secret) as client:
            # the reconnection waits 10 s: the client is away 10 s while trading goes on
            stream = UserStream.from_client(client, backoff=Backoff(initial=10, maximum=10, jitter=0))

            async def consume() -> None:
                async for message in stream:
                    received.append(message)

            task = asyncio.create_task(consume())
            await until(lambda: len(received) >= 8, 10)  # the snapshots
            trading.start()
            await until(lambda: len(events()) >= 12, 20)
            assert stream._ws is not None
            stream._ws.transport.abort()  # the socket drops, no close handshake
            dropped_at, seen_before = time.monotonic(), stream.last_seq or 0
            await until(lambda: stream.connections == 2, 20)
            away = time.monotonic() - dropped_at
            await asyncio.sleep(2)
            trading.stop.set()
            await asyncio.to_thread(trading.join, 10)
            await asyncio.sleep(0.5)
            final = await asyncio.to_thread(last_seq, trader.pk)
            await until(lambda: (stream.last_seq or 0) >= final, 15)
            await stream.close()
            await task
            return stream, away, seen_before

    stream, away, seen_before = asyncio.run(asyncio.wait_for(run(), timeout=90))
    assert trading.error is None, trading.error
    assert trading.placed >= 10
    assert away >= 9.5
    replayed = [m for m in events() if m.seq > seen_before]
    assert len(replayed) > 10  # events happened while the client was away, and reached it
    snapshots = [m for m in received if m.kind == "snapshot"]
    assert {m.channel for m in snapshots} >= {"orders", "positions", "balances"} and all(
        m.reset for m in snapshots
    )
    balances = next(m for m in snapshots if m.channel == "balances")
    assert balances.typed().cash == Decimal("100000")
    events = [m for m in received if m.kind == "event"]
    start = snapshots[0].seq
    # in order, no gap, no duplicate: every event of the user after the snapshot, across the drop
    assert [m.seq for m in events] == list(range(start + 1, last_seq(trader.pk) + 1))
    assert stream.connections == 2 and stream.resets == 0
    fills = [m for m in events if m.channel == "fills"]
    assert len(fills) == Fill.objects.filter(user=trader).count() >= trading.placed
    typed = fills[0].typed()
    assert typed.size == Decimal("0.01") and isinstance(typed.price, Decimal) and typed.symbol == "BTC"
    assert {m.data["order_id"] for m in fills} == set(
        Fill.objects.filter(user=trader).values_list("order_id", flat=True)
    )
    orders = [m.typed() for m in events if m.channel == "orders"]
    assert {o.id for o in orders} == set(Order.objects.filter(user=trader).values_list("id", flat=True))
    assert all(isinstance(o.size, Decimal) and o.symbol == "BTC" for o in orders)
    rest.close()


def test_a_resume_too_old_falls_back_to_snapshots_and_a_jwt_session_streams(
    trader: Any, set_quote: Any, stream_config: Callable[..., None], server: StreamServer
) -> None:
    stream_config(retention_events=3)
    set_quote("BTC", "80000")
    rest = Client(http_url(server), email=trader.email, password=PASSWORD)
    for side in ("BUY", "SELL"):
        rest.place_order("BTC", side, "MARKET", "0.01", leverage=10)
    # the two orders' states and fills at least (how many positions/balances frames follow depends on
    # the fan-out's batching): well past the 3 retained
    deadline = time.monotonic() + 20
    while last_seq(trader.pk) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    current = last_seq(trader.pk)
    assert current >= 6

    async def run() -> tuple[UserStream, list[StreamMessage]]:
        async with AsyncClient(http_url(server), email=trader.email, password=PASSWORD) as client:
            stream = UserStream.from_client(
                client, channels=["orders", "positions", "balances"], resume_from=1
            )
            got: list[StreamMessage] = []
            async for message in stream:
                got.append(message)
                if len(got) == 3:
                    break
            return stream, got

    stream, got = asyncio.run(asyncio.wait_for(run(), timeout=30))
    assert stream.resets == 1 and stream.connections == 1
    assert [m.kind for m in got] == ["snapshot"] * 3 and all(m.reset and m.seq == current for m in got)
    positions = next(m for m in got if m.channel == "positions")
    assert positions.data == []  # bought then sold: flat
    assert stream.last_seq == current
    rest.close()


def test_silence_past_the_heartbeat_timeout_reconnects_without_duplicates(
    trader: Any, set_quote: Any, stream_config: Callable[..., None], server: StreamServer
) -> None:
    stream_config(heartbeat_seconds=30)  # the server stays silent longer than the client waits
    set_quote("BTC", "80000")
    key, secret = api_key_create(user=trader, label="quiet", permissions=["read"])
    stream = UserStream(
        http_url(server),
        api_key=key.key_id,
        api_secret=secret,
        heartbeat_timeout=1.0,
        backoff=Backoff(initial=0.1, maximum=0.1, jitter=0),
    )
    synced = SyncUserStream(stream)  # the blocking wrapper: a thread runs the loop
    first = [synced.get(timeout=10) for _ in range(8)]  # one snapshot per channel
    assert all(m is not None and m.kind == "snapshot" for m in first)
    deadline = time.monotonic() + 15
    while stream.connections < 3 and time.monotonic() < deadline:
        assert synced.get(timeout=0.2) is None  # reconnecting with resume: nothing again
    assert stream.connections >= 3 and stream.resets == 0
    synced.close()


def test_the_market_stream_yields_prices_as_decimals(set_quote: Any, server: StreamServer) -> None:
    set_quote("BTC", "80000", bid="79990", ask="80010")

    async def run() -> Any:
        stream = MarketStream(http_url(server), assets=["BTC"])
        async for update in stream:
            await stream.close()
            return update
        return None

    update = asyncio.run(asyncio.wait_for(run(), timeout=20))
    assert update.asset == "BTC" and update.mark == Decimal("80000")
    assert update.best_bid == Decimal("79990") and update.best_ask == Decimal("80010")
    assert isinstance(update.funding_rate, Decimal)
