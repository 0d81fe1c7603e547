"""The user data stream (``/ws/v1/user``) and the market stream (``/ws/v1/market``), asyncio.

``UserStream`` yields each of the user's events once and in order across disconnections: it remembers
the last sequence it delivered, reconnects with a growing backoff and subscribes with ``resume_from``
so the server replays what was missed; frames at or below that sequence (a replay overlapping a live
frame) are dropped. When the server no longer retains that far back (``RESUME_TOO_OLD``) it
subscribes afresh and yields the snapshots, whose ``reset`` flag tells the program to rebuild its state
from them. Silence for ``heartbeat_timeout`` (three server heartbeats) counts as a dead connection.

``SyncUserStream`` / ``SyncMarketStream`` run the same loop in a thread for blocking programs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import random
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from xbit_client.errors import XbitApiError, XbitStreamError, XbitTransportError
from xbit_client.models import Account, Fill, Order, Position
from xbit_client.parsing import parse, to_decimal
from xbit_client.signing import Timestamps, signed_headers

if TYPE_CHECKING:
    from xbit_client.aio import AsyncClient

logger = logging.getLogger("xbit_client.stream")

USER_PATH = "/ws/v1/user"
MARKET_PATH = "/ws/v1/market"
ALL_CHANNELS = (
    "orders",
    "fills",
    "positions",
    "balances",
    "liquidations",
    "funding",
    "deposits",
    "withdrawals",
)
CLOSE_AUTH = 4001
CLOSE_TOO_MANY_CONNECTIONS = 4008
# refusals that reconnecting cannot cure: raised to the program
FATAL_CODES = frozenset(
    {
        "INVALID_SIGNATURE",
        "API_KEY_REVOKED",
        "API_KEY_PERMISSION",
        "IP_NOT_ALLOWED",
        "UNKNOWN_CHANNEL",
        "PERMISSION_DENIED",
    }
)
TOKEN_CODES = frozenset({"INVALID_TOKEN", "TOKEN_EXPIRED", "NOT_AUTHENTICATED"})

T = TypeVar("T")
CHANNEL_MODELS: dict[str, type[Any]] = {
    "orders": Order,
    "fills": Fill,
    "positions": Position,
    "balances": Account,
}


def ws_url(base_url: str, path: str) -> str:
    """``http(s)://host[/prefix]`` (the REST base) or ``ws(s)://…`` → the stream's websocket URL."""
    parts = urlsplit(base_url.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    prefix = parts.path if not parts.path.endswith(path) else parts.path[: -len(path)]
    return urlunsplit((scheme, parts.netloc, prefix + path, "", ""))


@dataclass
class StreamMessage:
    """One frame for the program: ``kind`` is ``"snapshot"`` (the channel's state at ``seq``) or
    ``"event"`` (one change, ``seq`` strictly increasing). ``reset``: a snapshot that replaces state
    the program built before (first subscription, or the resume point was no longer retained)."""

    kind: str
    channel: str
    seq: int
    data: Any
    ts: int | None = None
    reset: bool = False

    def typed(self) -> Any:
        """``data`` as the REST API's types where the channel has one (orders → ``Order``, fills → ``Fill``, positions →
        ``Position``, balances → ``Account`` without positions; a snapshot → a list of them); the
        other channels' data as is."""
        model = CHANNEL_MODELS.get(self.channel)
        if model is None or self.data is None:
            return self.data
        if isinstance(self.data, list):
            return [parse(model, item) for item in self.data]
        return parse(model, self.data)


@dataclass
class MarketUpdate:
    asset: str
    mark: Decimal | None
    oracle: Decimal | None
    mid: Decimal | None
    best_bid: Decimal | None
    best_ask: Decimal | None
    funding_rate: Decimal | None
    ts: int | None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> MarketUpdate:
        known = ("mark", "oracle", "mid", "best_bid", "best_ask", "funding_rate")
        values = {name: None if frame.get(name) is None else to_decimal(frame[name]) for name in known}
        extra = {k: v for k, v in frame.items() if k not in (*known, "asset", "ts", "type")}
        ts = frame.get("ts")
        return cls(
            asset=str(frame.get("asset")), ts=int(ts) if ts is not None else None, extra=extra, **values
        )


class Backoff:
    """Exponential reconnection delays with jitter, reset once a connection works."""

    def __init__(self, initial: float = 0.5, maximum: float = 15.0, jitter: float = 0.2) -> None:
        self.initial, self.maximum, self.jitter = initial, maximum, jitter
        self.attempt = 0

    def next(self) -> float:
        delay = min(self.maximum, self.initial * (2**self.attempt))
        self.attempt += 1
        return delay * random.uniform(1 - self.jitter, 1 + self.jitter)

    def reset(self) -> None:
        self.attempt = 0


class _Reconnect(Exception):
    """The connection is over; connect again (and resume)."""


class UserStream:
    """``async for message in UserStream(...)`` — events exactly once, in order, across reconnections.

    Credentials: an API key (``api_key`` + ``api_secret``; the handshake is signed as a REST ``GET`` of
    the stream's path) or a JWT from ``token`` (a callable returning a fresh access token; it is called
    for every connection, with ``force=True`` after the server refused the token). ``from_client`` takes
    both from an ``AsyncClient``. ``resume_from``: start after this sequence instead of snapshots."""

    def __init__(
        self,
        url: str,
        *,
        channels: list[str] | tuple[str, ...] = ALL_CHANNELS,
        api_key: str | None = None,
        api_secret: str | None = None,
        recv_window_ms: int | None = None,
        token: Callable[[bool], Awaitable[str]] | None = None,
        resume_from: int | None = None,
        heartbeat_timeout: float = 45.0,
        backoff: Backoff | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        if not token and not (api_key and api_secret):
            raise ValueError("the user stream needs an API key and secret, or a token provider")
        self.url = ws_url(url, USER_PATH)
        self.path = urlsplit(self.url).path
        self.channels = list(channels)
        self.api_key, self.api_secret, self.recv_window_ms = api_key, api_secret, recv_window_ms
        self.token = token
        self.last_seq: int | None = resume_from
        self.heartbeat_timeout = heartbeat_timeout
        self.backoff = backoff or Backoff()
        self.open_timeout = open_timeout
        self.connections = 0  # how many times a connection was authenticated (1 + reconnections)
        self.resets = 0  # how many times the server could not resume and snapshots replaced the state
        self.timestamps = Timestamps()
        self._ws: ClientConnection | None = None
        self._closed = False
        self._token_refused = False

    @classmethod
    def from_client(cls, client: AsyncClient, **options: Any) -> UserStream:
        """The stream of the user the client authenticates as (its API key, or its JWT kept fresh)."""
        core = client.core
        if core.api_key is not None:
            return cls(
                core.base_url,
                api_key=core.api_key.key_id,
                api_secret=core.api_key.secret,
                recv_window_ms=core.api_key.recv_window_ms,
                **options,
            )
        return cls(core.base_url, token=client.access_token, **options)

    async def _headers(self) -> dict[str, str]:
        if self.api_key and self.api_secret:
            return signed_headers(
                key_id=self.api_key,
                secret=self.api_secret,
                timestamp=self.timestamps.next(),
                method="GET",
                path=self.path,
                recv_window_ms=self.recv_window_ms,
            )
        assert self.token is not None
        return {"Authorization": f"Bearer {await self.token(self._token_refused)}"}

    async def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            await self._ws.close()

    def __aiter__(self) -> AsyncIterator[StreamMessage]:
        return self.messages()

    async def messages(self) -> AsyncIterator[StreamMessage]:
        while not self._closed:
            try:
                async with connect(
                    self.url,
                    additional_headers=await self._headers(),
                    open_timeout=self.open_timeout,
                    close_timeout=2,
                    max_size=2**24,
                ) as ws:
                    self._ws = ws
                    async for message in self._session(ws):
                        yield message
            except XbitStreamError:
                raise
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status in (401, 403) and not self._retry_auth():
                    raise XbitStreamError("NOT_AUTHENTICATED", f"handshake refused: HTTP {status}") from None
                logger.info("user stream: handshake refused (HTTP %s), reconnecting", status)
            except (_Reconnect, ConnectionClosed, InvalidHandshake, OSError, TimeoutError) as exc:
                closed_for_auth = (
                    isinstance(exc, ConnectionClosed) and exc.rcvd is not None and exc.rcvd.code == CLOSE_AUTH
                )
                if closed_for_auth and not self._retry_auth():
                    raise XbitStreamError(
                        "NOT_AUTHENTICATED", exc.rcvd.reason or "authentication failed"
                    ) from None
                logger.info("user stream: connection lost (%s), reconnecting", exc)
            except XbitApiError as exc:  # the token provider could not sign in or refresh
                if exc.status != 429 and exc.status < 500:
                    raise XbitStreamError(exc.code, exc.message) from None
                logger.info("user stream: no token yet (%s), retrying", exc.code)  # throttled or busy
            except XbitTransportError as exc:
                logger.info("user stream: no token yet (%s), retrying", exc)
            finally:
                self._ws = None
            if self._closed:
                return
            await asyncio.sleep(self.backoff.next())

    def _retry_auth(self) -> bool:
        """A refused token is refreshed once (then the next refusal is final); a key is refused for good."""
        if self.token is None or self._token_refused:
            return False
        self._token_refused = True
        return True

    async def _receive(self, ws: ClientConnection) -> dict[str, Any]:
        try:
            raw = await asyncio.wait_for(ws.recv(), timeout=self.heartbeat_timeout)
        except TimeoutError:
            raise _Reconnect("no frame within the heartbeat timeout") from None
        try:
            frame = json.loads(raw)
        except ValueError:
            raise _Reconnect("a frame that is not JSON") from None
        if not isinstance(frame, dict):
            raise _Reconnect("a frame that is not an object")
        return frame

    async def _subscribe(self, ws: ClientConnection) -> None:
        request: dict[str, Any] = {"op": "subscribe", "id": self.connections, "channels": self.channels}
        if self.last_seq is not None:
            request["resume_from"] = self.last_seq
        await ws.send(json.dumps(request))

    async def _session(self, ws: ClientConnection) -> AsyncIterator[StreamMessage]:
        resuming = self.last_seq is not None
        reset = not resuming
        subscribed = False
        while True:
            frame = await self._receive(ws)
            kind = frame.get("type")
            if kind == "authenticated" and not subscribed:
                self.connections += 1
                self._token_refused = False
                self.backoff.reset()
                await self._subscribe(ws)
                subscribed = True
            elif kind == "snapshot":
                seq = int(frame.get("seq") or 0)
                self.last_seq = max(seq, self.last_seq or 0) if not reset else seq
                yield StreamMessage(
                    "snapshot", str(frame.get("channel")), seq, frame.get("data"), reset=reset
                )
            elif kind == "event":
                seq = int(frame["seq"])
                if self.last_seq is not None and seq <= self.last_seq:
                    continue  # already delivered (a replay overlapping the live feed)
                self.last_seq = seq
                ts = frame.get("ts")
                yield StreamMessage(
                    "event",
                    str(frame.get("channel")),
                    seq,
                    frame.get("data"),
                    int(ts) if ts is not None else None,
                )
            elif kind == "error":
                code, message = str(frame.get("code")), str(frame.get("message", ""))
                if code == "RESUME_TOO_OLD" or (code == "BAD_SUBSCRIPTION" and resuming):
                    # the gap cannot be replayed: start over from snapshots, on the same socket
                    logger.warning("user stream: cannot resume from %s (%s): snapshots", self.last_seq, code)
                    self.last_seq, resuming, reset = None, False, True
                    self.resets += 1
                    await self._subscribe(ws)
                elif code in FATAL_CODES or code == "BAD_SUBSCRIPTION":
                    raise XbitStreamError(code, message)
                elif code in TOKEN_CODES:
                    if not self._retry_auth():
                        raise XbitStreamError(code, message)
                    raise _Reconnect(code)
                else:  # RATE_LIMITED, TOO_MANY_CONNECTIONS, BAD_MESSAGE…: the server closes or we go on
                    logger.warning("user stream error %s: %s", code, message)
            # subscribed, unsubscribed, heartbeat, pong: nothing for the program


class MarketStream:
    """``async for update in MarketStream(base_url, assets=["BTC"])`` — the prices traders are filled
    against (public). Reconnects with backoff and subscribes again (the snapshot per asset follows)."""

    def __init__(
        self,
        url: str,
        *,
        assets: list[str] | tuple[str, ...] = ("*",),
        idle_timeout: float | None = 60.0,
        backoff: Backoff | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        self.url = ws_url(url, MARKET_PATH)
        self.assets = list(assets)
        self.idle_timeout = idle_timeout
        self.backoff = backoff or Backoff()
        self.open_timeout = open_timeout
        self.connections = 0
        self._ws: ClientConnection | None = None
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            await self._ws.close()

    def __aiter__(self) -> AsyncIterator[MarketUpdate]:
        return self.updates()

    async def updates(self) -> AsyncIterator[MarketUpdate]:
        while not self._closed:
            try:
                async with connect(self.url, open_timeout=self.open_timeout, close_timeout=2) as ws:
                    self._ws = ws
                    await ws.send(json.dumps({"op": "subscribe", "assets": self.assets}))
                    self.connections += 1
                    while True:
                        try:
                            raw = await asyncio.wait_for(ws.recv(), timeout=self.idle_timeout)
                        except TimeoutError:
                            raise _Reconnect("market stream idle") from None
                        frame = json.loads(raw)
                        if not isinstance(frame, dict):
                            continue
                        if frame.get("type") == "market":
                            self.backoff.reset()
                            yield MarketUpdate.from_frame(frame)
                        elif frame.get("type") == "error":
                            code = str(frame.get("code"))
                            if code in ("BAD_SUBSCRIPTION", "UNKNOWN_SYMBOL", "BAD_MESSAGE"):
                                raise XbitStreamError(code, str(frame.get("message", "")))
                            logger.warning("market stream error %s: %s", code, frame.get("message"))
            except XbitStreamError:
                raise
            except (_Reconnect, ConnectionClosed, InvalidHandshake, OSError, TimeoutError, ValueError) as exc:
                logger.info("market stream: connection lost (%s), reconnecting", exc)
            finally:
                self._ws = None
            if self._closed:
                return
            await asyncio.sleep(self.backoff.next())


_END = object()


class _ThreadedIterator(Generic[T]):
    """Runs an async iterator on an event loop in a daemon thread; the caller iterates a queue."""

    def __init__(
        self, source: Callable[[], AsyncIterator[T]], close: Callable[[], Coroutine[Any, Any, None]]
    ) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=10_000)
        self._close = close
        self._loop = asyncio.new_event_loop()
        self._source = source
        self._thread = threading.Thread(target=self._run, name="xbit-stream", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        async def pump() -> None:
            try:
                async for item in self._source():
                    self._queue.put(item)
            except BaseException as exc:  # handed to the caller's thread
                self._queue.put(exc)
            finally:
                self._queue.put(_END)

        self._loop.run_until_complete(pump())

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        item = self._queue.get()
        if item is _END:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[no-any-return]

    def get(self, timeout: float | None = None) -> T | None:
        """The next item, or None after ``timeout`` seconds without one."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _END:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[no-any-return]

    def close(self) -> None:
        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=5)
        self._thread.join(timeout=5)


class SyncUserStream(_ThreadedIterator[StreamMessage]):
    """``for message in SyncUserStream(UserStream(...))`` in a blocking program (a thread runs it)."""

    def __init__(self, stream: UserStream) -> None:
        self.stream = stream
        super().__init__(stream.messages, stream.close)


class SyncMarketStream(_ThreadedIterator[MarketUpdate]):
    def __init__(self, stream: MarketStream) -> None:
        self.stream = stream
        super().__init__(stream.updates, stream.close)
