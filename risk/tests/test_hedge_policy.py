"""Spec 05's hedge policy, tier by tier, plus properties over random exposures."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from risk.hedge_policy import (
    HedgePolicy,
    allocate,
    health_level,
    leverage_for,
    plan_order,
    round_price_away,
    split_across_book,
    stop_loss_triggered,
    target_hedge,
)
from trading.margin import is_valid_price

D = Decimal
P = HedgePolicy()


@pytest.mark.parametrize(
    ("exposure", "target", "stop"),
    [
        (D(99_999), D(0), False),
        (D(100_000), D(50_000), False),
        (D(103_000), D(51_500), False),  # the example: 0 → 103k triggers a 51.5k hedge
        (D(-300_000), D(-150_000), False),  # users net short → short hedge
        (D(500_000), D(400_000), False),
        (D(1_000_000), D(800_000), False),
        (D(1_000_001), D("800000.8"), True),  # above 1M: 80 % and stop internalizing
    ],
)
def test_tiers(exposure: Decimal, target: Decimal, stop: bool) -> None:
    result = target_hedge(exposure, P)
    assert result.notional == target and result.stop_internalizing is stop


@pytest.mark.parametrize(
    ("notional", "leverage"),
    [(D(100_000), 2), (D(300_000), 2), (D(300_001), 3), (D(600_000), 3), (D(600_001), 5), (D(10**8), 5)],
)
def test_leverage_ladder_with_a_5x_cap(notional: Decimal, leverage: int) -> None:
    assert leverage_for(notional, P) == leverage
    assert leverage_for(notional, HedgePolicy(max_leverage=4)) <= 4
    with pytest.raises(ValueError):
        HedgePolicy(max_leverage=6)


def test_the_first_hedge_is_the_whole_gap_at_mark_plus_slippage() -> None:
    plan = plan_order(target=D(51_500), current=D(0), mark=D(80_000), sz_decimals=5, policy=P)
    assert plan is not None and plan.is_buy and not plan.reduces
    assert plan.size == D("0.64375") and plan.limit_price == D(80_800) and plan.leverage == 2


def test_a_gap_below_the_minimum_is_ignored() -> None:
    assert plan_order(target=D(51_500), current=D(50_900), mark=D(80_000), sz_decimals=5, policy=P) is None
    assert (
        plan_order(target=D(51_500), current=D(50_400), mark=D(80_000), sz_decimals=5, policy=P) is not None
    )


def test_de_hedging_is_limited_per_minute() -> None:
    plan = plan_order(target=D(0), current=D(800_000), mark=D(80_000), sz_decimals=5, policy=P)
    assert plan is not None and plan.reduces and not plan.is_buy and plan.notional == D(-200_000)
    assert (
        plan_order(
            target=D(0),
            current=D(800_000),
            mark=D(80_000),
            sz_decimals=5,
            policy=P,
            dehedge_used_last_minute=D(200_000),
        )
        is None
    )
    partial = plan_order(
        target=D(0),
        current=D(800_000),
        mark=D(80_000),
        sz_decimals=5,
        policy=P,
        dehedge_used_last_minute=D(150_000),
    )
    assert partial is not None and partial.notional == D(-50_000)


def test_growing_the_hedge_is_not_rate_limited() -> None:
    plan = plan_order(
        target=D(800_000),
        current=D(0),
        mark=D(80_000),
        sz_decimals=5,
        policy=P,
        dehedge_used_last_minute=D(200_000),
    )
    assert plan is not None and plan.notional == D(800_000)


def test_capacity_covers_the_largest_exposures_first() -> None:
    result = allocate({"BTC": D(400_000), "ETH": D(-300_000)}, available_margin=D(200_000), policy=P)
    # BTC 400k at 3x needs 133,333.33; ETH 300k at 2x needs 150,000: only BTC fits
    assert result.covered == {"BTC": D(400_000)} and result.uncovered == {"ETH": D(-300_000)}
    assert result.top_up > 0


def test_a_thin_book_splits_the_order() -> None:
    levels = [(D(100), D(1)), (D(101), D(1)), (D(105), D(10))]
    assert split_across_book(D(5), levels, limit=D(101), is_buy=True) == [D(2), D(2), D(1)]
    assert split_across_book(D(1), levels, limit=D(101), is_buy=True) == [D(1)]


def test_stop_loss_and_health_levels() -> None:
    assert stop_loss_triggered(unrealized_pnl=D(-501), margin=D(1000), policy=P)
    assert not stop_loss_triggered(unrealized_pnl=D(-500), margin=D(1000), policy=P)
    assert [health_level(x) for x in (None, D(6), D(4), D("2.5"), D("1.7"), D("1.4"))] == [
        "safe",
        "safe",
        "watch",
        "alert",
        "deleverage",
        "halt",
    ]


exposures = st.decimals(min_value=D(-5_000_000), max_value=D(5_000_000), places=2)


@given(exposure=exposures)
def test_target_never_exceeds_80_percent_and_follows_the_users_direction(exposure: Decimal) -> None:
    target = target_hedge(exposure, P)
    assert abs(target.notional) <= abs(exposure) * D("0.8")
    assert target.notional == 0 or (target.notional > 0) == (exposure > 0)


@given(
    exposure=exposures,
    current=exposures,
    mark=st.decimals(min_value=D("0.5"), max_value=D(200_000), places=2),
    used=st.decimals(min_value=D(0), max_value=D(300_000), places=0),
)
@settings(max_examples=300)
def test_a_plan_never_overshoots_and_respects_the_budget(
    exposure: Decimal, current: Decimal, mark: Decimal, used: Decimal
) -> None:
    target = target_hedge(exposure, P).notional
    plan = plan_order(
        target=target, current=current, mark=mark, sz_decimals=2, policy=P, dehedge_used_last_minute=used
    )
    if plan is None:
        return
    assert plan.size * mark <= abs(target - current) + D("0.000001")
    assert (plan.notional > 0) == (target > current)
    if plan.reduces:
        assert abs(plan.notional) <= max(D(0), P.dehedge_per_minute - used)
    assert plan.leverage <= 5
    assert is_valid_price(plan.limit_price, 2)


@given(
    px=st.decimals(min_value=D("0.001"), max_value=D(500_000), places=6),
    szd=st.integers(min_value=0, max_value=5),
    up=st.booleans(),
)
def test_hedge_prices_are_valid_for_hl_and_rounded_away_from_the_market(
    px: Decimal, szd: int, up: bool
) -> None:
    value = round_price_away(px, szd, up=up)
    assert is_valid_price(value, szd)
    tick = Decimal(1).scaleb(-(6 - szd))
    assert (value >= px) if up else (value <= px or value == tick)


@given(
    targets=st.dictionaries(st.sampled_from(["BTC", "ETH", "SOL", "ARB"]), exposures, max_size=4),
    margin=st.decimals(min_value=D(0), max_value=D(2_000_000), places=0),
)
def test_allocation_never_uses_more_margin_than_available(
    targets: dict[str, Decimal], margin: Decimal
) -> None:
    result = allocate(targets, available_margin=margin, policy=P)
    used = sum((abs(n) / leverage_for(n, P) for n in result.covered.values() if n), D(0))
    assert used <= margin
    assert set(result.covered) | set(result.uncovered) == set(targets)
