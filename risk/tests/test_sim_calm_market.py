"""The simulator's default market is a calm one: two hours of its marks (what the feed hands the breakers)
never move as much as the volatility breaker's default (spec 05: 5 % within an hour) or the price-jump
breaker's, with a wide margin, for every asset and several seeds. Turbulence is what the control API
injects (shock, jump, price), not what a demo's idle hour does by itself."""

from __future__ import annotations

from collections import deque
from decimal import Decimal

import pytest

from risk import breaker_rules as rules
from risk.models import RiskConfig
from sandbox.hyperliquid.config import parse_config
from sandbox.hyperliquid.engine import Engine

HOURS = 2
MARK_EVERY_S = 3  # the simulator's mark interval: every mark it computes is sampled
MARGIN = Decimal("0.6")  # a calm hour stays under 60 % of the breaker's threshold


def default(field: str) -> Decimal:
    return Decimal(str(RiskConfig._meta.get_field(field).default))


def max_window_move(marks: list[Decimal], window: int) -> Decimal:
    """The largest (max − min) / min over every run of ``window`` consecutive marks (monotonic deques),
    i.e. ``breaker_rules.price_range_move`` at every moment of the run."""
    highs: deque[int] = deque()
    lows: deque[int] = deque()
    worst = Decimal(0)
    for i, mark in enumerate(marks):
        while highs and marks[highs[-1]] <= mark:
            highs.pop()
        highs.append(i)
        while lows and marks[lows[-1]] >= mark:
            lows.pop()
        lows.append(i)
        if highs[0] <= i - window:
            highs.popleft()
        if lows[0] <= i - window:
            lows.popleft()
        worst = max(worst, rules.price_range_move([marks[lows[0]], marks[highs[0]]]))
    return worst


@pytest.mark.parametrize("seed", [7, 1, 42])
def test_two_hours_of_the_default_market_stay_far_from_the_volatility_and_price_jump_breakers(
    seed: int,
) -> None:
    engine = Engine(parse_config(seed, {"clock": "manual"}))
    marks: dict[str, list[Decimal]] = {coin: [engine.mark[coin]] for coin in engine.coins}
    for _ in range(HOURS * 3600 // MARK_EVERY_S):
        engine.advance(MARK_EVERY_S)
        for coin in engine.coins:
            marks[coin].append(engine.mark[coin])

    volatility, jump = default("volatility_move"), default("price_jump_move")
    window = 3600 // MARK_EVERY_S
    figures = []
    for coin, series in marks.items():
        hourly = max_window_move(series, window)
        step = max(abs(b - a) / a for a, b in zip(series, series[1:], strict=False))
        figures.append(f"{coin} {hourly * 100:.2f}%/h {step * 100:.3f}%/mark")
        assert hourly < volatility * MARGIN, (coin, hourly)
        assert step < jump * MARGIN / 10, (coin, step)
        # and it moves: a realistic market, not a frozen one
        assert hourly > Decimal("0.002"), (coin, hourly)
    print(f"\nseed {seed}, worst 60-min move and worst single mark update: " + "; ".join(figures))
