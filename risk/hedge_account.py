"""The platform's hedge account on HL (spec 05): its gateway, the mirror of its positions in
``HedgePosition`` (HL is the source of truth: re-read after every hedge action and every 5 s), its
health verdict on the margin ratio, and the force-HL reasons the hedge engine sets and clears."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.alerts.services import alert_raise, alert_resolve_condition
from core.live import broadcast_on_commit
from core.money import ZERO
from risk.hedge_models import HedgePosition
from risk.hedge_policy import health_level
from routing.models import RoutingState
from routing.services import routing_force_hl_set, routing_hl_halt_set
from trading.hl_accounts import (
    hl_account_snapshot,  # the shared HLAccountSnapshot writer (console, metrics)
    margin_ratio,
)
from trading.venues.hl import gateway

logger = logging.getLogger(__name__)

HALT_REASON = "hedge account margin ratio below 150%"
# the details of the force-HL reasons this engine sets (see ``hedge_force_hl``)
CAPACITY_DETAIL = "capacity"
FAILURE_DETAIL = "hedge orders failing"


def hedge_gateway() -> Any:
    """The hedge account's HL gateway; None when it is not configured."""
    return gateway("hedge")


def hedge_positions_sync(*, state: dict[str, Any] | None = None, gw: Any = None) -> dict[str, HedgePosition]:
    """Mirror the hedge account's positions (HL is the source of truth) into ``HedgePosition``; an asset
    HL no longer shows is set flat. Returns the rows by asset. Also records the account snapshot
    (console, health alerts) when it read the state itself."""
    if state is None:
        gw = gw or hedge_gateway()
        if gw is None:
            return {p.asset: p for p in HedgePosition.objects.all()}
        state = gw.user_state()
        hedge_account_snapshot(gw, state)
    now = timezone.now()
    seen: dict[str, dict[str, Any]] = {}
    for item in state.get("assetPositions", []):
        p = item["position"]
        seen[p["coin"]] = p
    with transaction.atomic():
        rows = {r.asset: r for r in HedgePosition.objects.select_for_update().order_by("pk")}
        for asset, p in seen.items():
            funding = p.get("cumFunding") or {}
            values = {
                "size": Decimal(p["szi"]),
                "entry_price": Decimal(p["entryPx"]) if p.get("entryPx") else None,
                "position_value": Decimal(p.get("positionValue") or 0),
                "unrealized_pnl": Decimal(p.get("unrealizedPnl") or 0),
                "margin_used": Decimal(p.get("marginUsed") or 0),
                "leverage": int((p.get("leverage") or {}).get("value") or 0),
                "liquidation_price": Decimal(p["liquidationPx"]) if p.get("liquidationPx") else None,
                "funding_since_open": Decimal(funding.get("sinceOpen") or 0),
                "funding_all_time": Decimal(funding.get("allTime") or 0),
                "updated_at": now,
            }
            row = rows.get(asset)
            if row is None:
                rows[asset] = HedgePosition.objects.create(asset=asset, **values)
            else:
                for k, v in values.items():
                    setattr(row, k, v)
                row.save()
        for asset, row in rows.items():
            if asset not in seen and row.size != 0:
                row.size = ZERO
                row.position_value = row.unrealized_pnl = row.margin_used = ZERO
                row.entry_price = row.liquidation_price = None
                row.funding_since_open = ZERO
                row.updated_at = now
                row.save()
        broadcast_on_commit(
            "hedge",
            {"event": "positions", "positions": {a: str(r.size) for a, r in rows.items()}},
        )
    return rows


def hedge_account_snapshot(gw: Any, state: dict[str, Any]) -> None:
    """Record the account's state read from HL (console, health alerts); never raises."""
    try:
        hl_account_snapshot(gw, state)
    except Exception:  # the snapshot is informative; it must never stop a hedge decision
        logger.exception("hedge account snapshot failed")


# ------------------------------------------------------------------------------------------ health
def hedge_health_verdict(state: dict[str, Any]) -> str:
    """Spec 05 levels on the hedge account's margin ratio, with their effects (alerts, HL halt)."""
    ratio = margin_ratio(state)
    level = health_level(ratio)
    value = Decimal(state.get("marginSummary", {}).get("accountValue", "0"))
    mm = Decimal(state.get("crossMaintenanceMarginUsed", "0"))
    top_up = max(ZERO, 5 * mm - value).quantize(Decimal(1))
    if level in ("alert", "deleverage", "halt"):
        alert_raise(
            rule="risk.hedge.top_up",
            severity="P1",
            subject="hedge",
            message=f"hedge account margin ratio {ratio:.0%}: top up {top_up:,} from the capital pool",
            details={"margin_ratio": str(ratio), "top_up": str(top_up)},
        )
    else:
        alert_resolve_condition(rule="risk.hedge.top_up", subject="hedge")
    if level in ("deleverage", "halt"):
        alert_raise(
            rule="risk.hedge.deleverage",
            severity="P0",
            subject="hedge",
            message=f"hedge account margin ratio {ratio:.0%} below 200%: de-leveraging the hedges",
        )
    else:
        alert_resolve_condition(rule="risk.hedge.deleverage", subject="hedge")
    ours = RoutingState.objects.filter(asset="*", hl_halted=True, hl_halt_reason=HALT_REASON).exists()
    if level == "halt":
        alert_raise(
            rule="risk.hedge.halt",
            severity="P0",
            subject="hedge",
            message=f"hedge account margin ratio {ratio:.0%} below 150%: new HL opens halted",
        )
        if not ours:
            routing_hl_halt_set(asset="*", halted=True, reason=HALT_REASON)
    else:
        alert_resolve_condition(rule="risk.hedge.halt", subject="hedge")
        if ours:
            routing_hl_halt_set(asset="*", halted=False)
    return level


def hedge_force_hl(asset: str, reason: str, active: bool, detail: str) -> None:
    """Set or clear a force-HL reason; clear only what this engine set with ``detail`` (a failure
    force is not lifted by a capacity pass and vice versa)."""
    state = RoutingState.objects.filter(asset=asset).first()
    present = state is not None and reason in (state.force_hl_reasons or {})
    if active:
        if not present:
            routing_force_hl_set(asset=asset, reason=reason, active=True, detail=detail)
        return
    if (
        present
        and state is not None
        and str(state.force_hl_reasons[reason].get("detail", "")).startswith(detail)
    ):
        routing_force_hl_set(asset=asset, reason=reason, active=False)
