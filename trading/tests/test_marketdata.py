"""The Redis market-data cache: exact Decimals, partial updates with receipt stamps, one round trip per
read, the mark history, and update notifications. Real Redis (the test instance), no mocks."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import redis

from trading import marketdata
from trading.marketdata import QuoteListener, get_quote, get_quotes, mark_history, quote_update

_n = itertools.count(1)


@pytest.fixture
def asset() -> Iterator[str]:
    """A fresh asset name per test, forgotten afterwards (tests share the Redis instance)."""
    name = f"T{next(_n)}X{int(time.time() * 1000) % 100000}"
    yield name
    marketdata.quote_delete([name])


def test_a_quote_round_trips_hl_strings_as_exact_decimals(asset: str) -> None:
    at = time.time()
    quote_update(
        asset,
        at=at,
        mark="100123.5",
        oracle="100100.0",
        funding_rate="0.0000125",
        premium="-0.00031",
        open_interest="1234.56789",
    )
    quote_update(asset, at=at, bid="100120", ask="100127", bid_size="0.5", ask_size="1.25")
    q = get_quote(asset)
    assert q is not None
    assert q.mark == Decimal("100123.5") and q.oracle == Decimal("100100.0")
    assert q.funding_rate == Decimal("0.0000125") and q.premium == Decimal("-0.00031")
    assert q.open_interest == Decimal("1234.56789")
    assert (q.bid, q.ask, q.bid_size, q.ask_size) == (
        Decimal("100120"),
        Decimal("100127"),
        Decimal("0.5"),
        Decimal("1.25"),
    )
    assert q.mid is None and q.mid_at is None  # never written: unknown, not zero
    assert q.mark_at == pytest.approx(at) and q.book_at == pytest.approx(at) and q.ctx_at == pytest.approx(at)


def test_partial_updates_keep_the_other_fields_and_stamp_only_their_group(asset: str) -> None:
    quote_update(asset, at=1000.0, mark="10", oracle="10")
    quote_update(asset, at=1005.0, bid="9.9", ask="10.1")
    q = get_quote(asset)
    assert q is not None and q.mark == Decimal(10) and q.bid == Decimal("9.9")
    assert q.mark_at == 1000.0 and q.book_at == 1005.0
    assert q.mark_age(now=1010.0) == 10.0 and q.book_age(now=1010.0) == 5.0
    assert q.is_book_fresh(5.0, now=1010.0) and not q.is_book_fresh(4.9, now=1010.0)
    assert not q.is_mark_fresh(9.0, now=1010.0)
    quote_update(asset, at=1006.0, bid=None)  # an emptied side reads as unknown
    q = get_quote(asset)
    assert q is not None and q.bid is None and not q.is_book_fresh(60, now=1006.0)


def test_an_asset_never_written_has_no_quote_and_infinite_ages(asset: str) -> None:
    assert get_quote(asset) is None
    empty = marketdata.Quote(asset)
    assert empty.book_age() == float("inf") and not empty.is_mark_fresh(1e9)


def test_get_quotes_pipelines_and_skips_unknown_assets(asset: str) -> None:
    other = asset + "B"
    try:
        quote_update(asset, mark="1.5")
        quote_update(other, mark="2.5")
        quotes = get_quotes([asset, other, asset + "NONE"])
        assert set(quotes) == {asset, other}
        assert quotes[other].mark == Decimal("2.5")
        assert get_quotes([]) == {}
    finally:
        marketdata.quote_delete([other])


def test_depth_is_read_only_when_asked(asset: str) -> None:
    quote_update(
        asset,
        depth_bids=[(Decimal("99.5"), Decimal("3")), (Decimal("99.4"), Decimal("7.25"))],
        depth_asks="100.5:2,100.6:4.5",
        bid="99.5",
        ask="100.5",
    )
    lean = get_quote(asset)
    full = get_quote(asset, depth=True)
    assert lean is not None and lean.depth_bids == ()
    assert full is not None
    assert full.depth_bids == ((Decimal("99.5"), Decimal(3)), (Decimal("99.4"), Decimal("7.25")))
    assert full.depth_asks == ((Decimal("100.5"), Decimal(2)), (Decimal("100.6"), Decimal("4.5")))


def test_unknown_attributes_are_refused(asset: str) -> None:
    with pytest.raises(ValueError, match="unknown quote attribute"):
        quote_update(asset, markk="1")


def test_mark_history_keeps_an_hour_and_filters_by_age(asset: str) -> None:
    now = time.time()
    quote_update(asset, at=now - 4000, mark="90")  # older than an hour: trimmed by later writes
    quote_update(asset, at=now - 1800, mark="95")
    quote_update(asset, at=now - 10, mark="100")
    quote_update(asset, at=now - 5, mark="100")
    history = mark_history(asset, 3600, now=now)
    assert [m for _, m in history] == [Decimal(95), Decimal(100), Decimal(100)]
    assert history[0][0] == pytest.approx(now - 1800, abs=1e-3)
    assert [m for _, m in mark_history(asset, 60, now=now)] == [Decimal(100), Decimal(100)]
    assert marketdata.client().zcard(marketdata.history_key(asset)) == 3
    # the feed may skip recording an unchanged mark
    marketdata.quote_update_many({asset: {"mark": "100"}}, at=now, record_mark=False)
    assert len(mark_history(asset, 3600, now=now)) == 3


def test_listeners_are_notified_of_updates(asset: str) -> None:
    with QuoteListener(assets=[asset]) as updates:
        threading.Timer(0.05, lambda: quote_update(asset, bid="1", ask="2", mark="1.5")).start()
        event = updates.get(timeout=3)
    assert event is not None and event.asset == asset
    assert set(event.kinds) == {"book", "mark"}


class CountingConnection(redis.Connection):
    """Counts what crosses the socket: one send + one read per round trip (other clients of the shared
    test Redis cannot disturb the count, unlike INFO commandstats)."""

    sends = 0
    reads = 0

    def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        CountingConnection.sends += 1
        super().send_packed_command(*args, **kwargs)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        CountingConnection.reads += 1
        return super().read_response(*args, **kwargs)


def test_get_quote_is_one_round_trip_and_fast(
    asset: str, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    quote_update(asset, mark="100000.5", oracle="100001", mid="100000.25", funding_rate="0.00001")
    quote_update(asset, bid="100000", ask="100000.5", bid_size="1.2", ask_size="0.8")
    pool = redis.ConnectionPool.from_url(
        settings.REDIS_URL, decode_responses=True, connection_class=CountingConnection
    )
    monkeypatch.setattr(marketdata, "_client", redis.Redis(connection_pool=pool))
    get_quote(asset)  # connect (the handshake is not a per-call cost)
    CountingConnection.sends = CountingConnection.reads = 0
    for _ in range(100):
        assert get_quote(asset) is not None
    assert (CountingConnection.sends, CountingConnection.reads) == (100, 100)
    CountingConnection.sends = CountingConnection.reads = 0
    assert len(get_quotes([asset, asset + "NONE", asset])) == 1
    assert CountingConnection.sends == 1  # a pipeline: one write of three HMGETs
    pool.disconnect()
    monkeypatch.undo()

    n = 1000
    started = time.perf_counter()
    for _ in range(n):
        get_quote(asset)
    per_call_us = (time.perf_counter() - started) / n * 1e6
    started = time.perf_counter()
    for _ in range(n // 10):
        get_quotes([asset] * 10)
    per_batch_us = (time.perf_counter() - started) / (n // 10) * 1e6
    print(f"\nget_quote: {per_call_us:.0f} µs/call; get_quotes(10 assets): {per_batch_us:.0f} µs/call")
    assert per_call_us < 2000


def test_a_quote_missing_while_redis_is_refilled_is_waited_for_and_otherwise_not(asset: str) -> None:
    redis = marketdata.client()
    redis.delete(marketdata.FILLED_KEY)  # Redis came back empty; no feed has written yet

    def feed_writes() -> None:
        time.sleep(0.3)
        marketdata.quote_update_many({asset: {"mark": "101", "bid": "100", "ask": "102"}}, feed="t")

    writer = threading.Thread(target=feed_writes)
    writer.start()
    started = time.monotonic()
    quote = marketdata.quote_wait_refill(asset, 2.0)
    took = time.monotonic() - started
    writer.join()
    assert quote is not None and quote.mark == Decimal("101") and 0.25 <= took < 1.0, took

    # the feed began filling long ago: a quote missing now is missing for another reason
    marketdata.quote_delete([asset])
    redis.hset(marketdata.FILLED_KEY, "t", repr(time.time() - 60))
    started = time.monotonic()
    assert marketdata.quote_wait_refill(asset, 2.0) is None
    assert time.monotonic() - started < 0.1
    # a feed that began a moment ago: still refilling, waited for up to the bound
    redis.hset(marketdata.FILLED_KEY, "t", repr(time.time() - 0.5))
    started = time.monotonic()
    assert marketdata.quote_wait_refill(asset, 1.0) is None
    assert 0.4 <= time.monotonic() - started < 0.8


def test_the_feeds_marker_says_when_redis_holds_none_of_its_writes(asset: str) -> None:
    marketdata.client().delete(marketdata.FILLED_KEY)
    assert marketdata.quote_update_many({asset: {"mark": "1"}}, feed="a") is True
    assert marketdata.quote_update_many({asset: {"mark": "2"}}, feed="a") is False
    assert marketdata.quote_update_many({asset: {"mark": "3"}}, feed="b") is True  # each feed its own
    assert marketdata.quote_update_many({asset: {"mark": "4"}}) is False  # no feed named: no marker
