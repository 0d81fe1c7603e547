"""The live market-data cache in Redis: one hash per asset, written by the feed, read by the order path.

Read side (hot: the order path calls it once per order) — :func:`get_quote` is ONE Redis round trip
(``HMGET`` on the asset's hash) and parses HL's decimal strings straight to ``Decimal``;
:func:`get_quotes` pipelines several assets into one round trip. A module-level client with a
connection pool is shared by every thread of the process; nothing here opens a connection per call.

Write side (the feed process) — :func:`quote_update` / :func:`quote_update_many` write partial
updates (book only, context only, mids only) in one pipeline, stamp each group with its RECEIPT time,
append the mark to a short per-asset history (a sorted set, trimmed to an hour) for the volatility
breaker, and publish a notification on :data:`UPDATES_CHANNEL` that :class:`QuoteListener` reads.

Redis layout (prefix ``xbit:md``)::

    xbit:md:q:<ASSET>    hash   mark oracle mid bid ask bid_sz ask_sz bids asks funding premium oi
                                mark_at book_at mid_at ctx_at book_time book_lat
                                (numbers as HL's strings; "" = unknown; *_at = epoch seconds of receipt;
                                 bids/asks = "px:sz,px:sz,…" best first; book_time = HL's ms timestamp;
                                 book_lat = the feed's latency figure when the book arrived, ms)
    xbit:md:mh:<ASSET>   zset   member "<ts>:<mark>", score ts — marks of the last hour
    xbit:md:rtt:<FEED>   hash   rtts at pending — the feed's recent websocket round trips to HL ("12.3,9.8",
                                ms, oldest first), when the last was measured and when the ping now
                                unanswered was sent (epoch seconds; "" = none); our clock only
    xbit:md:filled       hash   <feed name> -> epoch seconds when that feed began filling this Redis
                                (set by the feed's first write; absent: Redis lost its data, or no feed
                                has written yet)
    xbit:md:updates      pub/sub channel, JSON {"asset": "BTC", "kinds": ["book"], "at": 1.7e9}

Redis is a cache here (architecture): losing it loses no money. The feed notices a Redis that came back
empty on its next write (its field of ``xbit:md:filled`` is gone) and rewrites every quote it holds at
once; a reader that finds a quote missing while Redis is being refilled waits for it, briefly
(:func:`quote_wait_refill`); otherwise readers treat a missing or old quote as stale.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import redis
from django.conf import settings

from core.redis_retry import restart_tolerant

KEY_PREFIX = "xbit:md"
UPDATES_CHANNEL = f"{KEY_PREFIX}:updates"
FILLED_KEY = f"{KEY_PREFIX}:filled"
MARK_HISTORY_SECONDS = 3600
DEPTH_LEVELS = 20

Level = tuple[Decimal, Decimal]

# Quote attribute -> hash field. Order matters: HMGET returns values in this order.
_DECIMAL_FIELDS: tuple[tuple[str, str], ...] = (
    ("mark", "mark"),
    ("oracle", "oracle"),
    ("mid", "mid"),
    ("bid", "bid"),
    ("ask", "ask"),
    ("bid_size", "bid_sz"),
    ("ask_size", "ask_sz"),
    ("funding_rate", "funding"),
    ("premium", "premium"),
    ("open_interest", "oi"),
)
_FLOAT_FIELDS: tuple[tuple[str, str], ...] = (
    ("mark_at", "mark_at"),
    ("book_at", "book_at"),
    ("mid_at", "mid_at"),
    ("ctx_at", "ctx_at"),
    ("book_latency_ms", "book_lat"),
)
_INT_FIELDS: tuple[tuple[str, str], ...] = (("book_time_ms", "book_time"),)
_DEPTH_FIELDS: tuple[tuple[str, str], ...] = (("depth_bids", "bids"), ("depth_asks", "asks"))

_FIELD_OF: dict[str, str] = dict(_DECIMAL_FIELDS + _FLOAT_FIELDS + _INT_FIELDS + _DEPTH_FIELDS)
_HASH_FIELDS = [f for _, f in _DECIMAL_FIELDS + _FLOAT_FIELDS + _INT_FIELDS]
_HASH_FIELDS_DEPTH = _HASH_FIELDS + [f for _, f in _DEPTH_FIELDS]

# Which receipt timestamp a written attribute refreshes.
_STAMP_OF: dict[str, str] = {
    "mark": "mark_at",
    "oracle": "ctx_at",
    "funding_rate": "ctx_at",
    "premium": "ctx_at",
    "open_interest": "ctx_at",
    "mid": "mid_at",
    "bid": "book_at",
    "ask": "book_at",
    "bid_size": "book_at",
    "ask_size": "book_at",
    "depth_bids": "book_at",
    "depth_asks": "book_at",
}
_KIND_OF_STAMP = {"mark_at": "mark", "ctx_at": "ctx", "mid_at": "mid", "book_at": "book"}

_client: redis.Redis | None = None
_client_lock = threading.Lock()


def client() -> redis.Redis:
    """The process-wide client (thread-safe, pooled; the pool re-creates itself after a fork)."""
    global _client
    c = _client
    if c is None:
        with _client_lock:
            if _client is None:
                _client = redis.Redis.from_url(
                    settings.REDIS_URL,
                    decode_responses=True,
                    socket_timeout=1.0,
                    socket_connect_timeout=1.0,
                    health_check_interval=30,
                    **restart_tolerant(settings.REDIS_URL),
                )
            c = _client
    return c


def quote_key(asset: str) -> str:
    return f"{KEY_PREFIX}:q:{asset}"


def history_key(asset: str) -> str:
    return f"{KEY_PREFIX}:mh:{asset}"


@dataclass(frozen=True, slots=True)
class Quote:
    """One asset's live market data as the feed last received it. Every number is a ``Decimal`` parsed
    from HL's string (``None`` when not received yet); every ``*_at`` is the epoch time (seconds) at
    which OUR feed received the value — ages say how stale each part is.

    ``depth_bids`` / ``depth_asks`` are ``((px, sz), …)`` best first; :func:`get_quote` fills them only
    with ``depth=True`` (quotes handed to feed hooks always carry them)."""

    asset: str
    mark: Decimal | None = None
    oracle: Decimal | None = None
    mid: Decimal | None = None
    bid: Decimal | None = None
    ask: Decimal | None = None
    bid_size: Decimal | None = None
    ask_size: Decimal | None = None
    funding_rate: Decimal | None = None
    premium: Decimal | None = None
    open_interest: Decimal | None = None
    mark_at: float | None = None
    book_at: float | None = None
    mid_at: float | None = None
    ctx_at: float | None = None
    # the feed's market-data latency (median websocket round trip, ms) when the book arrived; HL's
    # own timestamp is book_time_ms, which says nothing about delay (HL's clock is not ours)
    book_latency_ms: float | None = None
    book_time_ms: int | None = None
    depth_bids: tuple[Level, ...] = ()
    depth_asks: tuple[Level, ...] = ()

    @staticmethod
    def _age(at: float | None, now: float | None) -> float:
        if at is None:
            return math.inf
        return max(0.0, (time.time() if now is None else now) - at)

    def book_age(self, now: float | None = None) -> float:
        """Seconds since the book was received (``inf`` if never)."""
        return self._age(self.book_at, now)

    def mark_age(self, now: float | None = None) -> float:
        """Seconds since the mark (and the asset context it came with) was received (``inf`` if never)."""
        return self._age(self.mark_at, now)

    def mid_age(self, now: float | None = None) -> float:
        return self._age(self.mid_at, now)

    def is_book_fresh(self, max_age_s: float, now: float | None = None) -> bool:
        return self.bid is not None and self.ask is not None and self.book_age(now) <= max_age_s

    def is_mark_fresh(self, max_age_s: float, now: float | None = None) -> bool:
        return self.mark is not None and self.mark_age(now) <= max_age_s


# ------------------------------------------------------------------------------------------ reading
def _levels(raw: str | None) -> tuple[Level, ...]:
    if not raw:
        return ()
    out = []
    for pair in raw.split(","):
        px, _, sz = pair.partition(":")
        out.append((Decimal(px), Decimal(sz)))
    return tuple(out)


def _parse(asset: str, v: Sequence[str | None], depth: bool) -> Quote | None:
    # v follows _HASH_FIELDS(_DEPTH): the decimals, the stamps, book_time, then bids/asks
    if not any(v):
        return None
    return Quote(
        asset=asset,
        mark=Decimal(v[0]) if v[0] else None,
        oracle=Decimal(v[1]) if v[1] else None,
        mid=Decimal(v[2]) if v[2] else None,
        bid=Decimal(v[3]) if v[3] else None,
        ask=Decimal(v[4]) if v[4] else None,
        bid_size=Decimal(v[5]) if v[5] else None,
        ask_size=Decimal(v[6]) if v[6] else None,
        funding_rate=Decimal(v[7]) if v[7] else None,
        premium=Decimal(v[8]) if v[8] else None,
        open_interest=Decimal(v[9]) if v[9] else None,
        mark_at=float(v[10]) if v[10] else None,
        book_at=float(v[11]) if v[11] else None,
        mid_at=float(v[12]) if v[12] else None,
        ctx_at=float(v[13]) if v[13] else None,
        book_latency_ms=float(v[14]) if v[14] else None,
        book_time_ms=int(v[15]) if v[15] else None,
        depth_bids=_levels(v[16]) if depth else (),
        depth_asks=_levels(v[17]) if depth else (),
    )


def get_quote(asset: str, *, depth: bool = False) -> Quote | None:
    """The asset's live quote, or ``None`` if the feed never wrote one. One round trip (``HMGET``)."""
    fields = _HASH_FIELDS_DEPTH if depth else _HASH_FIELDS
    values: list[str | None] = client().hmget(quote_key(asset), fields)  # type: ignore[assignment,unused-ignore]
    return _parse(asset, values, depth)


def get_quotes(assets: Iterable[str], *, depth: bool = False) -> dict[str, Quote]:
    """Quotes of several assets in one pipelined round trip; assets never written are left out."""
    names = list(assets)
    if not names:
        return {}
    fields = _HASH_FIELDS_DEPTH if depth else _HASH_FIELDS
    pipe = client().pipeline(transaction=False)
    for asset in names:
        pipe.hmget(quote_key(asset), fields)
    out: dict[str, Quote] = {}
    for asset, values in zip(names, pipe.execute(), strict=True):
        quote = _parse(asset, values, depth)
        if quote is not None:
            out[asset] = quote
    return out


def quote_wait_refill(asset: str, wait_s: float, *, poll_s: float = 0.05) -> Quote | None:
    """The asset's quote once it has a mark and a book, waiting up to ``wait_s`` while Redis is being
    refilled: its ``xbit:md:filled`` marker is absent (Redis came back empty and no feed has written
    yet) or was set less than ``wait_s`` ago (a feed is rewriting its quotes). Without a refill under
    way it answers at once with what it found: a quote missing then is missing for another reason (the
    feed is down, the asset is not quoted), which waiting would not mend."""
    deadline = time.monotonic() + wait_s
    while True:
        quote = get_quote(asset)
        if quote is not None and quote.mark is not None and quote.book_at is not None:
            return quote
        if time.monotonic() >= deadline or not refilling(wait_s):
            return quote
        time.sleep(poll_s)


def refilling(within_s: float) -> bool:
    """Whether Redis is being refilled: no feed has written since it came back empty, or the first
    feed began less than ``within_s`` ago."""
    started = [float(v) for v in client().hvals(FILLED_KEY) if v]
    return not started or time.time() - min(started) < within_s


def mark_history(asset: str, since_s: float, *, now: float | None = None) -> list[tuple[float, Decimal]]:
    """``[(receipt ts, mark), …]`` oldest first, for marks received in the last ``since_s`` seconds
    (at most :data:`MARK_HISTORY_SECONDS` are kept)."""
    start = (time.time() if now is None else now) - since_s
    members = client().zrangebyscore(history_key(asset), start, "+inf", withscores=True)
    return [(score, Decimal(member.partition(":")[2])) for member, score in members]


# ------------------------------------------------------------------------------------------ writing
def _encode(name: str, value: Any) -> str:
    if value is None:
        return ""
    if name in ("depth_bids", "depth_asks") and not isinstance(value, str):
        return ",".join(f"{px}:{sz}" for px, sz in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _mark_member(at: float, mark: Any) -> str:
    return f"{at:.6f}:{mark}"


def quote_update_many(
    updates: Mapping[str, Mapping[str, Any]],
    *,
    at: float | None = None,
    notify: bool = True,
    record_mark: bool | Mapping[str, bool] = True,
    feed: str | None = None,
) -> bool:
    """Write partial quotes for several assets in one pipeline (the feed's batch path).

    ``updates`` maps an asset to ``{attribute: value}`` with :class:`Quote` attribute names (values
    are HL strings or Decimals; depth as ``[(px, sz), …]`` or pre-encoded ``"px:sz,…"``; ``None``
    clears). Each written group gets its receipt stamp (``mark_at``, ``ctx_at``, ``mid_at``,
    ``book_at``) set to ``at`` unless given explicitly. A mark is also added to the mark history
    unless ``record_mark`` (a bool, or per asset) says not to.

    ``feed``: the writing feed's name; its field of :data:`FILLED_KEY` is set in the same round trip
    if absent. Returns True when it was absent — this Redis holds none of that feed's earlier writes
    (it came back empty, or this is the feed's first write), so the feed should write all it holds."""
    if not updates:
        return False
    at = time.time() if at is None else at
    pipe = client().pipeline(transaction=False)
    if feed is not None:
        pipe.hsetnx(FILLED_KEY, feed, repr(at))
    for asset, fields in updates.items():
        mapping: dict[str, str] = {}
        stamps: set[str] = set()
        for name, value in fields.items():
            field = _FIELD_OF.get(name)
            if field is None:
                raise ValueError(f"unknown quote attribute {name!r}")
            mapping[field] = _encode(name, value)
            stamp = _STAMP_OF.get(name)
            if stamp is not None:
                stamps.add(stamp)
        for stamp in stamps:
            mapping.setdefault(stamp, repr(at))
        if not mapping:
            continue
        pipe.hset(quote_key(asset), mapping=mapping)
        mark = fields.get("mark")
        keep = record_mark.get(asset, True) if isinstance(record_mark, Mapping) else record_mark
        if mark is not None and keep:
            key = history_key(asset)
            pipe.zadd(key, {_mark_member(at, mark): at})
            pipe.zremrangebyscore(key, "-inf", f"({at - MARK_HISTORY_SECONDS}")
        if notify:
            kinds = sorted(_KIND_OF_STAMP[s] for s in stamps)
            pipe.publish(UPDATES_CHANNEL, json.dumps({"asset": asset, "kinds": kinds, "at": at}))
    answers = pipe.execute()
    return feed is not None and bool(answers[0])


def quote_update(asset: str, *, at: float | None = None, notify: bool = True, **fields: Any) -> None:
    """Partial update of one asset's quote, e.g. ``quote_update("BTC", mark="100000.0")`` or a book-
    only update. See :func:`quote_update_many`."""
    quote_update_many({asset: fields}, at=at, notify=notify)


def quote_delete(assets: Iterable[str]) -> None:
    """Forget quotes and mark histories (tests; a delisted asset's leftovers)."""
    keys = [k for a in assets for k in (quote_key(a), history_key(a))]
    if keys:
        client().delete(*keys)


# ------------------------------------------------------------------------------------------ latency
def latency_key(feed: str) -> str:
    return f"{KEY_PREFIX}:rtt:{feed}"


@dataclass(frozen=True, slots=True)
class FeedLatency:
    """What a feed measured of its round trips to HL, every time on our clock (never HL's)."""

    round_trips_ms: tuple[float, ...]  # the most recent ones, oldest first
    measured_at: float | None  # epoch seconds of the last pong
    pending_since: float | None  # epoch seconds at which the ping now unanswered was sent

    def unanswered_ms(self, now: float | None = None) -> float | None:
        if self.pending_since is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self.pending_since) * 1000

    def age(self, now: float | None = None) -> float:
        """Seconds since the feed last reported (a pong, or a ping sent): old means no feed measures."""
        latest = max(self.measured_at or 0.0, self.pending_since or 0.0)
        if not latest:
            return math.inf
        return max(0.0, (time.time() if now is None else now) - latest)


def latency_update(
    feed: str,
    *,
    round_trips_ms: Sequence[float] | None = None,
    measured_at: float | None = None,
    pending_since: float | None = None,
) -> None:
    """The feed reports a ping sent (``pending_since``) or a pong (``round_trips_ms``, ``measured_at``,
    and no ping pending). One ``HSET``."""
    mapping = {"pending": repr(pending_since) if pending_since is not None else ""}
    if round_trips_ms is not None:
        mapping["rtts"] = ",".join(f"{v:.3f}" for v in round_trips_ms)
        mapping["at"] = repr(measured_at if measured_at is not None else time.time())
    client().hset(latency_key(feed), mapping=mapping)


def latency_clear(feed: str) -> None:
    """Forget the measurements (the feed's socket is gone: a new one is measured afresh)."""
    client().delete(latency_key(feed))


def get_latency(feed: str) -> FeedLatency | None:
    """The feed's latest round trips, or ``None`` if it never measured one."""
    raw = client().hmget(latency_key(feed), ["rtts", "at", "pending"])
    rtts, at, pending = (v or "" for v in raw)  # type: ignore[union-attr,unused-ignore]
    if not (rtts or pending):
        return None
    return FeedLatency(
        round_trips_ms=tuple(float(v) for v in rtts.split(",")) if rtts else (),
        measured_at=float(at) if at else None,
        pending_since=float(pending) if pending else None,
    )


# ------------------------------------------------------------------------------------------ listening
@dataclass(frozen=True, slots=True)
class QuoteUpdateEvent:
    asset: str
    kinds: tuple[str, ...]
    at: float


class QuoteListener:
    """Subscribe to quote-update notifications from another process (pub/sub: at most once, a slow
    reader may miss some — re-read :func:`get_quote` for the current state)::

        with QuoteListener() as updates:
            event = updates.get(timeout=1.0)   # QuoteUpdateEvent | None
    """

    def __init__(self, assets: Iterable[str] | None = None) -> None:
        self._assets = set(assets) if assets is not None else None
        self._pubsub: Any = None

    def __enter__(self) -> QuoteListener:
        self._pubsub = client().pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self._pubsub.subscribe(UPDATES_CHANNEL)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pubsub is not None:
            self._pubsub.close()
            self._pubsub = None

    def get(self, timeout: float = 1.0) -> QuoteUpdateEvent | None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            message = self._pubsub.get_message(timeout=left)
            if not message or message.get("type") != "message":
                continue
            data = json.loads(message["data"])
            if self._assets is None or data["asset"] in self._assets:
                return QuoteUpdateEvent(data["asset"], tuple(data["kinds"]), float(data["at"]))

    def __iter__(self) -> Iterator[QuoteUpdateEvent]:
        while self._pubsub is not None:
            event = self.get(timeout=1.0)
            if event is not None:
                yield event
