"""Circuit-breaker rules of spec 05 as pure functions over plain values (no Django, no I/O).

``risk.breakers`` reads the inputs (ledger balances, quotes, feed status, exposure) and the
thresholds (``RiskConfig``), asks these functions for a verdict, and pushes the verdict down."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

OK = "OK"
WARNING = "WARNING"
TRIPPED = "TRIPPED"

_ZERO = Decimal(0)


def level(value: Decimal, warn_above: Decimal, trip_above: Decimal) -> str:
    """OK / WARNING (value > warn) / TRIPPED (value > trip)."""
    if value > trip_above:
        return TRIPPED
    if value > warn_above:
        return WARNING
    return OK


def reserve_level(balance: Decimal, normal: Decimal, halt: Decimal) -> str:
    """Spec 05: ≥ normal OK; halt ≤ balance < normal WARNING (lower thresholds); < halt TRIPPED."""
    if balance >= normal:
        return OK
    if balance >= halt:
        return WARNING
    return TRIPPED


def market_data_latency(
    round_trips_ms: Sequence[Decimal], unanswered_ms: Decimal | None = None
) -> Decimal | None:
    """The HL market-data latency the breaker judges, from round trips on the feed's own websocket
    (ping sent -> pong received, both on OUR monotonic clock, queued behind the market data).

    HL's message timestamps are not used: receipt time minus HL's time measures the clock skew between
    HL and us as much as the delay, so a clock behind ours trips the breaker and a clock ahead masks
    it. A round trip is the delay of the data path itself (an upper bound of the one-way delay, equal
    to it when the delay is on HL's sending side, where a backlog builds).

    The median of the recent round trips, so one slow pong does not flap the breaker; or how long the
    current ping has gone unanswered when that is longer, so a stalled path shows before its pong
    arrives. ``None`` when nothing was measured."""
    figure: Decimal | None = None
    if round_trips_ms:
        ordered = sorted(round_trips_ms)
        middle = len(ordered) // 2
        figure = ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
    if unanswered_ms is not None and (figure is None or unanswered_ms > figure):
        figure = unanswered_ms
    return figure


def price_range_move(marks: Sequence[Decimal]) -> Decimal:
    """(max − min) / min over a window: how far the mark moved within it (0 for < 2 marks)."""
    if len(marks) < 2:
        return _ZERO
    low, high = min(marks), max(marks)
    if low <= 0:
        return _ZERO
    return (high - low) / low


def volatility_verdict(
    *,
    tripped: bool,
    window_marks: Sequence[Decimal],
    recent_marks: Sequence[Decimal],
    move: Decimal,
) -> bool:
    """True while the volatility breaker should be tripped.

    Trips when the mark moved more than ``move`` within the window (spec: 5 % in an hour). Resets
    automatically once the last N minutes (``recent_marks``) were calm: moved at most half of
    ``move`` — the hour window itself would keep an old spike for an hour."""
    if not tripped:
        return price_range_move(window_marks) > move
    return not (len(recent_marks) >= 2 and price_range_move(recent_marks) <= move / 2)


@dataclass
class PriceJumpState:
    """Per-asset state of the price-jump breaker (kept in the watcher's memory)."""

    last_valid: Decimal | None = None
    previous: Decimal | None = None
    tripped: bool = False
    normal_updates: int = 0


def price_jump_observe(
    state: PriceJumpState, mark: Decimal, *, max_move: Decimal, reset_after: int
) -> tuple[PriceJumpState, str]:
    """Feed one mark update. Returns the new state and an event: "" (nothing), "trip" or "reset".

    An update that moves more than ``max_move`` from the previous one trips the breaker; the last
    valid price is held (``last_valid``) until ``reset_after`` consecutive updates each move less."""
    previous = state.previous
    jump = previous is not None and previous > 0 and abs(mark - previous) / previous > max_move
    if not state.tripped:
        if jump:
            return PriceJumpState(state.last_valid or previous, mark, True, 0), "trip"
        return PriceJumpState(mark, mark, False, 0), ""
    normal = 0 if jump else state.normal_updates + 1
    if normal >= reset_after:
        return PriceJumpState(mark, mark, False, 0), "reset"
    return PriceJumpState(state.last_valid, mark, True, normal), ""


def drift_rate(deviation: Decimal, xbit_pnl: Decimal, notional: Decimal) -> Decimal:
    """Spec 00: |drift| / |XBIT P&L|, or / notional where the P&L is ≈ 0 (under a cent)."""
    if abs(xbit_pnl) >= Decimal("0.01"):
        return abs(deviation) / abs(xbit_pnl)
    if notional > 0:
        return abs(deviation) / notional
    return _ZERO


def drift_level(
    rate: Decimal,
    deviation: Decimal,
    *,
    log_usd: Decimal,
    alert: Decimal,
    critical: Decimal,
    alert_min_usd: Decimal = _ZERO,
    critical_min_usd: Decimal = _ZERO,
) -> str:
    """Spec 04 table: CRITICAL (rate > 5 %), ALERT (> 1 %), LOG (|drift| > $10), else "" (nothing).
    ALERT and CRITICAL also need |drift| above their absolute floor: on a P&L of cents a rate is dust."""
    if deviation == 0:
        return ""
    if rate > critical and abs(deviation) > critical_min_usd:
        return "CRITICAL"
    if rate > alert and abs(deviation) > alert_min_usd:
        return "ALERT"
    if abs(deviation) > log_usd:
        return "LOG"
    return ""
