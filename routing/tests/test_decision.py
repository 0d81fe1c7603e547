"""Spec 01's decision table, boundary by boundary, plus properties over random inputs."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.decision import (
    AssetRouting,
    AutoSwitchPolicy,
    Mode,
    Reason,
    Route,
    auto_mode,
    decide,
)

D = Decimal
BASE = AssetRouting(
    mode=Mode.NORMAL_MODE,
    normal_threshold=D(10_000),
    betting_threshold=D(50_000),
    internalization_enabled=True,
    max_internal_order_notional=D(100_000),
)


@pytest.mark.parametrize(
    ("notional", "route"),
    [(D("9999.99"), Route.INTERNAL), (D("10000"), Route.INTERNAL), (D("10000.01"), Route.HYPERLIQUID)],
)
def test_normal_mode_internalizes_up_to_and_including_the_threshold(notional: Decimal, route: Route) -> None:
    decision = decide(notional=notional, config=BASE)
    assert decision.route is route and decision.reason == Reason.THRESHOLD and decision.threshold == D(10_000)


@pytest.mark.parametrize(
    ("notional", "route"),
    [(D("50000"), Route.INTERNAL), (D("50000.000001"), Route.HYPERLIQUID), (D("20000"), Route.INTERNAL)],
)
def test_betting_mode_uses_the_betting_threshold(notional: Decimal, route: Route) -> None:
    assert decide(notional=notional, config=replace(BASE, mode=Mode.BETTING_MODE)).route is route


def test_hl_mode_sends_everything_to_hl() -> None:
    decision = decide(notional=D(10), config=replace(BASE, mode=Mode.HL_MODE))
    assert (decision.route, decision.reason) == (Route.HYPERLIQUID, Reason.MODE)


def test_an_asset_off_the_whitelist_is_never_internalized() -> None:
    decision = decide(notional=D(10), config=replace(BASE, internalization_enabled=False))
    assert (decision.route, decision.reason) == (Route.HYPERLIQUID, Reason.NOT_WHITELISTED)


def test_the_global_switch_off_sends_everything_to_hl() -> None:
    decision = decide(notional=D(10), config=replace(BASE, global_internalization_enabled=False))
    assert decision.reason == Reason.INTERNALIZATION_DISABLED


@pytest.mark.parametrize(
    "reason",
    [
        "volatility",
        "hl_latency",
        "stale_price",
        "net_exposure_limit",
        "hedge_capacity",
        "reserve_low",
        "daily_loss",
    ],
)
def test_every_force_hl_rule_wins_over_the_threshold(reason: str) -> None:
    decision = decide(notional=D(10), config=replace(BASE, force_hl_reasons=(reason,)))
    assert (decision.route, decision.reason) == (Route.HYPERLIQUID, reason)


def test_force_hl_wins_even_in_betting_mode_and_over_the_whitelist() -> None:
    config = replace(
        BASE, mode=Mode.BETTING_MODE, internalization_enabled=False, force_hl_reasons=("volatility",)
    )
    assert decide(notional=D(10), config=config).reason == "volatility"


def test_degraded_mode_sends_everything_to_hl() -> None:
    assert decide(notional=D(10), config=replace(BASE, degraded=True)).reason == Reason.DEGRADED


def test_the_hard_internal_cap_applies_whatever_the_mode() -> None:
    config = replace(BASE, mode=Mode.BETTING_MODE, max_internal_order_notional=D(10_000))
    decision = decide(notional=D("10000.01"), config=config)
    assert (decision.route, decision.reason) == (Route.HYPERLIQUID, Reason.MAX_INTERNAL_ORDER_NOTIONAL)
    assert decide(notional=D(10_000), config=config).route is Route.INTERNAL


def test_a_lowered_threshold_factor_shrinks_the_internal_band() -> None:
    config = replace(BASE, threshold_factor=D("0.5"))
    assert decide(notional=D(5_000), config=config).route is Route.INTERNAL
    assert decide(notional=D("5000.01"), config=config).route is Route.HYPERLIQUID


def test_no_venue_when_hl_is_halted_and_the_order_cannot_be_internalized() -> None:
    decision = decide(notional=D(20_000), config=replace(BASE, hl_halted=True))
    assert (decision.route, decision.reason) == (Route.NONE, Reason.HL_HALTED)
    # a small order still internalizes: the halt only closes the HL venue
    assert decide(notional=D(100), config=replace(BASE, hl_halted=True)).route is Route.INTERNAL


def test_a_user_outside_the_canary_cohort_goes_to_hl() -> None:
    assert decide(notional=D(10), config=BASE, in_cohort=False).reason == Reason.COHORT


money = st.decimals(min_value=D("0.01"), max_value=D("10000000"), places=2)


@given(notional=money, threshold=money, mode=st.sampled_from(list(Mode)))
def test_internal_only_when_every_gate_is_open_and_under_the_threshold(
    notional: Decimal, threshold: Decimal, mode: Mode
) -> None:
    config = replace(
        BASE,
        mode=mode,
        normal_threshold=threshold,
        betting_threshold=threshold,
        max_internal_order_notional=D(10**9),
    )
    decision = decide(notional=notional, config=config)
    expected_internal = mode is not Mode.HL_MODE and notional <= threshold
    assert (decision.route is Route.INTERNAL) == expected_internal
    assert decision.mode is mode


@given(
    notional=money,
    reasons=st.lists(st.sampled_from(["volatility", "daily_loss", "reserve_low"]), min_size=1, max_size=3),
)
def test_any_force_hl_reason_means_never_internal(notional: Decimal, reasons: list[str]) -> None:
    assert (
        decide(notional=notional, config=replace(BASE, force_hl_reasons=tuple(reasons))).route
        is Route.HYPERLIQUID
    )


POLICY = AutoSwitchPolicy(hl_trigger=D(800_000), betting_trigger=D(50_000))


@pytest.mark.parametrize(
    ("current", "exposure", "expected"),
    [
        (Mode.NORMAL_MODE, D(800_000), Mode.HL_MODE),
        (Mode.NORMAL_MODE, D(799_999), Mode.NORMAL_MODE),
        (Mode.HL_MODE, D(700_000), Mode.HL_MODE),  # above 80% of the trigger: stay (hysteresis)
        (Mode.HL_MODE, D(640_000), Mode.HL_MODE),
        (Mode.HL_MODE, D(639_999), Mode.NORMAL_MODE),
        (Mode.NORMAL_MODE, D(50_000), Mode.BETTING_MODE),
        (Mode.NORMAL_MODE, D(50_001), Mode.NORMAL_MODE),
        (Mode.BETTING_MODE, D(60_000), Mode.BETTING_MODE),  # below 120%: stay
        (Mode.BETTING_MODE, D(60_001), Mode.NORMAL_MODE),
        (Mode.BETTING_MODE, D(900_000), Mode.HL_MODE),
        (Mode.HL_MODE, D(10_000), Mode.BETTING_MODE),
    ],
)
def test_auto_switch_with_hysteresis(current: Mode, exposure: Decimal, expected: Mode) -> None:
    assert auto_mode(current=current, abs_net_exposure=exposure, policy=POLICY) is expected


@given(path=st.lists(st.decimals(min_value=D(0), max_value=D(2_000_000), places=0), min_size=2, max_size=50))
def test_auto_switch_never_flaps_on_small_wiggles(path: list[Decimal]) -> None:
    """Around the HL trigger, moves smaller than the hysteresis band cause at most one switch."""
    mode = Mode.NORMAL_MODE
    switches = 0
    for value in path:
        wiggle = D(780_000) + (value % D(40_000))  # stays within [780k, 820k)
        new = auto_mode(current=mode, abs_net_exposure=wiggle, policy=POLICY)
        switches += new is not mode
        mode = new
    assert switches <= 1
