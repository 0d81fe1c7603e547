"""OHLCV candles per coin and interval, built from the mid price each step plus traded volume."""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Any

from sandbox.hyperliquid.numbers import ZERO, fs

INTERVALS: dict[str, int] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
    "1M": 2_592_000_000,  # 30 days (the sandbox does not align months to the calendar)
}


class Candle:
    __slots__ = ("c", "h", "l", "n", "o", "t", "v")

    def __init__(self, t: int, px: Decimal):
        self.t = t
        self.o = self.h = self.l = self.c = px
        self.v = ZERO
        self.n = 0

    def wire(self, coin: str, interval: str) -> dict[str, Any]:
        return {
            "t": self.t,
            "T": self.t + INTERVALS[interval] - 1,
            "s": coin,
            "i": interval,
            "o": fs(self.o),
            "c": fs(self.c),
            "h": fs(self.h),
            "l": fs(self.l),
            "v": fs(self.v),
            "n": self.n,
        }


class CandleStore:
    def __init__(self, coins: list[str], keep: int = 5000):
        self.series: dict[tuple[str, str], deque[Candle]] = {
            (c, i): deque(maxlen=keep) for c in coins for i in INTERVALS
        }

    def _current(self, coin: str, interval: str, t: int, px: Decimal) -> Candle:
        ms = INTERVALS[interval]
        start = t - t % ms
        dq = self.series[(coin, interval)]
        if dq and dq[-1].t == start:
            return dq[-1]
        if dq and dq[-1].t > start:  # clock never goes back, but be safe
            return dq[-1]
        prev_close = dq[-1].c if dq else px
        cur = Candle(start, prev_close)
        dq.append(cur)
        return cur

    def update(self, coin: str, t: int, px: Decimal, sz: Decimal | None = None) -> None:
        for interval in INTERVALS:
            c = self._current(coin, interval, t, px)
            if px > c.h:
                c.h = px
            if px < c.l:
                c.l = px
            c.c = px
            if sz is not None:
                c.v += sz
                c.n += 1

    def latest(self, coin: str, interval: str) -> Candle | None:
        dq = self.series.get((coin, interval))
        return dq[-1] if dq else None

    def snapshot(self, coin: str, interval: str, start: int, end: int) -> list[dict[str, Any]]:
        dq = self.series.get((coin, interval))
        if not dq:
            return []
        ms = INTERVALS[interval]
        out = [c.wire(coin, interval) for c in dq if c.t + ms > start and c.t <= end]
        return out[-5000:]
