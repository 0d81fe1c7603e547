"""The platform-state banner on every console page: API mode, degradation level, tripped
breakers, the order gate and Hyperliquid connectivity, each said in plain words with the live figure
(the latency now, not the one at the trip) and a link to its runbook. Read by ``/platform-state.json``
(the banner's script polls it), so pages pay nothing for it: two small queries and one Redis read."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from django.urls import reverse
from django.utils import timezone

from core.alerts.models import Alert
from core.platform.state import platform_ready
from core.switches.store import core_value
from risk import breaker_rules
from risk.breakers import FORCE_HL_REASON
from risk.config import risk_config
from risk.models import CircuitBreaker
from trading.marketdata import get_latency
from trading.models import Market
from trading.selectors import FEED_NAME, feed_status

Kind = CircuitBreaker.Kind
DEGRADATION = {
    1: "degradation level 1 (partial): internalization off, new orders go to Hyperliquid; queries, withdrawals and closes work",
    2: "degradation level 2 (read-only + limited): the trader API is reduce-only and every asset is in HL mode; queries, withdrawals and closes at market work",
    3: "degradation level 3 (maintenance): the trader API answers 503 with the maintenance message",
}
API_MODE = {
    "REDUCE_ONLY": "the trader API is reduce-only: traders may close and withdraw but open nothing new",
    "MAINTENANCE": "the trader API is in maintenance: every trader request answers 503",
}


def hl_latency_now() -> float | None:
    """HL market-data latency now (the breaker's own figure: recent round trips and an unanswered ping),
    or None when no feed measured recently."""
    sample = get_latency(FEED_NAME)
    if sample is None:
        return None
    now = time.time()
    if sample.age(now) > risk_config().disconnect_alert_seconds:
        return None
    unanswered = sample.unanswered_ms(now)
    figure = breaker_rules.market_data_latency(
        [Decimal(str(v)) for v in sample.round_trips_ms],
        Decimal(str(round(unanswered, 3))) if unanswered is not None else None,
    )
    return float(figure) if figure is not None else None


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def _fmt(value: Any, places: int = 0) -> str:
    try:
        return f"{Decimal(str(value)):,.{places}f}"
    except Exception:
        return str(value)


def breaker_sentence(b: CircuitBreaker, *, latency_ms: float | None, feed_age_s: float | None) -> str:
    """What the breaker does now, in plain words, with the live figure where there is one."""
    cfg = risk_config()
    where = "" if b.scope in ("*", "") else f" on {b.scope}"
    warn = b.state == CircuitBreaker.State.WARNING
    if b.kind == Kind.HL_LATENCY:
        live = f"{_fmt(latency_ms)} ms" if latency_ms is not None else "not measured right now"
        limit = f"limit {_fmt(cfg.latency_trip_ms)} ms (alert at {_fmt(cfg.latency_alert_ms)} ms)"
        if warn:
            return f"HL market-data latency is {live}, close to the {limit}."
        return (
            "New orders are all sent to Hyperliquid: internalization halted because HL market-data latency "
            f"is {live}, {limit}."
        )
    if b.kind == Kind.HL_DISCONNECT:
        age = f"{_fmt(feed_age_s, 1)} s" if feed_age_s is not None else "unknown"
        if warn:
            return f"No HL market data for {age} (halt after {cfg.disconnect_trip_seconds} s)."
        return (
            f"Every market is HALTED: no HL market data (last message {age} ago, limit "
            f"{cfg.disconnect_trip_seconds} s). Liquidations keep running on the last valid prices."
        )
    if b.kind == Kind.DAILY_LOSS:
        loss = b.details.get("loss") or b.details.get("daily_net_loss")
        figure = f" today's INTERNAL net loss {_fmt(loss)} USDC," if loss is not None else ""
        if warn:
            return f"Daily loss is high:{figure} trips at {_fmt(cfg.daily_loss_trip)} USDC."
        return f"New orders are all sent to Hyperliquid:{figure} limit {_fmt(cfg.daily_loss_trip)} USDC."
    if b.kind == Kind.VOLATILITY:
        return f"New{where} orders go to Hyperliquid: the mark moved more than {_fmt(cfg.volatility_move * 100, 1)} % within {cfg.volatility_window_seconds // 60} minutes."
    if b.kind == Kind.PRICE_JUMP:
        return f"New{where} orders go to Hyperliquid and the last valid price is held: one update jumped more than {_fmt(cfg.price_jump_move * 100, 1)} %."
    if b.kind == Kind.RESERVE:
        if warn:
            return f"The risk reserve is low: routing thresholds are multiplied by {_fmt(cfg.reserve_warning_threshold_factor, 2)}."
        return f"New orders are all sent to Hyperliquid: the risk reserve is below {_fmt(cfg.reserve_halt)} USDC."
    if b.kind == Kind.DRIFT:
        return f"Hyperliquid routing is halted{where}: HL's P&L drifted from ours beyond the critical level."
    if b.kind == Kind.LIQUIDATION_FAILURE:
        return f"New{where} orders go to Hyperliquid: a liquidation failed and is escalated."
    if b.kind == Kind.KILL_SWITCH:
        effect = (b.details.get("mode") or b.details.get("action") or "halt").lower()
        return "Kill switch ON: every market is " + (
            "REDUCE-ONLY (closes only)." if "reduce" in effect else "HALTED (no new orders)."
        )
    return b.reason or b.get_kind_display()


def platform_state() -> dict[str, Any]:
    """Everything the banner shows, as JSON-ready values. ``level`` is "ok", "warn" or "bad"."""
    items: list[dict[str, Any]] = []
    api_mode = core_value("api_mode")
    level = int(core_value("degradation_level") or 0)
    if level:
        items.append(
            {
                "key": "degradation",
                "level": "bad" if level >= 2 else "warn",
                "text": _sentence(DEGRADATION.get(level, f"degradation level {level}")),
                "runbook": reverse("console:runbook", args=["switch", "degradation_level"]),
            }
        )
    if api_mode in API_MODE and not level:
        items.append(
            {
                "key": "api_mode",
                "level": "bad",
                "text": _sentence(API_MODE[api_mode]),
                "runbook": reverse("console:runbook", args=["switch", "api_mode"]),
            }
        )
    gate = platform_ready()
    if not gate.ready:
        items.append(
            {
                "key": "order_gate",
                "level": "bad",
                "text": f"The order gate is closed: new orders are refused ({gate.reason or 'no reason given'}).",
                "runbook": reverse("console:runbook", args=["switch", "order_gate"]),
            }
        )
    status = feed_status()
    feed_age = None
    if status is not None and status.last_message_at is not None:
        feed_age = (timezone.now() - status.last_message_at).total_seconds()
    latency = hl_latency_now()
    hl = {
        "connected": bool(status and status.connected),
        "last_message_age_s": round(feed_age, 1) if feed_age is not None else None,
        "latency_ms": round(latency, 1) if latency is not None else None,
    }
    if status is None and Market.objects.filter(is_delisted=False).exists():
        items.append(
            {
                "key": "hl",
                "level": "warn",
                "text": "Hyperliquid market data: no feed has reported yet (is the feed process running?).",
                "runbook": reverse("console:runbook", args=["alert", "marketdata.feed_down"]),
            }
        )
    if status is not None and not status.connected:
        items.append(
            {
                "key": "hl",
                "level": "bad",
                "text": "Hyperliquid market data is disconnected"
                + (f" (last message {_fmt(feed_age, 1)} s ago)." if feed_age is not None else "."),
                "runbook": reverse("console:runbook", args=["breaker", Kind.HL_DISCONNECT]),
            }
        )
    breakers = list(CircuitBreaker.objects.exclude(state=CircuitBreaker.State.OK).order_by("kind", "scope"))
    for b in breakers:
        items.append(
            {
                "key": f"breaker:{b.kind}:{b.scope}",
                "level": "bad" if b.state == CircuitBreaker.State.TRIPPED else "warn",
                "text": f"{b.get_kind_display()} breaker {b.state.lower()}{'' if b.scope in ('*', '') else ' (' + b.scope + ')'}: "
                + breaker_sentence(b, latency_ms=latency, feed_age_s=feed_age),
                "runbook": reverse("console:runbook", args=["breaker", b.kind]),
            }
        )
    p0 = list(
        Alert.objects.filter(state=Alert.State.OPEN, severity="P0")
        .order_by("-id")
        .values("id", "rule", "message")[:5]
    )
    return {
        "ok": not items,
        "level": "bad" if any(i["level"] == "bad" for i in items) else ("warn" if items else "ok"),
        "items": items,
        "summary": "All normal: API open, no breaker tripped, order gate open"
        + (
            f", HL connected ({_fmt(latency)} ms)."
            if status is not None and status.connected and latency is not None
            else ", HL connected."
            if status is not None and status.connected
            else "."
        ),
        "api_mode": api_mode,
        "degradation_level": level,
        "order_gate": {"ready": gate.ready, "reason": gate.reason},
        "hl": hl,
        "p0": [
            {
                "id": a["id"],
                "rule": a["rule"],
                "message": a["message"][:200],
                "runbook": reverse("console:runbook", args=["alert", a["rule"]]),
            }
            for a in p0
        ],
    }


def forced_hl_now() -> list[CircuitBreaker]:
    """Tripped breakers that force new orders to HL right now (the routing page's copy reads this)."""

    return list(
        CircuitBreaker.objects.filter(state=CircuitBreaker.State.TRIPPED, kind__in=list(FORCE_HL_REASON))
    )
