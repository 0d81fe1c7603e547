"""The user data stream against a real server: uvicorn on a free port, the outbox relay and the fan-out
running, PostgreSQL and Redis real. A client dropped for 10 s during trading resumes from its sequence
and receives every event exactly once; errors are frames with stable codes, closes have documented
codes; heartbeats; connection limit."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connections
from django.utils import timezone
from websockets.exceptions import ConnectionClosed

from core.accounts.api_keys import api_key_create
from core.accounts.tokens import access_token_for
from core.events.models import OutboxEvent
from core.live_config import invalidate
from trading.models import Fill, Order
from trading.orders.input import order_input
from trading.orders.place import order_place
from trading.stream import userlog
from trading.stream.mapping import CHANNELS
from trading.stream.models import StreamConfig
from trading.stream.testing import StreamServer
from trading.tests.user_stream_client import (
    close_code,
    frames_until_closed,
    hmac_headers,
    open_socket,
    recv,
    recv_until,
    send,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("internalization_on")]

USER = "/ws/v1/user"


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


def bearer(user: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token_for(user)}"}


def place(user: Any, side: str, size: str = "0.01") -> Order:
    return order_place(
        user=user,
        inp=order_input(
            asset="BTC", side=side, size=size, order_type="MARKET", leverage=10, margin_mode="CROSS"
        ),
    )


class Trading(threading.Thread):
    """Market orders, alternately buy and sell, every ``interval`` until stopped (each commits); the
    quote is refreshed before each (a book older than 5 s is not internalized)."""

    def __init__(self, user: Any, set_quote: Callable[..., None], interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.user, self.set_quote, self.interval = user, set_quote, interval
        self.stop = threading.Event()
        self.placed = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.set_quote("BTC", "80000", bid="79999", ask="80001")
                place(self.user, "BUY" if self.placed % 2 == 0 else "SELL")
                self.placed += 1
                time.sleep(self.interval)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            connections.close_all()


def test_a_client_dropped_for_10_s_resumes_and_receives_every_event_exactly_once(
    trader: Any, set_quote: Any, stream_config: Callable[..., None], server: StreamServer
) -> None:
    stream_config(heartbeat_seconds=1)
    set_quote("BTC", "80000", bid="79999", ask="80001")
    ws = open_socket(server.url(USER), bearer(trader))
    hello = recv(ws)
    assert hello["type"] == "authenticated" and hello["user_id"] == trader.pk
    send(ws, {"op": "subscribe", "id": 1, "channels": list(CHANNELS)})
    subscribed = recv(ws)
    assert subscribed["type"] == "subscribed" and subscribed["id"] == 1
    start = subscribed["seq"]
    snapshots = [recv(ws) for _ in CHANNELS]
    assert {s["channel"] for s in snapshots} == set(CHANNELS) and all(
        s["type"] == "snapshot" for s in snapshots
    )
    balances = next(s for s in snapshots if s["channel"] == "balances")
    assert balances["data"]["cash"] == "100000.000000"

    trading = Trading(trader, set_quote)
    trading.start()
    received: list[dict[str, Any]] = []
    received += [
        f for f in recv_until(ws, lambda f: f.get("seq", 0) >= start + 12, 20) if f["type"] == "event"
    ]
    # the socket drops (no close handshake) and stays away 10 s while trading goes on
    ws.socket.shutdown(socket.SHUT_RDWR)
    ws.socket.close()
    last = max(f["seq"] for f in received)
    time.sleep(10)
    missed_from = userlog_last_seq(trader.pk)
    assert missed_from > last + 10  # events happened while the client was away

    ws = open_socket(server.url(USER), bearer(trader))
    assert recv(ws)["type"] == "authenticated"
    send(ws, {"op": "subscribe", "id": 2, "channels": list(CHANNELS), "resume_from": last})
    assert recv(ws)["type"] == "subscribed"
    time.sleep(2)
    trading.stop.set()
    trading.join(timeout=10)
    assert trading.error is None, trading.error
    time.sleep(0.5)
    final = userlog_last_seq(trader.pk)
    tail = recv_until(ws, lambda f: f["type"] == "heartbeat" and f["seq"] == final, 15)
    received += [f for f in tail if f["type"] == "event"]
    ws.close()

    seqs = [f["seq"] for f in received]
    assert seqs == list(range(start + 1, final + 1))  # in order, no gap, no duplicate
    fills = {f["data"]["id"] for f in received if f["channel"] == "fills"}
    assert fills == set(Fill.objects.filter(user=trader).values_list("id", flat=True))
    assert len([f for f in received if f["channel"] == "fills"]) == len(fills) == trading.placed
    # every order state announced once, the last one the order's state in the database
    order_events = [f["data"] for f in received if f["channel"] == "orders"]
    announced = OutboxEvent.objects.filter(topic="trading.order", aggregate=f"user:{trader.pk}").count()
    assert len(order_events) == announced >= trading.placed
    last_state = {o["id"]: o["status"] for o in order_events}
    assert last_state == dict(Order.objects.filter(user=trader).values_list("id", "status"))
    assert {f["channel"] for f in received} >= {"orders", "fills", "positions", "balances"}


def userlog_last_seq(user_id: int) -> int:
    return int(redis.Redis.from_url(settings.REDIS_URL).get(userlog.seq_key(user_id)) or 0)


def test_a_bad_subscription_gets_an_error_frame_and_the_socket_stays_open(
    trader: Any, server: StreamServer
) -> None:
    ws = open_socket(server.url(USER), bearer(trader))
    recv(ws)
    send(ws, {"op": "subscribe", "id": 7, "channels": "orders"})
    assert recv(ws) == {
        "type": "error",
        "code": "BAD_SUBSCRIPTION",
        "message": '"channels" is a non-empty list of channel names; "resume_from" a sequence number.',
        "id": 7,
    }
    send(ws, {"op": "subscribe", "id": 8, "channels": ["orders", "gossip"]})
    error = recv(ws)
    assert (error["code"], error["id"]) == ("UNKNOWN_CHANNEL", 8)
    send(ws, {"op": "subscribe", "channels": ["orders"], "resume_from": 99})
    assert recv(ws)["code"] == "BAD_SUBSCRIPTION"  # ahead of the stream
    ws.send("not json")
    assert recv(ws)["code"] == "BAD_MESSAGE"
    send(ws, {"op": "ping", "id": "p"})
    pong = recv(ws)
    assert pong["type"] == "pong" and pong["id"] == "p"
    ws.close()


def test_signatures_follow_the_rest_rules_and_a_bad_one_closes_4001(
    trader: Any, make_trader: Any, server: StreamServer
) -> None:
    key, secret = api_key_create(user=trader, label="bot", permissions=["read"])
    good = hmac_headers(key.key_id, secret)
    ws = open_socket(server.url(USER), good)
    assert recv(ws)["type"] == "authenticated"
    ws.close()
    # the same signed handshake again: the replay cache refuses it
    ws = open_socket(server.url(USER), good)
    assert recv(ws)["code"] == "REPLAYED_REQUEST"
    assert close_code(ws) == 4001
    ws = open_socket(server.url(USER), {**hmac_headers(key.key_id, secret), "X-XBIT-SIGNATURE": "00" * 32})
    assert recv(ws)["code"] == "INVALID_SIGNATURE"
    assert close_code(ws) == 4001
    ws = open_socket(
        server.url(USER), hmac_headers(key.key_id, secret, timestamp=str(int(time.time() * 1000) - 3_600_000))
    )
    assert recv(ws)["code"] == "TIMESTAMP_EXPIRED"
    assert close_code(ws) == 4001
    trade_only, trade_secret = api_key_create(user=trader, label="t", permissions=["trade"])
    ws = open_socket(server.url(USER), hmac_headers(trade_only.key_id, trade_secret))
    assert recv(ws)["code"] == "API_KEY_PERMISSION"
    assert close_code(ws) == 4001
    elsewhere, elsewhere_secret = api_key_create(
        user=trader, label="ip", permissions=["read"], ip_allowlist=["10.9.8.7"]
    )
    ws = open_socket(server.url(USER), hmac_headers(elsewhere.key_id, elsewhere_secret))
    assert recv(ws)["code"] == "IP_NOT_ALLOWED"
    assert close_code(ws) == 4001
    # the first frame may carry the signature instead of the headers
    ws = open_socket(server.url(USER))
    fresh = hmac_headers(key.key_id, secret)
    send(
        ws,
        {
            "op": "auth",
            "api_key": key.key_id,
            "timestamp": fresh["X-XBIT-TIMESTAMP"],
            "signature": fresh["X-XBIT-SIGNATURE"],
        },
    )
    assert recv(ws)["type"] == "authenticated"
    ws.close()
    ws = open_socket(server.url(USER), {"Authorization": "Bearer nonsense"})
    assert recv(ws)["code"] == "INVALID_TOKEN"
    assert close_code(ws) == 4001


def test_a_user_has_at_most_the_configured_connections(
    trader: Any, stream_config: Callable[..., None], server: StreamServer
) -> None:
    stream_config(max_connections_per_user=2)
    first, second = (open_socket(server.url(USER), bearer(trader)) for _ in range(2))
    assert recv(first)["type"] == recv(second)["type"] == "authenticated"
    third = open_socket(server.url(USER), bearer(trader))
    assert recv(third)["code"] == "TOO_MANY_CONNECTIONS"
    assert close_code(third) == 4008
    first.close()
    time.sleep(0.3)
    fourth = open_socket(server.url(USER), bearer(trader))
    assert recv(fourth)["type"] == "authenticated"
    second.close()
    fourth.close()


def test_heartbeats_carry_the_sequence_and_a_silent_socket_is_closed(
    trader: Any, set_quote: Any, stream_config: Callable[..., None], server: StreamServer
) -> None:
    stream_config(heartbeat_seconds=1, auth_timeout_seconds=1)
    set_quote("BTC", "80000")
    silent = open_socket(server.url(USER))
    ws = open_socket(server.url(USER), bearer(trader))
    recv(ws)
    send(ws, {"op": "subscribe", "channels": ["fills"]})
    recv_until(ws, lambda f: f["type"] == "snapshot")
    place(trader, "BUY")
    beat = recv_until(ws, lambda f: f["type"] == "heartbeat" and f["seq"] > 0, 5)
    fill = next(f for f in beat if f["type"] == "event")
    assert fill["channel"] == "fills" and beat[-1]["seq"] >= fill["seq"]
    # only fills were asked for: the orders, positions and balances frames of the same trade are skipped
    assert all(f["channel"] == "fills" for f in beat if f["type"] == "event")
    assert recv(silent, timeout=5)["code"] == "NOT_AUTHENTICATED"
    assert close_code(silent) == 4001
    ws.close()
    # a JWT's stream ends with the token: TOKEN_EXPIRED, 4001 (the client refreshes and resumes)
    issued = timezone.now() - settings.JWT_ACCESS_TTL + timedelta(seconds=2)
    expiring = open_socket(
        server.url(USER), {"Authorization": f"Bearer {access_token_for(trader, now=issued)}"}
    )
    assert recv(expiring)["type"] == "authenticated"
    expired = recv_until(expiring, lambda f: f["type"] == "error", 6)[-1]
    assert expired["code"] == "TOKEN_EXPIRED"
    assert close_code(expiring) == 4001


def test_after_redis_restarts_empty_sockets_are_told_to_reconnect_and_events_flow_again(
    trader: Any, set_quote: Any, stream_config: Callable[..., None], server: StreamServer
) -> None:
    """Redis restarted without its data (the soak's Redis restart): the user logs, the sequences, the
    fan-out's consumer group and the sockets' Channels groups are gone. Before, the fan-out failed on
    NOGROUP from then on and a connected socket, its group gone, heard nothing but heartbeats."""
    stream_config(heartbeat_seconds=1)
    set_quote("BTC", "80000")
    ws = open_socket(server.url(USER), bearer(trader))
    recv(ws)
    send(ws, {"op": "subscribe", "channels": ["fills"]})
    recv_until(ws, lambda f: f["type"] == "snapshot")
    place(trader, "BUY")
    recv_until(ws, lambda f: f["type"] == "event" and f["channel"] == "fills")
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    set_quote("BTC", "80000")
    error = recv_until(ws, lambda f: f["type"] == "error", 5)[-1]
    assert error["code"] == "RESUME_TOO_OLD" and "subscribe without resume_from" in error["message"]
    assert close_code(ws) == 4011
    again = open_socket(server.url(USER), bearer(trader))
    recv(again)
    send(again, {"op": "subscribe", "channels": ["fills"]})
    recv_until(again, lambda f: f["type"] == "snapshot")
    place(trader, "SELL")
    fill = recv_until(again, lambda f: f["type"] == "event" and f["channel"] == "fills", 10)[-1]
    assert fill["data"]["side"] == "SELL"
    # the new socket is not closed by the next heartbeats: the epoch it joined under holds
    beats = recv_until(again, lambda f: f["type"] == "heartbeat", 3)
    assert all(f["type"] != "error" for f in beats)
    again.close()


def test_a_resume_older_than_the_retention_is_refused_with_resume_too_old(
    trader: Any, set_quote: Any, stream_config: Callable[..., None], server: StreamServer
) -> None:
    stream_config(retention_events=3)
    set_quote("BTC", "80000")
    for side in ("BUY", "SELL"):
        place(trader, side)
    # at least the two orders' states and their fills (positions and balances frames of one batch are
    # coalesced, so how many of those follow depends on the fan-out's batching): well past 3 retained
    deadline = time.monotonic() + 20
    while userlog_last_seq(trader.pk) < 6 and time.monotonic() < deadline:
        time.sleep(0.05)
    ws = open_socket(server.url(USER), bearer(trader))
    current = recv(ws)["seq"]
    assert current >= 6
    send(ws, {"op": "subscribe", "id": 3, "channels": ["orders"], "resume_from": 1})
    error = recv(ws)
    assert (error["code"], error["id"], error["details"]["seq"]) == ("RESUME_TOO_OLD", 3, current)
    # still open: the client subscribes again without resume and gets the snapshot
    send(ws, {"op": "subscribe", "id": 4, "channels": list(CHANNELS), "resume_from": current - 2})
    assert recv(ws)["type"] == "subscribed"
    assert [recv(ws)["seq"], recv(ws)["seq"]] == [current - 1, current]  # what is retained is replayed
    ws.close()


def test_too_many_messages_are_refused_then_the_socket_is_closed_4009(
    trader: Any, stream_config: Callable[..., None], server: StreamServer
) -> None:
    stream_config(max_messages_per_second=5)
    ws = open_socket(server.url(USER), bearer(trader))
    recv(ws)
    for n in range(30):  # within a second or two: over twice the limit in one of them
        try:
            send(ws, {"op": "ping", "id": n})
        except ConnectionClosed:  # the server may close before the client has sent them all
            break
    frames, code = frames_until_closed(ws)
    errors = [f for f in frames if f["type"] == "error"]
    # RATE_LIMITED once a second while over the limit, then once more with the close
    assert 1 <= len(errors) <= 3 and {e["code"] for e in errors} == {"RATE_LIMITED"}
    assert frames[-1] == errors[-1]
    pongs = [f["id"] for f in frames if f["type"] == "pong"]
    assert pongs == list(range(len(pongs))) and 5 <= len(pongs) <= 10  # the frames beyond the limit dropped
    assert code == 4009
