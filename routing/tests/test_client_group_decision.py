"""The client's group as an input of the routing decision: A always to Hyperliquid, B internal whatever
the size threshold (the platform's own rules still first), HYBRID unchanged; a shadow group judged
alongside without changing the route."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from routing.decision import AssetRouting, ClientGroup, Mode, Reason, Route, decide

D = Decimal
BASE = AssetRouting(
    mode=Mode.NORMAL_MODE,
    normal_threshold=D(10_000),
    betting_threshold=D(50_000),
    internalization_enabled=True,
    max_internal_order_notional=D(100_000),
)


def test_group_a_goes_to_hyperliquid_even_below_the_threshold() -> None:
    d = decide(notional=D(100), config=BASE, client_group=ClientGroup.A)
    assert (d.route, d.reason, d.client_group) == (Route.HYPERLIQUID, Reason.CLIENT_GROUP_A, ClientGroup.A)


def test_group_b_stays_internal_above_the_threshold_but_not_above_the_hard_cap() -> None:
    d = decide(notional=D(50_000), config=BASE, client_group=ClientGroup.B)
    assert (d.route, d.reason) == (Route.INTERNAL, Reason.CLIENT_GROUP_B)
    d = decide(notional=D(100_001), config=BASE, client_group=ClientGroup.B)
    assert (d.route, d.reason) == (Route.HYPERLIQUID, Reason.MAX_INTERNAL_ORDER_NOTIONAL)


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (replace(BASE, degraded=True), Reason.DEGRADED),
        (replace(BASE, force_hl_reasons=("volatility",)), "volatility"),
        (replace(BASE, internalization_enabled=False), Reason.NOT_WHITELISTED),
        (replace(BASE, mode=Mode.HL_MODE), Reason.MODE),
    ],
)
def test_the_platforms_rules_come_before_group_b(config: AssetRouting, reason: str) -> None:
    d = decide(notional=D(10), config=config, client_group=ClientGroup.B)
    assert (d.route, d.reason) == (Route.HYPERLIQUID, reason)


def test_a_halted_hyperliquid_refuses_group_a_orders() -> None:
    d = decide(notional=D(10), config=replace(BASE, hl_halted=True), client_group=ClientGroup.A)
    assert (d.route, d.reason) == (Route.NONE, Reason.HL_HALTED)


def test_the_shadow_group_is_recorded_without_changing_the_route() -> None:
    d = decide(notional=D(100), config=BASE, shadow_group=ClientGroup.A)
    assert (d.route, d.client_group, d.shadow_group, d.shadow_route) == (
        Route.INTERNAL,
        ClientGroup.HYBRID,
        ClientGroup.A,
        Route.HYPERLIQUID,
    )
    d = decide(notional=D(20_000), config=BASE, shadow_group=ClientGroup.B)
    assert (d.route, d.shadow_route) == (Route.HYPERLIQUID, Route.INTERNAL)
    assert decide(notional=D(20_000), config=BASE).shadow_route is None


@given(notional=st.decimals(min_value=0, max_value=10**7, places=2))
def test_hybrid_is_the_size_rule_unchanged(notional: Decimal) -> None:
    plain = decide(notional=notional, config=BASE)
    hybrid = decide(notional=notional, config=BASE, client_group=ClientGroup.HYBRID)
    assert (plain.route, plain.reason, plain.threshold) == (hybrid.route, hybrid.reason, hybrid.threshold)
