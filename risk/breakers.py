"""Circuit breakers (spec 05): state in ``CircuitBreaker`` rows, verdicts pushed down as data.

| breaker             | scope | effect when tripped (pushed down)                              | reset                   |
|---------------------|-------|----------------------------------------------------------------|-------------------------|
| DAILY_LOSS          | *     | force-HL ``daily_loss`` on every asset                          | next UTC day / operator |
| VOLATILITY          | asset | force-HL ``volatility`` for the asset                           | N calm minutes          |
| PRICE_JUMP          | asset | force-HL ``stale_price``; the last valid price is held          | N normal updates        |
| HL_LATENCY          | *     | force-HL ``hl_latency`` on every asset                          | automatic               |
| HL_DISCONNECT       | *     | every market HALTED (liquidation keeps running)                 | data back + operator ok |
| RESERVE             | *     | WARNING: routing thresholds × factor; TRIPPED: force-HL reserve | automatic               |
| DRIFT               | asset | HL routing halted for the asset                                 | operator                |
| LIQUIDATION_FAILURE | asset | force-HL ``liquidation_failure`` (+ HL_MODE at escalation)       | operator                |
| KILL_SWITCH         | *     | every market HALTED or REDUCE_ONLY                              | operator                |

Every change of state raises or resolves its alert through the alerts service, is pushed to the
console (topic ``breakers``) and, for operator actions, audited.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.alerts.services import alert_raise, alert_resolve_condition
from core.audit.services import audit_record
from core.errors import ApplicationError, ErrorCode
from core.live import broadcast_on_commit
from core.live_config import invalidate
from risk import breaker_rules as rules
from risk.config import risk_config
from risk.exposure import daily_net_loss
from risk.models import CircuitBreaker
from routing.models import GLOBAL
from routing.services import routing_force_hl_set, routing_hl_halt_set, routing_threshold_factor_set
from trading.marketdata import get_latency, mark_history
from trading.models import Market, TradingState
from trading.selectors import FEED_NAME, feed_status, markets_list
from wallets.ledger import AccountRef, account_balance
from wallets.models import AccountKind

logger = logging.getLogger(__name__)
Kind = CircuitBreaker.Kind
State = CircuitBreaker.State

RESET_RULES: dict[str, str] = {
    Kind.DAILY_LOSS: "next UTC day, or an operator",
    Kind.VOLATILITY: "automatic after N calm minutes",
    Kind.PRICE_JUMP: "automatic after N consecutive normal updates",
    Kind.HL_LATENCY: "automatic when latency is back under the alert level",
    Kind.HL_DISCONNECT: "automatic once data flows again (resync/reconciliation gate), or an operator",
    Kind.RESERVE: "automatic when the reserve is back above the threshold",
    Kind.DRIFT: "operator",
    Kind.LIQUIDATION_FAILURE: "operator",
    Kind.KILL_SWITCH: "operator",
}
FORCE_HL_REASON: dict[str, str] = {
    Kind.DAILY_LOSS: "daily_loss",
    Kind.VOLATILITY: "volatility",
    Kind.PRICE_JUMP: "stale_price",
    Kind.HL_LATENCY: "hl_latency",
    Kind.LIQUIDATION_FAILURE: "liquidation_failure",
}
OPERATOR_ONLY = {Kind.DRIFT, Kind.LIQUIDATION_FAILURE, Kind.KILL_SWITCH}


def _alert_rule(kind: str) -> str:
    return f"risk.breaker.{kind.lower()}"


def breaker_get(kind: str, scope: str = GLOBAL) -> CircuitBreaker:
    row = CircuitBreaker.objects.filter(kind=kind, scope=scope).first()
    return row if row is not None else CircuitBreaker(kind=kind, scope=scope, reset_rule=RESET_RULES[kind])


def breaker_set(
    *,
    kind: str,
    scope: str = GLOBAL,
    state: str,
    reason: str = "",
    details: dict[str, Any] | None = None,
    severity: str | None = None,
) -> bool:
    """Move a breaker to ``state`` and push its effect down. Idempotent: the same state changes
    nothing but ``details``. Returns True when the state changed."""
    with transaction.atomic():
        row, _ = CircuitBreaker.objects.select_for_update().get_or_create(
            kind=kind, scope=scope, defaults={"reset_rule": RESET_RULES[kind]}
        )
        changed = row.state != state
        now = timezone.now()
        if not changed:
            if details is not None and details != row.details:
                row.details = {**row.details, **details}
                row.updated_at = now
                row.save(update_fields=["details", "updated_at"])
            return False
        previous = row.state
        row.state = state
        row.reason = reason[:300]
        row.updated_at = now
        if details is not None:
            row.details = {**row.details, **details}
        if state == State.TRIPPED:
            row.tripped_at = now
        if state == State.OK:
            row.reset_at = now
        row.save()
        _apply_effect(row)
        rule = _alert_rule(kind)
        if state == State.OK:
            alert_resolve_condition(rule=rule, subject=scope, note=f"{kind} reset")
        else:
            alert_raise(
                rule=rule,
                severity=severity or ("P0" if state == State.TRIPPED else "P1"),
                subject=scope,
                message=f"{row.get_kind_display()} breaker {state.lower()} ({scope}): {reason}",
                details={"from": previous, **(row.details or {})},
            )
        broadcast_on_commit(
            "breakers",
            {"kind": kind, "scope": scope, "state": state, "reason": row.reason, "at": now.isoformat()},
        )
        return True


def breaker_trip(
    *, kind: str, scope: str = GLOBAL, reason: str, details: dict[str, Any] | None = None
) -> bool:
    return breaker_set(kind=kind, scope=scope, state=State.TRIPPED, reason=reason, details=details)


def breaker_reset(
    *, kind: str, scope: str = GLOBAL, acting_user: Any, reason: str, request: Any = None
) -> bool:
    """An operator resets a breaker (audited). For the daily-loss breaker the reset holds for the rest
    of the UTC day; automatic breakers trip again on the next check if their condition still holds."""
    if not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.", {"field": "reason"})
    with transaction.atomic():
        row = CircuitBreaker.objects.filter(kind=kind, scope=scope).first()
        if row is None or row.state == State.OK:
            return False
        details: dict[str, Any] = {"reset_by": getattr(acting_user, "email", None)}
        if kind == Kind.DAILY_LOSS:
            details["suppressed_day"] = timezone.now().date().isoformat()
        if kind == Kind.HL_DISCONNECT:
            details["operator_cleared"] = True
        audit_record(
            action="risk.breaker_reset",
            actor=acting_user,
            request=request,
            object_type="circuit_breaker",
            object_id=f"{kind}:{scope}",
            before={"state": row.state, "reason": row.reason},
            after={"state": State.OK},
            reason=reason,
        )
        return breaker_set(kind=kind, scope=scope, state=State.OK, reason=f"reset: {reason}", details=details)


def kill_switch_set(*, active: bool, mode: str = TradingState.HALTED, acting_user: Any, reason: str) -> bool:
    """The operator's kill switch: every market HALTED (or REDUCE_ONLY); closing and liquidation stay
    allowed. Audited."""
    if mode not in (TradingState.HALTED, TradingState.REDUCE_ONLY):
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "mode must be HALTED or REDUCE_ONLY.")
    if not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.", {"field": "reason"})
    with transaction.atomic():
        audit_record(
            action="risk.kill_switch",
            actor=acting_user,
            object_type="circuit_breaker",
            object_id="KILL_SWITCH:*",
            after={"active": active, "mode": mode},
            reason=reason,
        )
        return breaker_set(
            kind=Kind.KILL_SWITCH,
            state=State.TRIPPED if active else State.OK,
            reason=reason,
            details={"mode": mode, "by": getattr(acting_user, "email", None)},
            severity="P1",
        )


# ------------------------------------------------------------------------------------------ effects
def _apply_effect(row: CircuitBreaker) -> None:
    kind, scope, state = row.kind, row.scope, row.state
    active = state == State.TRIPPED
    if kind in FORCE_HL_REASON:
        routing_force_hl_set(asset=scope, reason=FORCE_HL_REASON[kind], active=active, detail=row.reason)
    elif kind == Kind.RESERVE:
        factor = risk_config().reserve_warning_threshold_factor if state != State.OK else Decimal(1)
        routing_threshold_factor_set(asset=GLOBAL, factor=factor)
        routing_force_hl_set(asset=GLOBAL, reason="reserve_low", active=active, detail=row.reason)
    elif kind == Kind.DRIFT:
        routing_hl_halt_set(asset=scope, halted=active, reason=row.reason if active else "")
    elif kind in (Kind.HL_DISCONNECT, Kind.KILL_SWITCH):
        markets_state_sync()


def markets_state_sync() -> int:
    """Write every market's trading state from the global breakers (most restrictive wins) and drop
    the markets cache in every process on commit. Returns the number of markets changed."""
    rows = {
        r.kind: r
        for r in CircuitBreaker.objects.filter(kind__in=[Kind.HL_DISCONNECT, Kind.KILL_SWITCH], scope=GLOBAL)
    }
    target, reason = TradingState.ACTIVE, ""
    kill = rows.get(Kind.KILL_SWITCH)
    disconnect = rows.get(Kind.HL_DISCONNECT)
    if kill is not None and kill.state == State.TRIPPED:
        target = kill.details.get("mode") or TradingState.HALTED
        reason = f"kill switch: {kill.reason}"
    if disconnect is not None and disconnect.state == State.TRIPPED:
        target, reason = TradingState.HALTED, f"HL disconnected: {disconnect.reason}"
    managed = ("kill switch:", "HL disconnected:")
    changed = 0
    for market in Market.objects.select_for_update().order_by("id"):
        if target == TradingState.ACTIVE:
            # only lift what breakers set; a state an operator set for one market by hand stays
            if market.trading_state == TradingState.ACTIVE or not market.state_reason.startswith(managed):
                continue
        elif market.trading_state == target and market.state_reason == reason[:200]:
            continue
        market.trading_state = target
        market.state_reason = reason[:200]
        market.updated_at = timezone.now()
        market.save(update_fields=["trading_state", "state_reason", "updated_at"])
        changed += 1
    if changed:
        invalidate("markets")
        broadcast_on_commit("markets", {"event": "trading_state", "state": target, "reason": reason})
    return changed


# ------------------------------------------------------------------------------------------ checks
def daily_loss_check(*, net_loss: Decimal | None = None) -> str:
    cfg = risk_config()
    loss = daily_net_loss() if net_loss is None else net_loss
    verdict = rules.level(loss, cfg.daily_loss_alert, cfg.daily_loss_trip)
    current = breaker_get(Kind.DAILY_LOSS)
    today = timezone.now().date().isoformat()
    if verdict == State.TRIPPED and current.details.get("suppressed_day") == today:
        verdict = State.WARNING  # an operator reset holds for the rest of the UTC day
    breaker_set(
        kind=Kind.DAILY_LOSS,
        state=verdict,
        reason=f"today's INTERNAL net loss {loss:.2f}",
        details={"net_loss": str(loss), "day": today},
    )
    return verdict


def reserve_check(*, balance: Decimal | None = None) -> str:
    cfg = risk_config()
    value = account_balance(AccountRef.platform(AccountKind.RISK_RESERVE)) if balance is None else balance
    verdict = rules.reserve_level(value, cfg.reserve_normal, cfg.reserve_halt)
    breaker_set(
        kind=Kind.RESERVE,
        state=verdict,
        reason=f"risk reserve {value:.2f} (normal ≥ {cfg.reserve_normal}, halt < {cfg.reserve_halt})",
        details={"balance": str(value)},
    )
    return verdict


def volatility_check(asset: str, *, now: float | None = None) -> bool:
    cfg = risk_config()
    now = time.time() if now is None else now
    window = [m for _t, m in mark_history(asset, cfg.volatility_window_seconds, now=now)]
    recent = [m for _t, m in mark_history(asset, cfg.volatility_reset_minutes * 60, now=now)]
    current = breaker_get(Kind.VOLATILITY, asset)
    tripped = rules.volatility_verdict(
        tripped=current.state == State.TRIPPED,
        window_marks=window,
        recent_marks=recent,
        move=cfg.volatility_move,
    )
    move = rules.price_range_move(window)
    breaker_set(
        kind=Kind.VOLATILITY,
        scope=asset,
        state=State.TRIPPED if tripped else State.OK,
        reason=f"{asset} moved {move * 100:.2f}% within {cfg.volatility_window_seconds // 60} min",
        details={"move": str(move)},
        severity="P1",
    )
    return tripped


def price_jump_event(asset: str, event: str, *, held_price: Decimal | None, mark: Decimal) -> None:
    """Record what ``breaker_rules.price_jump_observe`` decided in the watcher."""
    if event == "trip":
        breaker_set(
            kind=Kind.PRICE_JUMP,
            scope=asset,
            state=State.TRIPPED,
            reason=f"{asset} mark jumped to {mark}; holding the last valid price {held_price}",
            details={"held_price": str(held_price), "jump_mark": str(mark)},
            severity="P1",
        )
    elif event == "reset":
        breaker_set(
            kind=Kind.PRICE_JUMP,
            scope=asset,
            state=State.OK,
            reason="normal updates again",
            details={"held_price": None},
        )


def hl_latency_check(*, latency_ms: float | None = None) -> str:
    """Market-data latency over the alert level: alert; over the trip level: stop internalizing.
    Measured by the feed as websocket round trips (``breaker_rules.market_data_latency``), so a skewed
    HL clock can neither trip nor mask it. With no current measurement (no feed running, or the
    socket down) the state is kept: the HL_DISCONNECT breaker judges missing data."""
    cfg = risk_config()
    if latency_ms is None:
        latency_ms = _current_latency_ms(stale_after_s=cfg.disconnect_alert_seconds)
    if latency_ms is None:
        return breaker_get(Kind.HL_LATENCY).state
    verdict = rules.level(
        Decimal(str(latency_ms)), Decimal(cfg.latency_alert_ms), Decimal(cfg.latency_trip_ms)
    )
    breaker_set(
        kind=Kind.HL_LATENCY,
        state=verdict,
        reason=f"HL market-data latency {latency_ms:.0f} ms (websocket round trip)",
        details={"latency_ms": latency_ms},
    )
    return verdict


def _current_latency_ms(*, stale_after_s: float, now: float | None = None) -> float | None:
    sample = get_latency(FEED_NAME)
    now = time.time() if now is None else now
    if sample is None or sample.age(now) > stale_after_s:
        return None
    unanswered = sample.unanswered_ms(now)
    figure = rules.market_data_latency(
        [Decimal(str(v)) for v in sample.round_trips_ms],
        Decimal(str(round(unanswered, 3))) if unanswered is not None else None,
    )
    return float(figure) if figure is not None else None


def hl_disconnect_check(*, seconds_down: float | None = None) -> str:
    """No HL data for > 10 s: alert; > 60 s: every market HALTED (liquidation continues on the last
    valid prices). Resets once data flows again, or by an operator."""
    cfg = risk_config()
    if seconds_down is None:
        seconds_down = _seconds_since_hl_data()
    verdict = rules.level(
        Decimal(str(seconds_down)),
        Decimal(cfg.disconnect_alert_seconds),
        Decimal(cfg.disconnect_trip_seconds),
    )
    current = breaker_get(Kind.HL_DISCONNECT)
    if current.state == State.TRIPPED and verdict != State.TRIPPED and seconds_down > 2:
        verdict = State.TRIPPED  # stay halted until data flows again
    breaker_set(
        kind=Kind.HL_DISCONNECT,
        state=verdict,
        reason=f"no HL market data for {seconds_down:.0f} s",
        details={"seconds_down": round(seconds_down, 1)},
    )
    return verdict


def _seconds_since_hl_data() -> float:
    status = feed_status()
    if status is None or status.last_message_at is None:
        return 0.0  # no feed has ever run (tests, a fresh install): nothing to judge
    return max(0.0, (timezone.now() - status.last_message_at).total_seconds())


def breakers_tick(*, now: datetime | None = None) -> dict[str, str]:
    """The periodic check (beat): every automatic breaker re-evaluated from current data."""
    out: dict[str, str] = {}
    for name, fn in (
        ("daily_loss", daily_loss_check),
        ("reserve", reserve_check),
        ("hl_latency", hl_latency_check),
        ("hl_disconnect", hl_disconnect_check),
    ):
        try:
            out[name] = fn()
        except Exception:
            logger.exception("breaker check %s failed", name)
    for market in markets_list():
        try:
            volatility_check(market.asset)
        except Exception:
            logger.exception("volatility check for %s failed", market.asset)
    return out


def breakers_active() -> list[CircuitBreaker]:
    return list(CircuitBreaker.objects.exclude(state=State.OK))
