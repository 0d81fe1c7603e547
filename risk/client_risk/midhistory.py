"""A compact history of Hyperliquid's mid per asset, for markouts.

The feed keeps only the latest mid (and an hour of marks); markouts need the mid at a fill and 1 s to
5 min after it. The markout process samples every asset's mid from the quote cache about twice a
second and keeps the samples in a Redis sorted set per asset (member ``"<ts>:<mid>"``, score = the
feed's receipt time of that mid), trimmed to :data:`MID_HISTORY_SECONDS`. A markout takes the last
sample at or before its instant, if one is at most :data:`MAX_SAMPLE_AGE_S` old.

Redis is a cache here: losing it loses the markouts of fills whose horizons fall in the gap (they are
counted as missing), never money."""

from __future__ import annotations

import bisect
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from trading.marketdata import KEY_PREFIX, client, get_quotes

MID_HISTORY_SECONDS = 2 * 3600
MAX_SAMPLE_AGE_S = 5.0
MAX_QUOTE_AGE_S = 10.0

Series = tuple[list[float], list[Decimal]]


def mid_key(asset: str) -> str:
    return f"{KEY_PREFIX}:midh:{asset}"


def mid_record_many(samples: Mapping[str, Iterable[tuple[float, Decimal]]]) -> None:
    """Add ``(receipt ts, mid)`` samples per asset (one pipeline); the same sample twice is one member."""
    pipe = client().pipeline(transaction=False)
    for asset, points in samples.items():
        members = {f"{at:.3f}:{mid}": at for at, mid in points}
        if not members:
            continue
        key = mid_key(asset)
        pipe.zadd(key, members)
        pipe.zremrangebyscore(key, "-inf", f"({max(members.values()) - MID_HISTORY_SECONDS}")
    pipe.execute()


def mid_record(asset: str, at: float, mid: Decimal) -> None:
    mid_record_many({asset: [(at, mid)]})


def mid_sample(assets: Iterable[str], *, at: float | None = None) -> int:
    """Copy each asset's mid in force now (or the book's middle when no mid came) into the history,
    stamped with the sampling time: an unchanged mid is still the mid. A quote the feed has not
    refreshed for :data:`MAX_QUOTE_AGE_S` is not sampled (no history beats a stale one). Returns how
    many samples were written."""
    at = time.time() if at is None else at
    samples: dict[str, list[tuple[float, Decimal]]] = {}
    for asset, quote in get_quotes(list(assets)).items():
        if quote.mid is not None and quote.mid_age(at) <= MAX_QUOTE_AGE_S:
            samples[asset] = [(at, quote.mid)]
        elif quote.bid is not None and quote.ask is not None and quote.book_age(at) <= MAX_QUOTE_AGE_S:
            samples[asset] = [(at, (quote.bid + quote.ask) / 2)]
    if samples:
        mid_record_many(samples)
    return len(samples)


def mid_series(asset: str, start: float, end: float) -> Series:
    """The samples between ``start`` and ``end`` (epoch s), oldest first, as two parallel lists."""
    members = client().zrangebyscore(mid_key(asset), start, end, withscores=True)
    times = [score for _member, score in members]
    mids = [Decimal(member.partition(":")[2]) for member, _score in members]
    return times, mids


def mid_at(series: Series, at: float, *, max_age_s: float = MAX_SAMPLE_AGE_S) -> Decimal | None:
    """The last sample at or before ``at`` if it is at most ``max_age_s`` old, else None."""
    times, mids = series
    i = bisect.bisect_right(times, at) - 1
    if i < 0 or at - times[i] > max_age_s:
        return None
    return mids[i]


def mid_newest(asset: str) -> float | None:
    """Receipt time of the newest sample (how far the history reaches)."""
    newest: Any = client().zrange(mid_key(asset), -1, -1, withscores=True)
    return float(newest[0][1]) if newest else None


def mid_clear(assets: Iterable[str]) -> None:
    keys = [mid_key(a) for a in assets]
    if keys:
        client().delete(*keys)
