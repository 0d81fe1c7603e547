"""The routing decision (spec 01), as a pure function over plain values — no Django, no I/O.

Order of rules (first match wins):

1. degraded global mode                       → HYPERLIQUID (``degraded``)
2. a force-HL reason is active for the asset  → HYPERLIQUID (that reason)
3. internalization switched off globally      → HYPERLIQUID (``internalization_disabled``)
4. the asset is not whitelisted               → HYPERLIQUID (``not_whitelisted``)
5. the user is outside the canary cohort      → HYPERLIQUID (``cohort``)
6. the client is in group A                   → HYPERLIQUID (``client_group_a``)
7. HL_MODE                                    → HYPERLIQUID (``mode``)
8. notional above the hard internal cap       → HYPERLIQUID (``max_internal_order_notional``)
9. the client is in group B                   → INTERNAL (``client_group_b``), whatever the threshold
10. NORMAL_MODE / BETTING_MODE                → INTERNAL if notional ≤ threshold × factor, else HYPERLIQUID

The client's group (A: always Hyperliquid, B: internal, HYBRID: the size rules) is one more input; a
``shadow_group`` — the group the classifier proposes while it runs in shadow — is judged too, and what
it would have done is returned as ``shadow_route`` without changing the route.

If the result is HYPERLIQUID but HL routing is halted for the asset (critical drift), no venue may
take the order: the result is NONE with reason ``hl_halted`` and the order is rejected (NO_ROUTE).
Each order is judged alone; closing never comes here (it goes to the venue holding the position).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class Mode(StrEnum):
    HL_MODE = "HL_MODE"
    NORMAL_MODE = "NORMAL_MODE"
    BETTING_MODE = "BETTING_MODE"


class Route(StrEnum):
    INTERNAL = "INTERNAL"
    HYPERLIQUID = "HYPERLIQUID"
    NONE = "NONE"


class ClientGroup(StrEnum):
    A = "A"  # always Hyperliquid: the client's flow costs the B-book
    B = "B"  # internal: the B-book keeps the flow
    HYBRID = "HYBRID"  # the size rules


class Reason(StrEnum):
    THRESHOLD = "threshold"
    CLIENT_GROUP_A = "client_group_a"
    CLIENT_GROUP_B = "client_group_b"
    MODE = "mode"
    NOT_WHITELISTED = "not_whitelisted"
    INTERNALIZATION_DISABLED = "internalization_disabled"
    DEGRADED = "degraded"
    COHORT = "cohort"
    MAX_INTERNAL_ORDER_NOTIONAL = "max_internal_order_notional"
    HL_HALTED = "hl_halted"
    # force-HL reasons set by the risk domain (spec 01)
    VOLATILITY = "volatility"
    HL_LATENCY = "hl_latency"
    STALE_PRICE = "stale_price"
    NET_EXPOSURE_LIMIT = "net_exposure_limit"
    HEDGE_CAPACITY = "hedge_capacity"
    RESERVE_LOW = "reserve_low"
    DAILY_LOSS = "daily_loss"
    LIQUIDATION_FAILURE = "liquidation_failure"
    MAX_INTERNAL_EXPOSURE = "max_internal_exposure"
    MANUAL = "manual"


FORCE_HL_REASONS = frozenset(
    {
        Reason.VOLATILITY,
        Reason.HL_LATENCY,
        Reason.STALE_PRICE,
        Reason.NET_EXPOSURE_LIMIT,
        Reason.HEDGE_CAPACITY,
        Reason.RESERVE_LOW,
        Reason.DAILY_LOSS,
        Reason.LIQUIDATION_FAILURE,
        Reason.MAX_INTERNAL_EXPOSURE,
        Reason.MANUAL,
    }
)


@dataclass(frozen=True, slots=True)
class AssetRouting:
    """Everything the decision needs for one asset, resolved (per-asset overrides applied)."""

    mode: Mode
    normal_threshold: Decimal
    betting_threshold: Decimal
    internalization_enabled: bool
    max_internal_order_notional: Decimal
    global_internalization_enabled: bool = True
    degraded: bool = False
    force_hl_reasons: tuple[str, ...] = ()
    hl_halted: bool = False
    threshold_factor: Decimal = Decimal(1)


@dataclass(frozen=True, slots=True)
class Decision:
    route: Route
    reason: str
    mode: Mode
    threshold: Decimal | None
    client_group: ClientGroup = ClientGroup.HYBRID
    shadow_group: ClientGroup | None = None
    shadow_route: Route | None = None


def decide(
    *,
    notional: Decimal,
    config: AssetRouting,
    in_cohort: bool = True,
    client_group: ClientGroup = ClientGroup.HYBRID,
    shadow_group: ClientGroup | None = None,
) -> Decision:
    route, reason, threshold = _route(notional, config, in_cohort, client_group)
    if route is Route.HYPERLIQUID and config.hl_halted:
        route, reason = Route.NONE, Reason.HL_HALTED
    shadow = None
    if shadow_group is not None:
        shadow = _route(notional, config, in_cohort, shadow_group)[0]
        if shadow is Route.HYPERLIQUID and config.hl_halted:
            shadow = Route.NONE
    return Decision(route, reason, config.mode, threshold, client_group, shadow_group, shadow)


def _route(
    notional: Decimal, config: AssetRouting, in_cohort: bool, group: ClientGroup
) -> tuple[Route, str, Decimal | None]:
    if config.degraded:
        return Route.HYPERLIQUID, Reason.DEGRADED, None
    if config.force_hl_reasons:
        return Route.HYPERLIQUID, config.force_hl_reasons[0], None
    if not config.global_internalization_enabled:
        return Route.HYPERLIQUID, Reason.INTERNALIZATION_DISABLED, None
    if not config.internalization_enabled:
        return Route.HYPERLIQUID, Reason.NOT_WHITELISTED, None
    if not in_cohort:
        return Route.HYPERLIQUID, Reason.COHORT, None
    if group is ClientGroup.A:
        return Route.HYPERLIQUID, Reason.CLIENT_GROUP_A, None
    if config.mode is Mode.HL_MODE:
        return Route.HYPERLIQUID, Reason.MODE, None
    if notional > config.max_internal_order_notional:
        return Route.HYPERLIQUID, Reason.MAX_INTERNAL_ORDER_NOTIONAL, config.max_internal_order_notional
    if group is ClientGroup.B:
        return Route.INTERNAL, Reason.CLIENT_GROUP_B, None
    base = config.normal_threshold if config.mode is Mode.NORMAL_MODE else config.betting_threshold
    threshold = base * config.threshold_factor
    if notional <= threshold:
        return Route.INTERNAL, Reason.THRESHOLD, threshold
    return Route.HYPERLIQUID, Reason.THRESHOLD, threshold


@dataclass(frozen=True, slots=True)
class AutoSwitchPolicy:
    hl_trigger: Decimal
    betting_trigger: Decimal
    hl_exit_factor: Decimal = Decimal("0.8")
    betting_exit_factor: Decimal = Decimal("1.2")


def auto_mode(*, current: Mode, abs_net_exposure: Decimal, policy: AutoSwitchPolicy) -> Mode:
    """Spec 01 auto-switch with hysteresis: enter HL_MODE at ≥ hl trigger and leave it only below
    hl trigger × 0.8; enter BETTING_MODE at ≤ betting trigger and leave it only above × 1.2."""
    exposure = abs(abs_net_exposure)
    if current is Mode.HL_MODE:
        if exposure >= policy.hl_trigger * policy.hl_exit_factor:
            return Mode.HL_MODE
    elif current is Mode.BETTING_MODE and exposure <= policy.betting_trigger * policy.betting_exit_factor:
        return Mode.BETTING_MODE
    if exposure >= policy.hl_trigger:
        return Mode.HL_MODE
    if exposure <= policy.betting_trigger:
        return Mode.BETTING_MODE
    return Mode.NORMAL_MODE
