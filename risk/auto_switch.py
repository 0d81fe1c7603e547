"""Automatic routing-mode switching (spec 01), only where ``auto_switch_enabled``.

Evaluated on every exposure change (the hedge debouncer's event hook) and every 5 s (beat). Per asset,
``routing.decision.auto_mode`` applies the triggers with hysteresis (leave HL_MODE only below 80 % of
its trigger, BETTING_MODE only above 120 %), so the mode does not flap. A switch goes through
``routing_mode_switch(trigger="AUTO")`` — mode log with the net exposure at the switch, audit row,
live push, outbox event — with a deterministic ``change_id`` (asset, the switch count so far, target),
so two evaluators racing on the same state make one switch, not two."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.db import transaction

from core.alerts.services import alert_raise, alert_resolve_condition
from risk.exposure import exposure_current
from routing.decision import AutoSwitchPolicy, Mode, Reason, auto_mode
from routing.models import RoutingModeLog
from routing.selectors import ROUTING_CACHE, asset_routing
from routing.services import routing_force_hl_set, routing_mode_switch

logger = logging.getLogger(__name__)


def exposure_limit_evaluate(asset: str, cfg: dict[str, Any], net: Decimal) -> bool | None:
    """Spec 10 ``max_internal_exposure``: force the asset to HL while |net internal exposure| is above
    its limit; clear it once back below the limit × the asset's HL exit factor (the same hysteresis as
    the HL_MODE auto-switch, so it does not flap). Returns the new state when it changed."""
    limit = cfg.get("max_internal_exposure")
    if limit is None:
        return None
    limit = Decimal(limit)
    active = Reason.MAX_INTERNAL_EXPOSURE in asset_routing(asset).force_hl_reasons
    size = abs(net)
    if not active and size > limit:
        wanted = True
    elif active and size < limit * Decimal(cfg.get("hl_exit_factor") or "0.8"):
        wanted = False
    else:
        return None
    detail = f"|net exposure| {size:,.0f} vs limit {limit:,.0f}"
    with transaction.atomic():
        changed = routing_force_hl_set(
            asset=asset, reason=Reason.MAX_INTERNAL_EXPOSURE, active=wanted, detail=detail
        )
    if changed and wanted:
        alert_raise(
            rule="risk.max_internal_exposure",
            severity="P1",
            subject=asset,
            message=f"{asset}: {detail}; new orders go to Hyperliquid",
            details={"net_exposure": str(net), "limit": str(limit)},
        )
    elif changed:
        alert_resolve_condition(rule="risk.max_internal_exposure", subject=asset, note=detail)
    return wanted if changed else None


def auto_switch_evaluate(*, assets: Iterable[str] | None = None) -> list[tuple[str, str, str]]:
    """Switch every auto-enabled asset whose exposure calls for another mode, and apply every asset's
    internal exposure limit. Returns the mode switches made as (asset, from, to)."""
    exposures = exposure_current()
    names = sorted(exposures) if assets is None else sorted(set(assets))
    snapshot = ROUTING_CACHE.get()
    made = []
    for asset in names:
        cfg = snapshot.resolved(asset)
        limit_view = exposures.get(asset)
        if limit_view is not None and limit_view.mark is not None:
            exposure_limit_evaluate(asset, cfg, limit_view.net_notional)
        if not cfg.get("auto_switch_enabled"):
            continue
        view = exposures.get(asset)
        if view is None or view.mark is None:
            continue  # no mark: no decision on a stale exposure
        net = view.net_notional
        current = Mode(cfg["routing_mode"])
        policy = AutoSwitchPolicy(
            hl_trigger=Decimal(cfg["hl_mode_exposure_threshold"]),
            betting_trigger=Decimal(cfg["betting_mode_exposure_threshold"]),
            hl_exit_factor=Decimal(cfg.get("hl_exit_factor") or "0.8"),
            betting_exit_factor=Decimal(cfg.get("betting_exit_factor") or "1.2"),
        )
        target = auto_mode(current=current, abs_net_exposure=abs(net), policy=policy)
        if target is current:
            continue
        seq = RoutingModeLog.objects.filter(asset=asset).count()
        result = routing_mode_switch(
            asset=asset,
            mode=target.value,
            acting_user=None,
            reason=f"auto: |net exposure| {abs(net):,.0f}",
            change_id=f"auto:{asset}:{seq}:{target.value}",
            trigger=RoutingModeLog.Trigger.AUTO,
            net_exposure=net.quantize(Decimal("0.000001")),
        )
        if result.changed:
            made.append((asset, current.value, target.value))
            alert_raise(
                rule="risk.auto_switch",
                severity="P2",
                subject=asset,
                message=f"{asset}: {current.value} → {target.value} (net exposure {net:,.0f})",
                details={"net_exposure": str(net), "from": current.value, "to": target.value},
            )
    return made
