"""Every circuit breaker of spec 05 trips, pushes its verdict down as data, and resets by its rule;
drift levels of spec 04."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.alerts.models import Alert
from core.audit.models import AuditEntry
from risk import breaker_rules as rules
from risk.breakers import (
    breaker_reset,
    daily_loss_check,
    hl_disconnect_check,
    hl_latency_check,
    kill_switch_set,
    price_jump_event,
    reserve_check,
    volatility_check,
)
from risk.drift import drift_record
from risk.marks import effective_marks
from risk.models import CircuitBreaker, DeviationLog
from routing.models import RoutingState
from trading.marketdata import quote_update_many
from trading.models import Market
from trading.selectors import market_get

D = Decimal


def state(kind: str, scope: str = "*") -> str:
    row = CircuitBreaker.objects.filter(kind=kind, scope=scope).first()
    return row.state if row else "OK"


def force_hl(asset: str = "*") -> dict[str, Any]:
    row = RoutingState.objects.filter(asset=asset).first()
    return row.force_hl_reasons if row else {}


def open_alert(rule: str, subject: str = "*") -> Alert | None:
    return Alert.objects.filter(rule=rule, subject=subject).exclude(state="resolved").first()


def test_daily_loss_alerts_over_100k_trips_over_500k_and_an_operator_reset_holds_for_the_day(
    db: Any, make_staff: Any
) -> None:
    assert daily_loss_check(net_loss=D("50000")) == "OK"
    assert daily_loss_check(net_loss=D("150000")) == "WARNING"
    assert open_alert("risk.breaker.daily_loss").severity == "P1"
    assert "daily_loss" not in force_hl()
    assert daily_loss_check(net_loss=D("600000")) == "TRIPPED"
    assert "daily_loss" in force_hl() and open_alert("risk.breaker.daily_loss").severity == "P0"
    operator = make_staff(None)
    assert breaker_reset(kind="DAILY_LOSS", acting_user=operator, reason="checked: test flow")
    assert state("DAILY_LOSS") == "OK" and "daily_loss" not in force_hl()
    assert AuditEntry.objects.filter(action="risk.breaker_reset").exists()
    assert daily_loss_check(net_loss=D("600000")) == "WARNING"  # suppressed for the rest of the day


def test_reserve_levels_lower_thresholds_then_halt_internalization_and_reset_automatically(db: Any) -> None:
    assert reserve_check(balance=D("600000")) == "OK"
    assert reserve_check(balance=D("300000")) == "WARNING"
    assert RoutingState.objects.get(asset="*").threshold_factor == D("0.5")
    assert reserve_check(balance=D("150000")) == "TRIPPED"
    assert "reserve_low" in force_hl()
    assert reserve_check(balance=D("700000")) == "OK"
    assert RoutingState.objects.get(asset="*").threshold_factor == 1 and "reserve_low" not in force_hl()
    assert open_alert("risk.breaker.reserve") is None


def test_volatility_trips_on_a_5_percent_hourly_move_and_resets_after_calm_minutes(markets: Any) -> None:
    now = time.time()
    quote_update_many({"ETH": {"mark": D("3000")}}, at=now - 1800, notify=False)
    quote_update_many({"ETH": {"mark": D("3200")}}, at=now - 60, notify=False)
    assert volatility_check("ETH", now=now) is True
    assert "volatility" in force_hl("ETH")
    # 31 minutes later only calm marks are in the reset window
    later = now + 31 * 60
    quote_update_many({"ETH": {"mark": D("3201")}}, at=later - 120, notify=False)
    quote_update_many({"ETH": {"mark": D("3202")}}, at=later - 10, notify=False)
    assert volatility_check("ETH", now=later) is False
    assert state("VOLATILITY", "ETH") == "OK" and "volatility" not in force_hl("ETH")


def test_a_price_jump_holds_the_last_valid_price_until_normal_updates(markets: Any, set_quote: Any) -> None:
    s = rules.PriceJumpState()
    s, _ = rules.price_jump_observe(s, D("100"), max_move=D("0.05"), reset_after=3)
    s, event = rules.price_jump_observe(s, D("110"), max_move=D("0.05"), reset_after=3)
    assert event == "trip" and s.tripped and s.last_valid == D("100")
    for mark in ("110.5", "111"):
        s, event = rules.price_jump_observe(s, D(mark), max_move=D("0.05"), reset_after=3)
        assert event == "" and s.tripped
    s, event = rules.price_jump_observe(s, D("111.2"), max_move=D("0.05"), reset_after=3)
    assert event == "reset" and not s.tripped
    # recorded: the breaker holds the price, detection uses it, internalization stops
    set_quote("BTC", "110000")
    price_jump_event("BTC", "trip", held_price=D("100000"), mark=D("110000"))
    assert effective_marks(["BTC"])["BTC"] == D("100000") and "stale_price" in force_hl("BTC")
    price_jump_event("BTC", "reset", held_price=None, mark=D("110000"))
    assert effective_marks(["BTC"])["BTC"] == D("110000") and "stale_price" not in force_hl("BTC")


def test_a_held_price_liquidates_nobody_until_the_new_level_is_confirmed(
    btc_mmr_0_004: Any, trader: Any, open_position: Any, set_quote: Any
) -> None:
    """BTC drops 10 % in one update: the breaker holds 100,000. A short opened at the new level
    (90,000, 10×) would look bankrupt at the held price; the sweep must not liquidate it. Once the
    level is confirmed the sweep judges it at 90,000 and leaves it open."""
    from risk.detection import liquidation_sweep
    from risk.liquidation_execute import liquidations_drain
    from risk.models import LiquidationTrigger

    short = open_position(trader, size="0.1", entry="90000", leverage=10, side="SELL")
    set_quote("BTC", "90000")
    price_jump_event("BTC", "trip", held_price=D("100000"), mark=D("90000"))
    assert effective_marks(["BTC"])["BTC"] == D("100000")
    report = liquidation_sweep(wake=False)
    liquidations_drain()
    short.refresh_from_db()
    assert short.status == "OPEN" and report["liquidatable"] == 0
    assert not LiquidationTrigger.objects.filter(position_id=short.pk).exists()
    price_jump_event("BTC", "reset", held_price=None, mark=D("90000"))
    assert liquidation_sweep(wake=False)["liquidatable"] == 0
    # and the confirmed level liquidates as usual
    set_quote("BTC", "100000")
    assert liquidation_sweep(wake=False)["liquidatable"] == 1


def test_hl_latency_alerts_over_200_ms_trips_over_500_and_resets_automatically(db: Any) -> None:
    assert hl_latency_check(latency_ms=300) == "WARNING" and "hl_latency" not in force_hl()
    assert hl_latency_check(latency_ms=650) == "TRIPPED" and "hl_latency" in force_hl()
    assert hl_latency_check(latency_ms=80) == "OK" and "hl_latency" not in force_hl()


def test_hl_latency_is_the_median_round_trip_or_an_unanswered_ping_if_longer() -> None:
    ms = [D(v) for v in ("12", "900", "15", "11", "14")]
    assert rules.market_data_latency(ms) == D("14")  # one slow pong does not flap the breaker
    assert rules.market_data_latency(ms[:4]) == D("13.5")
    assert rules.market_data_latency(ms, D("650")) == D("650")  # a stalled path shows before its pong
    assert rules.market_data_latency(ms, D("3")) == D("14")
    assert rules.market_data_latency([], D("40")) == D("40")
    assert rules.market_data_latency([]) is None


@given(
    trips=st.lists(st.decimals(min_value=0, max_value=10_000, places=3), min_size=1, max_size=9),
    unanswered=st.none() | st.decimals(min_value=0, max_value=10_000, places=3),
)
@settings(max_examples=200, deadline=None)
def test_hl_latency_lies_between_the_round_trips_and_never_below_an_unanswered_ping(
    trips: list[Decimal], unanswered: Decimal | None
) -> None:
    figure = rules.market_data_latency(trips, unanswered)
    assert figure is not None
    assert figure >= min(trips) and (figure <= max(trips) or figure == unanswered)
    if unanswered is not None:
        assert figure >= unanswered


def test_the_latency_breaker_judges_the_feeds_round_trips_with_the_thresholds_of_the_day(
    db: Any, make_staff: Any
) -> None:
    """What the feed reports in Redis (round trips on its websocket, an unanswered ping) against the
    database-backed thresholds; a report older than the disconnect alert keeps the state (no feed is
    measuring: the disconnect breaker judges missing data)."""
    from core.accounts.roles import Role
    from risk.config import risk_config_update
    from trading.marketdata import latency_clear, latency_update

    now = time.time()
    latency_update("hl", round_trips_ms=[8.0, 9.5, 7.1], measured_at=now)
    assert hl_latency_check() == "OK"
    latency_update("hl", round_trips_ms=[610.0, 640.0, 9.0], measured_at=now)
    assert hl_latency_check() == "TRIPPED" and "hl_latency" in force_hl()
    assert CircuitBreaker.objects.get(kind="HL_LATENCY").details["latency_ms"] == 610.0
    latency_update("hl", round_trips_ms=[9.0, 8.0, 9.0], measured_at=now)
    assert hl_latency_check() == "OK" and "hl_latency" not in force_hl()
    latency_update("hl", pending_since=now - 0.7)  # the ping sent 700 ms ago is still unanswered
    assert hl_latency_check() == "TRIPPED"
    latency_update("hl", round_trips_ms=[9.0], measured_at=now - 60, pending_since=None)
    assert hl_latency_check() == "TRIPPED"  # stale: kept
    latency_clear("hl")
    assert hl_latency_check() == "TRIPPED"  # nothing measured: kept
    # an operator raises the trip level at run time: 610 ms is now a warning
    risk_config_update(
        changes={"latency_trip_ms": 1000},
        acting_user=make_staff(Role.RISK_MANAGER),
        reason="test: HL is far from this region",
    )
    latency_update("hl", round_trips_ms=[610.0], measured_at=time.time())
    assert hl_latency_check() == "WARNING" and "hl_latency" not in force_hl()


def test_hl_disconnect_halts_every_market_after_60_s_and_liquidation_keeps_running(
    btc_mmr_0_004: Any, trader: Any, open_position: Any
) -> None:
    from risk.detection import liquidation_sweep
    from risk.liquidation_execute import liquidations_drain

    position = open_position(trader, size="0.1", entry="80000", leverage=10)
    assert hl_disconnect_check(seconds_down=15) == "WARNING"
    assert market_get("BTC").trading_state == "ACTIVE"
    assert hl_disconnect_check(seconds_down=75) == "TRIPPED"
    assert set(Market.objects.values_list("trading_state", flat=True)) == {"HALTED"}
    assert market_get("ETH").trading_state == "HALTED"
    # the last valid price still liquidates
    liquidation_sweep(marks={"BTC": D("72000")}, wake=False)
    liquidations_drain()
    position.refresh_from_db()
    assert position.status == "LIQUIDATED"
    assert hl_disconnect_check(seconds_down=0.5) == "OK"
    assert set(Market.objects.values_list("trading_state", flat=True)) == {"ACTIVE"}


def test_the_kill_switch_halts_or_sets_reduce_only_everywhere_and_is_audited(
    markets: Any, make_staff: Any
) -> None:
    operator = make_staff(None)
    kill_switch_set(active=True, mode="REDUCE_ONLY", acting_user=operator, reason="incident 42")
    assert set(Market.objects.values_list("trading_state", flat=True)) == {"REDUCE_ONLY"}
    kill_switch_set(active=False, acting_user=operator, reason="incident over")
    assert set(Market.objects.values_list("trading_state", flat=True)) == {"ACTIVE"}
    assert AuditEntry.objects.filter(action="risk.kill_switch").count() == 2


@pytest.mark.parametrize(
    ("xbit", "hl", "level"),
    [
        ("-1000", "-1005", None),  # $5: below every level
        ("-10000", "-10020", "LOG"),  # $20, 0.2 %
        ("-1000", "-1020", "ALERT"),  # 2 %
        ("-1000", "-1060", "CRITICAL"),  # 6 %
        # issue 16: SOL's funding mirror, 10.59 % of a 0.017 USDC P&L is 0.0018 USDC: dust, no level
        ("-0.016940", "-0.018734", None),
        # the absolute floors (ALERT 1 USDC, CRITICAL 10 USDC): at a floor the level does not trip,
        # just above it does, however large the rate
        ("-10", "-11", None),  # 10 %, $1.00: at the ALERT floor (and below LOG's $10)
        ("-10", "-11.01", "ALERT"),  # 10.1 %, $1.01: over the CRITICAL rate, under its floor
        ("-100", "-110", "ALERT"),  # 10 %, $10.00: at the CRITICAL floor
        ("-100", "-110.01", "CRITICAL"),  # 10 %, $10.01
    ],
)
def test_drift_levels(db: Any, xbit: str, hl: str, level: str | None) -> None:
    row = drift_record(
        ref=f"t:{xbit}:{hl}",
        kind="LIQUIDATION",
        asset="BTC",
        xbit_pnl=D(xbit),
        hl_actual_pnl=D(hl),
        notional=D("80000"),
    )
    if level is None:
        assert row is None and not DeviationLog.objects.exists()
        return
    assert row is not None and row.level == level and row.deviation == D(hl) - D(xbit)
    alert = open_alert("risk.drift", "BTC")
    if level == "ALERT":
        assert alert.severity == "P1"
    if level == "CRITICAL":
        assert alert.severity == "P0" and RoutingState.objects.get(asset="BTC").hl_halted
        assert state("DRIFT", "BTC") == "TRIPPED"


def test_critical_drift_halts_hl_routing_until_an_operator_resets_it(db: Any, make_staff: Any) -> None:
    # 20 % and $20: over both the critical rate and its absolute floor (a $10 drift is at the floor)
    drift_record(
        ref="x", kind="CLOSE", asset="ETH", xbit_pnl=D("-100"), hl_actual_pnl=D("-120"), notional=D("3000")
    )
    assert RoutingState.objects.get(asset="ETH").hl_halted
    breaker_reset(kind="DRIFT", scope="ETH", acting_user=make_staff(None), reason="explained")
    assert not RoutingState.objects.get(asset="ETH").hl_halted


def test_daily_cumulative_drift_over_1000_flags_a_review(db: Any) -> None:
    for i in range(3):
        drift_record(
            ref=f"d{i}",
            kind="CLOSE",
            asset="SOL",
            xbit_pnl=D("-100000"),
            hl_actual_pnl=D("-100400"),
            notional=D("1"),
        )
    assert open_alert("risk.drift_daily").severity == "P1"
