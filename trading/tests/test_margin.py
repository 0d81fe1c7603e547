"""Spec 03's margin model, to the cent and by property.

Pure: no database, no Django — runs with ``pytest -p no:django``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading.margin import (
    USDC_QUANTUM,
    MarginTable,
    MarginTier,
    Side,
    floor_size,
    funding_payment,
    initial_margin,
    is_valid_price,
    is_valid_size,
    isolated_equity,
    isolated_is_liquidatable,
    isolated_liquidation_price,
    isolated_removable_margin,
    maintenance_margin,
    maintenance_margin_rate,
    margin_tables_from_meta,
    meets_min_order_value,
    notional,
    q_usdc,
    round_price,
    round_size,
    unrealized_pnl,
)
from trading.margin_cross import (
    CrossAccount,
    CrossPosition,
    cross_account,
    cross_liquidation_order,
    cross_liquidation_plan,
    cross_liquidation_price,
)

D = Decimal
LONG, SHORT = Side.LONG, Side.SHORT
CENT = D("0.01")

PROPERTY = settings(max_examples=300, deadline=None)

# HL's published tables (docs, "Margin tiers"): mainnet BTC, and the five-tier testnet BTC.
MAINNET_BTC_JSON = {
    "description": "tiered 40x",
    "marginTiers": [
        {"lowerBound": "0.0", "maxLeverage": 40},
        {"lowerBound": "150000000.0", "maxLeverage": 20},
    ],
}
TESTNET_BTC_JSON = {
    "description": "testnet BTC",
    "marginTiers": [
        {"lowerBound": "0.0", "maxLeverage": 40},
        {"lowerBound": "10000.0", "maxLeverage": 25},
        {"lowerBound": "50000.0", "maxLeverage": 10},
        {"lowerBound": "100000.0", "maxLeverage": 5},
        {"lowerBound": "300000.0", "maxLeverage": 3},
    ],
}


@pytest.fixture(autouse=True)
def precise_expectations() -> Iterator[None]:
    """Expected values are computed here with as many digits as the module uses (50)."""
    with localcontext(Context(prec=50)):
        yield


def close_to(a: Decimal, b: Decimal, scale: Decimal = D(1), tolerance: Decimal = D("1e-9")) -> bool:
    return abs(a - b) <= tolerance * max(D(1), abs(scale))


# --------------------------------------------------------------------------------------------------
# Rates and tables


def test_40x_means_a_maintenance_rate_of_1_25_percent() -> None:
    assert maintenance_margin_rate(40) == D("0.0125")


def test_3x_means_a_maintenance_rate_of_16_7_percent() -> None:
    mmr = maintenance_margin_rate(3)
    assert mmr.quantize(D("0.001")) == D("0.167")
    assert close_to(mmr * 6, D(1), tolerance=D("1e-40"))


def test_table_id_below_50_is_a_single_tier_at_that_leverage() -> None:
    table = MarginTable.for_asset(20, 20, {})
    assert table.tiers == (MarginTier(D(0), 20),)
    assert table.tier_for(D("1e12")) == (D("0.025"), D(0))


def test_table_id_50_and_above_comes_from_meta() -> None:
    tables = margin_tables_from_meta({"marginTables": [[56, MAINNET_BTC_JSON]]})
    btc = MarginTable.for_asset(56, 40, tables)
    assert btc.tiers == tables[56].tiers
    with pytest.raises(ValueError, match="57"):
        MarginTable.for_asset(57, 40, tables)


def test_the_assets_max_leverage_caps_leverage_but_never_the_maintenance_margin() -> None:
    tables = {56: MarginTable.from_hl(MAINNET_BTC_JSON)}
    capped = MarginTable.for_asset(56, 25, tables)
    assert capped.max_leverage_at(D(1000)) == 25
    assert capped.max_leverage_at(D(200_000_000)) == 20
    assert maintenance_margin(D(1000), capped) == maintenance_margin(D(1000), tables[56])


def test_btc_mainnet_deduction_keeps_mm_continuous_at_150m() -> None:
    table = MarginTable.from_hl(MAINNET_BTC_JSON)
    assert table.tier_for(D(150_000_000)) == (D("0.025"), D(1_875_000))
    below = D(150_000_000) * D("0.0125")
    assert maintenance_margin(D(150_000_000), table) == below == D(1_875_000)
    assert maintenance_margin(D(200_000_000), table) == D(3_125_000)


def test_mm_is_continuous_across_every_tier_boundary() -> None:
    table = MarginTable.from_hl(TESTNET_BTC_JSON)
    for index in range(1, len(table.tiers)):
        bound = table.tiers[index].lower_bound
        mmr_below, deduction_below = table.tier_for(bound - D("1e-30"))
        from_below = bound * mmr_below - deduction_below
        assert table.tier_index(bound) == index
        assert close_to(maintenance_margin(bound, table), from_below, tolerance=D("1e-40"))


def test_hl_tables_refuse_floats_and_a_first_tier_above_zero() -> None:
    with pytest.raises(TypeError):
        MarginTable.from_hl({"marginTiers": [{"lowerBound": 0.0, "maxLeverage": 40}]})
    with pytest.raises(ValueError, match="start at 0"):
        MarginTable.from_hl({"marginTiers": [{"lowerBound": "5", "maxLeverage": 40}]})
    with pytest.raises(ValueError, match="increasing"):
        MarginTable(tiers=(MarginTier(D(0), 10), MarginTier(D(5), 5), MarginTier(D(5), 3)))


def test_tiers_arriving_out_of_order_are_sorted() -> None:
    shuffled = {"marginTiers": list(reversed(TESTNET_BTC_JSON["marginTiers"]))}  # type: ignore[call-overload]
    assert MarginTable.from_hl(shuffled) == MarginTable.from_hl(TESTNET_BTC_JSON)


# --------------------------------------------------------------------------------------------------
# Isolated: spec 03 worked examples


def test_isolated_long_liquidation_price_is_72289_16() -> None:
    table = MarginTable.single(125)
    assert table.tier_for(D(0))[0] == D("0.004")
    px = isolated_liquidation_price(LONG, D(80_000), D("0.1"), D(800), table)
    assert px is not None
    assert px.quantize(CENT) == D("72289.16")
    assert close_to(px, D(72_000) / D("0.996"), tolerance=D("1e-40"))


def test_isolated_long_at_72280_has_equity_28_below_mm_28_91_and_is_liquidated() -> None:
    table = MarginTable.single(125)
    upnl = unrealized_pnl(LONG, D(80_000), D(72_280), D("0.1"))
    assert upnl == D(-772)
    assert isolated_equity(D(800), upnl) == D(28)
    assert maintenance_margin(notional(D("0.1"), D(72_280)), table).quantize(CENT) == D("28.91")
    assert isolated_is_liquidatable(LONG, D(80_000), D(72_280), D("0.1"), D(800), table)
    assert not isolated_is_liquidatable(LONG, D(80_000), D(72_300), D("0.1"), D(800), table)


def test_200_of_funding_paid_raises_the_long_liquidation_price_to_74297_19() -> None:
    paid = funding_payment(LONG, D("0.1"), D(80_000), D("0.025"))
    assert paid == D(-200)
    px = isolated_liquidation_price(LONG, D(80_000), D("0.1"), D(800) + paid, MarginTable.single(125))
    assert px is not None
    assert px.quantize(CENT) == D("74297.19")


def test_isolated_short_uses_the_short_closed_form() -> None:
    px = isolated_liquidation_price(SHORT, D(80_000), D("0.1"), D(800), MarginTable.single(125))
    assert px is not None
    assert close_to(px, D(88_000) / D("1.004"), tolerance=D("1e-40"))


def test_a_long_whose_margin_covers_its_notional_has_no_liquidation_price() -> None:
    table = MarginTable.single(1)
    assert isolated_liquidation_price(LONG, D(100), D(2), D(200), table) is None
    assert isolated_liquidation_price(LONG, D(100), D(2), D(250), table) is None
    assert isolated_liquidation_price(SHORT, D(100), D(2), D(250), table) is not None


def test_a_large_isolated_position_is_liquidated_in_the_tier_of_its_liquidation_notional() -> None:
    table = MarginTable.from_hl(TESTNET_BTC_JSON)
    # 2 BTC at 100,000 with 60,000 margin: notional at the liquidation price falls in the 100k-300k
    # tier (5x, mmr 10%, deduction 10,000·0.0075 + 50,000·0.03 + 100,000·0.05 = 6,575).
    px = isolated_liquidation_price(LONG, D(100_000), D(2), D(60_000), table)
    assert px is not None
    assert table.tier_index(notional(D(2), px)) == 3
    assert table.tier_for(notional(D(2), px)) == (D("0.1"), D(6575))
    assert close_to(px, (D(200_000) - D(60_000) - D(6575)) / (D(2) * D("0.9")), tolerance=D("1e-40"))


def test_removing_margin_must_leave_equity_at_least_im_at_the_mark() -> None:
    assert isolated_removable_margin(LONG, D(80_000), D(80_000), D("0.1"), D(800), 10) == 0
    assert isolated_removable_margin(LONG, D(80_000), D(80_000), D("0.1"), D(1000), 10) == D(200)
    assert isolated_removable_margin(LONG, D(80_000), D(81_000), D("0.1"), D(1000), 10) == D(290)
    assert isolated_removable_margin(LONG, D(80_000), D(70_000), D("0.1"), D(1000), 10) == 0


# --------------------------------------------------------------------------------------------------
# Cross: spec 03 worked example


def spec_cross_account(btc_mark: Decimal) -> CrossAccount:
    btc = CrossPosition("BTC", LONG, D(1), D(14_000), btc_mark, 10, MarginTable.single(125), ref="btc")
    eth = CrossPosition("ETH", SHORT, D(4), D(1875), D(2000), 10, MarginTable.single(100), ref="eth")
    return CrossAccount(cash_collateral=D(5000), positions=(btc, eth))


def test_cross_example_equity_500_over_mm_80_is_not_liquidatable() -> None:
    account = spec_cross_account(D(10_000))
    btc, eth = account.positions
    assert (btc.notional, btc.unrealized_pnl) == (D(10_000), D(-4000))
    assert (eth.notional, eth.unrealized_pnl) == (D(8000), D(-500))
    summary = account.summary()
    assert summary.equity == D(500)
    assert summary.maintenance_margin == D(80)
    assert summary.initial_margin_used == D(1800)
    assert (summary.available_to_trade, summary.withdrawable) == (0, 0)
    assert not summary.liquidatable
    assert cross_liquidation_plan(account) == ()


def test_cross_example_closes_btc_first_and_stops_when_equity_exceeds_remaining_mm() -> None:
    account = spec_cross_account(D(9560))  # equity 60, MM 38.24 + 40
    assert account.summary().liquidatable
    assert [p.ref for p in cross_liquidation_plan(account)] == ["btc"]


def test_cross_example_closes_everything_when_equity_is_gone() -> None:
    account = spec_cross_account(D(9500))  # equity 0
    assert [p.ref for p in cross_liquidation_plan(account)] == ["btc", "eth"]


def test_cross_liquidation_price_of_btc_holds_eth_fixed() -> None:
    # 5000 − 500 (ETH uPnL) − 40 (ETH MM) + (P − 14,000) − 0.004·P = 0
    px = cross_liquidation_price(spec_cross_account(D(10_000)), "BTC")
    assert px is not None
    assert close_to(px, D(9540) / D("0.996"), tolerance=D("1e-40"))
    assert px.quantize(CENT) == D("9578.31")


def test_unrealized_profit_is_never_withdrawable() -> None:
    winner = CrossPosition("BTC", LONG, D(1), D(10_000), D(12_000), 10, MarginTable.single(40))
    summary = cross_account(D(10_000), [winner], D(500))
    assert summary.equity == D(12_000)
    assert summary.available_to_trade == D(10_300)
    assert summary.withdrawable == D(8300)


def test_an_account_without_positions_is_never_liquidatable() -> None:
    assert not cross_account(D(0), []).liquidatable


def test_cross_liquidation_price_needs_a_single_mark_snapshot() -> None:
    table = MarginTable.single(20)
    a = CrossPosition("BTC", LONG, D(1), D(100), D(100), 5, table)
    b = CrossPosition("BTC", SHORT, D(1), D(100), D(101), 5, table)
    with pytest.raises(ValueError, match="different marks"):
        cross_liquidation_price(CrossAccount(D(100), (a, b)), "BTC")
    with pytest.raises(ValueError, match="ETH"):
        cross_liquidation_price(CrossAccount(D(100), (a,)), "ETH")


def test_a_hedged_pair_in_one_asset_reports_the_crossing_nearer_the_mark() -> None:
    # Long 2 and short 1 (two sources, spec 02) on a table that steps from 10x to 1x at 150: equity
    # minus MM rises, then falls, so it crosses zero at 50/0.85 and at 170.
    table = MarginTable(tiers=(MarginTier(D(0), 10), MarginTier(D(150), 1)))

    def book(mark: Decimal) -> CrossAccount:
        long_leg = CrossPosition("X", LONG, D(2), D(100), mark, 1, table)
        short_leg = CrossPosition("X", SHORT, D(1), D(100), mark, 1, table)
        return CrossAccount(D(50), (long_leg, short_leg))

    assert close_to(
        cross_liquidation_price(book(D(100)), "X") or D(0), D(50) / D("0.85"), tolerance=D("1e-40")
    )
    assert close_to(cross_liquidation_price(book(D(130)), "X") or D(0), D(170), tolerance=D("1e-40"))


def test_results_do_not_depend_on_the_callers_decimal_context() -> None:
    expected = isolated_liquidation_price(LONG, D(80_000), D("0.1"), D(800), MarginTable.single(125))
    with localcontext(Context(prec=4)):
        assert (
            isolated_liquidation_price(LONG, D(80_000), D("0.1"), D(800), MarginTable.single(125)) == expected
        )
        assert len(maintenance_margin_rate(3).as_tuple().digits) == 50
    with localcontext(Context(prec=4)):
        assert cross_account(D("12345.678"), []).equity == D("12345.678")


# --------------------------------------------------------------------------------------------------
# Orders, rounding, funding


def test_initial_margin_and_min_order_value() -> None:
    assert initial_margin(D("0.1"), D(80_000), 10) == D(800)
    assert meets_min_order_value(D("0.0002"), D(50_000), D(10))
    assert not meets_min_order_value(D("0.0001"), D(50_000), D(10))


def test_sizes_follow_sz_decimals() -> None:
    assert is_valid_size(D("0.00100"), 3)
    assert not is_valid_size(D("0.0015"), 3)
    assert not is_valid_size(D(0), 3)
    assert is_valid_size(D(10), 0)
    assert round_size(D("0.00150"), 3) == D("0.002")
    assert round_size(D("0.00250"), 3) == D("0.002")
    assert floor_size(D("0.0019"), 3) == D("0.001")


@pytest.mark.parametrize(
    ("px", "sz_decimals", "valid"),
    [
        (D(123456), 0, True),
        (D("12345.6"), 0, False),
        (D("1234.5"), 5, True),
        (D("1234.5"), 6, False),
        (D("0.001234"), 0, True),
        (D("0.001234"), 1, False),
        (D("0.0012345"), 0, False),
        (D("72289.16"), 5, False),
        (D(0), 0, False),
    ],
)
def test_prices_have_5_significant_figures_and_6_minus_sz_decimals_places(
    px: Decimal, sz_decimals: int, valid: bool
) -> None:
    assert is_valid_price(px, sz_decimals) is valid


def test_price_rounding_picks_the_nearest_valid_price() -> None:
    assert round_price(D("123456.7"), 0) == D(123457)
    assert round_price(D("72289.1566"), 5) == D(72289)
    assert round_price(D("1.234567"), 2) == D("1.2346")
    assert round_price(D("0.0123456"), 0) == D("0.012346")
    assert round_price(D("0.0123456"), 2) == D("0.0123")
    assert round_price(D("1.23451"), 2, rounding=ROUND_FLOOR) == D("1.2345")
    assert round_price(D("1.23451"), 2, rounding=ROUND_CEILING) == D("1.2346")


def test_usdc_quantum_is_six_decimals() -> None:
    assert str(USDC_QUANTUM) == "0.000001"
    assert q_usdc(D("28.9120005")) == D("28.912000")
    assert q_usdc(D("28.9120015")) == D("28.912002")


def test_positive_funding_makes_longs_pay_and_shorts_receive() -> None:
    assert funding_payment(LONG, D(2), D(100), D("0.0001")) == D("-0.02")
    assert funding_payment(SHORT, D(2), D(100), D("0.0001")) == D("0.02")
    assert funding_payment(LONG, D(2), D(100), D("-0.0001")) == D("0.02")


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError):
        notional(D(1), 2.5)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Properties

sides = st.sampled_from(Side)
prices = st.decimals(min_value=D("0.001"), max_value=D(200_000), places=3)
sizes = st.decimals(min_value=D("0.0001"), max_value=D(5000), places=4)
leverages = st.integers(min_value=1, max_value=50)
ratios = st.decimals(min_value=D("0.5"), max_value=D("1.5"), places=4)


@st.composite
def tables(draw: st.DrawFn, scale: Decimal) -> MarginTable:
    """Up to five tiers, bounds spread around ``scale`` so liquidations land in any of them.

    Leverages are drawn in any order, not only HL's decreasing one: MM stays continuous and the
    solver must not depend on the order.
    """
    fractions = draw(
        st.lists(st.decimals(min_value=D("0.01"), max_value=D(3), places=2), max_size=4, unique=True).map(
            sorted
        )
    )
    levels = draw(st.lists(leverages, min_size=len(fractions) + 1, max_size=len(fractions) + 1))
    bounds = [D(0), *(fraction * scale for fraction in fractions)]
    return MarginTable(tiers=tuple(MarginTier(b, lev) for b, lev in zip(bounds, levels, strict=True)))


@PROPERTY
@given(
    data=st.data(),
    side=sides,
    entry=prices,
    size=sizes,
    leverage=leverages,
    cushion=st.decimals(min_value=D("0.05"), max_value=D("1.5"), places=3),
)
def test_at_the_isolated_liquidation_price_equity_equals_mm(
    data: st.DataObject, side: Side, entry: Decimal, size: Decimal, leverage: int, cushion: Decimal
) -> None:
    opened_at = notional(size, entry)
    table = data.draw(tables(opened_at))
    margin = q_usdc(initial_margin(size, entry, leverage) * cushion)

    px = isolated_liquidation_price(side, entry, size, margin, table)

    if px is None:
        assert side is LONG
        assert margin >= opened_at
        return
    equity = isolated_equity(margin, unrealized_pnl(side, entry, px, size))
    assert close_to(equity, maintenance_margin(notional(size, px), table), scale=notional(size, px))
    nudge = D("1e-6")
    beyond, before = (
        (px * (1 - nudge), px * (1 + nudge)) if side is LONG else (px * (1 + nudge), px * (1 - nudge))
    )
    assert isolated_is_liquidatable(side, entry, beyond, size, margin, table)
    assert not isolated_is_liquidatable(side, entry, before, size, margin, table)


@PROPERTY
@given(side=sides, entry=prices, size=sizes, leverage=leverages, max_leverage=leverages)
def test_single_tier_isolated_price_is_spec_03_closed_form(
    side: Side, entry: Decimal, size: Decimal, leverage: int, max_leverage: int
) -> None:
    margin = initial_margin(size, entry, leverage)
    mmr = maintenance_margin_rate(max_leverage)
    px = isolated_liquidation_price(side, entry, size, margin, MarginTable.single(max_leverage))
    if side is LONG:
        expected = (entry - margin / size) / (1 - mmr)
    else:
        expected = (entry + margin / size) / (1 + mmr)
    if expected <= 0:
        assert px is None
    else:
        assert px is not None
        assert close_to(px, expected, scale=expected, tolerance=D("1e-30"))


@st.composite
def cross_books(draw: st.DrawFn) -> CrossAccount:
    """1–4 assets, maybe an opposite-side position in the first one (another source, spec 02)."""
    positions = []
    for index in range(draw(st.integers(min_value=1, max_value=4))):
        entry, size = draw(prices), draw(sizes)
        mark = entry * draw(ratios)
        legs = [draw(sides)]
        if index == 0 and draw(st.booleans()):
            legs.append(Side(-legs[0]))
        for leg, side in enumerate(legs):
            leg_size = size if leg == 0 else draw(sizes)
            positions.append(
                CrossPosition(
                    asset=f"A{index}",
                    side=side,
                    size=leg_size,
                    entry=entry,
                    mark=mark,
                    leverage=draw(leverages),
                    table=draw(tables(notional(leg_size, entry))),
                    ref=(index, leg),
                )
            )
    total = sum((p.notional for p in positions), D(0))
    cash = q_usdc(total * draw(st.decimals(min_value=D(0), max_value=D(2), places=3)))
    holds = q_usdc(cash * draw(st.decimals(min_value=D(0), max_value=D("0.5"), places=3)))
    return CrossAccount(cash_collateral=cash, positions=tuple(positions), order_holds=holds)


@PROPERTY
@given(account=cross_books())
def test_at_the_cross_liquidation_price_equity_equals_mm(account: CrossAccount) -> None:
    px = cross_liquidation_price(account, "A0")
    if px is None:
        return
    moved = [replace(p, mark=px) if p.asset == "A0" else p for p in account.positions]
    summary = cross_account(account.cash_collateral, moved, account.order_holds)
    scale = sum((p.notional for p in moved), D(0))
    assert close_to(summary.equity, summary.maintenance_margin, scale=scale)


@PROPERTY
@given(side=sides, entry=prices, size=sizes, leverage=leverages, data=st.data())
def test_a_lone_cross_position_liquidates_where_the_same_isolated_one_does(
    side: Side, entry: Decimal, size: Decimal, leverage: int, data: st.DataObject
) -> None:
    table = data.draw(tables(notional(size, entry)))
    margin = q_usdc(initial_margin(size, entry, leverage))
    position = CrossPosition("A0", side, size, entry, entry, leverage, table)
    cross = cross_liquidation_price(CrossAccount(margin, (position,)), "A0")
    isolated = isolated_liquidation_price(side, entry, size, margin, table)
    if isolated is None:
        assert cross is None
    else:
        assert cross is not None
        assert close_to(cross, isolated, scale=isolated, tolerance=D("1e-30"))


@PROPERTY
@given(account=cross_books())
def test_withdrawable_never_exceeds_available_nor_available_equity(account: CrossAccount) -> None:
    summary = account.summary()
    assert 0 <= summary.withdrawable <= summary.available_to_trade <= max(D(0), summary.equity)
    realized_room = account.cash_collateral - account.order_holds - summary.initial_margin_used
    assert summary.withdrawable <= max(D(0), realized_room)
    assert summary.liquidatable is (summary.equity <= summary.maintenance_margin)


@PROPERTY
@given(account=cross_books())
def test_cross_liquidation_closes_the_most_losing_first_and_no_more_than_needed(
    account: CrossAccount,
) -> None:
    summary = account.summary()
    plan = cross_liquidation_plan(account)
    if not summary.liquidatable:
        assert plan == ()
        return
    order = cross_liquidation_order(account.positions)
    assert plan == order[: len(plan)]
    losses = [p.unrealized_pnl for p in order]
    assert losses == sorted(losses)
    remaining = [
        summary.maintenance_margin - sum((p.maintenance_margin for p in plan[:k]), D(0))
        for k in range(len(plan) + 1)
    ]
    assert all(summary.equity <= mm for mm in remaining[:-1])
    assert len(plan) == len(account.positions) or summary.equity > remaining[-1]


@PROPERTY
@given(size=st.decimals(min_value=D(0), max_value=D(10**6), places=8), sz_decimals=st.integers(0, 6))
def test_size_rounding_is_idempotent_and_lands_on_the_lot(size: Decimal, sz_decimals: int) -> None:
    for rounded in (round_size(size, sz_decimals), floor_size(size, sz_decimals)):
        assert rounded == 0 or is_valid_size(rounded, sz_decimals)
        assert round_size(rounded, sz_decimals) == rounded
        assert floor_size(rounded, sz_decimals) == rounded
    floored = floor_size(size, sz_decimals)
    assert 0 <= size - floored < D(1).scaleb(-sz_decimals)


@PROPERTY
@given(px=st.decimals(min_value=D("1e-8"), max_value=D(10**7), places=10), sz_decimals=st.integers(0, 6))
def test_price_rounding_is_idempotent_and_always_valid(px: Decimal, sz_decimals: int) -> None:
    rounded = round_price(px, sz_decimals)
    if rounded == 0:
        return
    assert is_valid_price(rounded, sz_decimals)
    assert round_price(rounded, sz_decimals) == rounded
    if is_valid_price(px, sz_decimals):
        assert rounded == px


@PROPERTY
@given(size=sizes, oracle=prices, rate=st.decimals(min_value=D("-0.04"), max_value=D("0.04"), places=8))
def test_funding_is_size_times_oracle_times_rate_and_sums_to_zero(
    size: Decimal, oracle: Decimal, rate: Decimal
) -> None:
    long_leg = funding_payment(LONG, size, oracle, rate)
    short_leg = funding_payment(SHORT, size, oracle, rate)
    assert long_leg + short_leg == 0
    assert abs(long_leg) == size * oracle * abs(rate)
    if rate > 0:
        assert long_leg < 0 < short_leg
    elif rate < 0:
        assert short_leg < 0 < long_leg
