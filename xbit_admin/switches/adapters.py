"""Adapters from the switch catalogue to the store of the app that owns each value. Every write goes
through the owner's audited service; a switch whose owner cannot answer (a missing table on a fresh
database) is listed as unavailable instead of failing the page."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal
from typing import Any

from core.accounts.four_eyes import four_eyes_required
from core.alerts.services import alert_raise, alert_resolve_condition
from core.errors import ApplicationError, ErrorCode
from core.switches import store
from risk.config import risk_config, risk_config_update
from risk.hedge_config import hedge_config, hedge_config_update, hedge_mode_set
from routing.client_groups import client_group_config, client_group_config_update
from routing.models import GLOBAL, RoutingConfig, RoutingState
from routing.selectors import resolved_config
from routing.services import routing_config_update, routing_mode_switch
from trading.selectors import listed_assets
from wallets.config import chain_config, chain_config_update
from wallets.models import Chain
from xbit_admin.console.four_eyes_risk import risk_four_eyes_on, risk_four_eyes_set
from xbit_admin.switches.registry import Switch, register

SUPER = "manage_switches"
ROUTING = "manage_routing"
HEDGE = "manage_hedge"
RISK = "manage_risk_config"
MODES = ("HL_MODE", "NORMAL_MODE", "BETTING_MODE")
TRI = ("OFF", "SHADOW", "LIVE")
D = Decimal
logger = logging.getLogger(__name__)


# --- routing ---------------------------------------------------------------------------------------


def routing_assets() -> list[str]:
    assets = set(RoutingConfig.objects.exclude(asset=GLOBAL).values_list("asset", flat=True))
    assets |= set(RoutingState.objects.exclude(asset=GLOBAL).values_list("asset", flat=True))
    try:
        assets |= set(listed_assets())
    except Exception:  # markets not synced / trading absent: the routing rows are enough
        logger.debug("no listed markets for the switch scopes", exc_info=True)
    return sorted(assets)


def _global_get(field: str) -> Any:
    return RoutingConfig.objects.filter(asset=GLOBAL).values_list(field, flat=True).first()


def _global_setter(field: str) -> Any:
    def set_(scope: str, value: Any, acting_user: Any, reason: str) -> None:
        if field != "global_internalization_enabled":  # thresholds; the platform switch is not one
            _four_eyes_refuse("routing_config")
        routing_config_update(asset=GLOBAL, changes={field: value}, acting_user=acting_user, reason=reason)

    return set_


def _mode_get(asset: str) -> str:
    return str(resolved_config(asset)["routing_mode"]["value"])


def _mode_set(asset: str, value: Any, acting_user: Any, reason: str) -> None:
    routing_mode_switch(
        asset=asset, mode=value, acting_user=acting_user, reason=reason, change_id=f"sw:{uuid.uuid4().hex}"
    )


def _whitelist_get(scope: str) -> list[str]:
    return sorted(a for a in routing_assets() if resolved_config(a)["internalization_enabled"]["value"])


def _whitelist_set(scope: str, value: Any, acting_user: Any, reason: str) -> None:
    wanted = set(value)
    for asset in sorted(set(routing_assets()) | wanted):
        now = bool(resolved_config(asset)["internalization_enabled"]["value"])
        if now != (asset in wanted):
            routing_config_update(
                asset=asset,
                changes={"internalization_enabled": asset in wanted},
                acting_user=acting_user,
                reason=reason,
            )


def _client_groups_mode_set(scope: str, value: Any, acting_user: Any, reason: str) -> None:
    client_group_config_update(changes={"mode": value}, acting_user=acting_user, reason=reason)


def _register_routing() -> None:
    register(
        Switch(
            "global_internalization_enabled",
            "Global internalization",
            "bool",
            False,
            SUPER,
            "Off: nothing is internalized, every order goes to Hyperliquid.",
            get=lambda s: _global_get("global_internalization_enabled"),
            set=_global_setter("global_internalization_enabled"),
            owner="routing",
            consequences={
                "False": "Every new order goes to Hyperliquid; nothing is internalized.",
                "True": "Whitelisted assets are internalized again under their routing mode.",
            },
        )
    )
    register(
        Switch(
            "routing_mode",
            "Routing mode",
            "enum",
            "NORMAL_MODE",
            ROUTING,
            "Per asset (spec 01): HL_MODE sends every order to Hyperliquid.",
            get=_mode_get,
            set=_mode_set,
            owner="routing",
            choices=MODES,
            scopes=routing_assets,
            scoped=True,
            consequences={"HL_MODE": "New orders of this asset go to Hyperliquid."},
        )
    )
    for field, label, default in (
        ("normal_threshold", "Normal threshold", D(10_000)),
        ("betting_threshold", "Betting threshold", D(50_000)),
        ("max_internal_order_notional", "Max internal order notional", D(10_000)),
    ):
        register(
            Switch(
                field,
                label,
                "money",
                default,
                ROUTING,
                "USDC notional; see spec 01 (hard cap on one internalized order for the max).",
                get=lambda s, f=field: _global_get(f),
                set=_global_setter(field),
                owner="routing",
                minimum=D("0.000001"),
            )
        )
    register(
        Switch(
            "internalization_whitelist",
            "Internalization whitelist",
            "list",
            ["BTC", "ETH"],
            ROUTING,
            "Assets that may be internalized at all.",
            get=_whitelist_get,
            set=_whitelist_set,
            owner="routing",
        )
    )
    register(
        Switch(
            "auto_mode_switch",
            "Auto mode switch",
            "bool",
            False,
            ROUTING,
            "Modes follow |net exposure| automatically (spec 01).",
            get=lambda s: _global_get("auto_switch_enabled"),
            set=_global_setter("auto_switch_enabled"),
            owner="routing",
        )
    )
    register(
        Switch(
            "max_internal_exposure",
            "Max internal exposure",
            "money",
            D(500_000),
            ROUTING,
            "Default for every asset (per-asset overrides on the routing page): when |net internal "
            "exposure| goes above it the asset is forced to HL until it falls below it × the HL exit factor.",
            get=lambda s: _global_get("max_internal_exposure"),
            set=_global_setter("max_internal_exposure"),
            owner="routing",
            minimum=D("0.000001"),
        )
    )
    register(
        Switch(
            "client_groups_mode",
            "Client groups",
            "enum",
            "OFF",
            ROUTING,
            "Routing by client group (A: always Hyperliquid, B: internal) from the markout classifier "
            "and Risk Managers' overrides; rules on the client-risk page.",
            get=lambda s: str(client_group_config().mode),
            set=_client_groups_mode_set,
            owner="routing.client_groups",
            choices=TRI,
            consequences={
                "OFF": "Every client routes by the size rules; the classifier does not run.",
                "SHADOW": "Clients are classified; orders still route by size and the decision log "
                "records what each client's group would have done.",
                "LIVE": "Group A clients' orders go to Hyperliquid, group B clients' stay internal.",
            },
        )
    )


# --- risk ------------------------------------------------------------------------------------------


def _risk_get(field: str) -> Any:
    return getattr(risk_config(), field)


def _four_eyes_refuse(kind: str) -> None:
    """Under the ``risk_four_eyes`` switch a risk or routing-threshold value is proposed (Risk config or
    Routing page) and applied by a second person; the switches page does not change it directly."""
    if four_eyes_required(kind):
        raise ApplicationError(
            ErrorCode.FOUR_EYES_REQUIRED,
            "Four eyes on risk is on: propose this change on the Risk config or Routing page; a second "
            "Risk Manager applies it.",
        )


def _risk_setter(field: str) -> Any:
    def set_(scope: str, value: Any, acting_user: Any, reason: str) -> None:
        _four_eyes_refuse("risk_config")
        risk_config_update(changes={field: value}, acting_user=acting_user, reason=reason)

    return set_


RISK_FIELDS: tuple[tuple[str, str, str, Any, str], ...] = (
    (
        "liquidation_sweep_ms",
        "Liquidation sweep interval (ms)",
        "int",
        1000,
        "Periodic safety sweep (500–2,000).",
    ),
    ("reserve_halt", "Reserve minimum", "money", D(200_000), "Below it internalization halts (spec 05)."),
    ("reserve_normal", "Reserve normal level", "money", D(500_000), "Spec 05."),
    ("daily_loss_alert", "Daily loss alert", "money", D(100_000), "Today's INTERNAL net loss (spec 05)."),
    ("daily_loss_trip", "Daily loss limit", "money", D(500_000), "Trips the daily-loss breaker."),
    ("volatility_move", "Volatility %", "number", D("0.05"), "Mark move within the window → force-HL."),
    ("latency_alert_ms", "HL latency alert (ms)", "int", 200, "Spec 05."),
    ("latency_trip_ms", "HL latency trip (ms)", "int", 500, "Force-HL above it."),
    ("drift_alert_rate", "Drift alert level", "number", D("0.01"), "Spec 04."),
    ("drift_critical_rate", "Drift critical level", "number", D("0.05"), "Spec 04: P0 and breaker."),
)


def _liquidation_mode_set(scope: str, value: Any, acting_user: Any, reason: str) -> None:
    store.core_value_set(name="liquidation_mode", value=value, acting_user=acting_user, reason=reason)
    if value == store.LIQ_OFF:
        liquidation_off_alert(reason)
    else:
        alert_resolve_condition(rule="switches.liquidation_off", note=f"liquidation mode {value}")


def liquidation_off_alert(reason: str = "") -> None:
    """P0 while liquidation is OFF (raised on the change and re-raised by the beat while it lasts)."""

    alert_raise(
        rule="switches.liquidation_off",
        severity="P0",
        message=f"The liquidation engine is OFF: nothing is detected or closed. {reason}".strip(),
    )


def _register_risk() -> None:
    for field, label, kind, default, description in RISK_FIELDS:
        register(
            Switch(
                field,
                label,
                kind,
                default,
                RISK,
                description,
                get=lambda s, f=field: _risk_get(f),
                set=_risk_setter(field),
                owner="risk",
                minimum=D(0),
            )
        )
    register(
        Switch(
            "liquidation_mode",
            "Liquidation mode",
            "enum",
            store.LIQ_LIVE,
            SUPER,
            "SHADOW: detect and record what would be liquidated, close nothing. OFF raises a P0.",
            get=lambda s: store.liquidation_mode(),
            set=_liquidation_mode_set,
            owner="switches",
            choices=TRI,
            consequences={
                "OFF": "Nothing is detected or liquidated; a P0 alert stays open while it is off.",
                "SHADOW": "Liquidations are detected and recorded as SHADOW triggers; no position is closed.",
                "LIVE": "Liquidatable positions are closed again.",
            },
        )
    )


# --- hedge ---------------------------------------------------------------------------------------


def _hedge_mode_set(scope: str, value: Any, acting_user: Any, reason: str) -> None:
    hedge_mode_set(mode=value, acting_user=acting_user, reason=reason)


def _register_hedge() -> None:
    register(
        Switch(
            "hedge_mode",
            "Hedge mode",
            "enum",
            "LIVE",
            HEDGE,
            "SHADOW: compute and log hedge instructions, send nothing.",
            get=lambda s: str(hedge_config().hedge_mode),
            set=_hedge_mode_set,
            owner="risk.hedge_config",
            choices=TRI,
            consequences={
                "SHADOW": "Hedge instructions are computed and logged; nothing is sent to Hyperliquid.",
                "OFF": "The hedge engine computes nothing.",
                "LIVE": "Hedge instructions are sent to Hyperliquid.",
            },
        )
    )


HEDGE_FIELDS: tuple[tuple[str, str, str, Any, str], ...] = (
    ("max_leverage", "Hedge max leverage", "int", 5, "The ladder never exceeds it (cap 5)."),
    ("tier1_threshold", "Hedge tier 1 threshold", "money", D(100_000), "Spec 05."),
    ("tier1_ratio", "Hedge tier 1 ratio", "number", D("0.5"), "Share of net exposure hedged."),
    ("tier2_threshold", "Hedge tier 2 threshold", "money", D(500_000), "Spec 05."),
    ("tier2_ratio", "Hedge tier 2 ratio", "number", D("0.8"), "Share of net exposure hedged."),
    (
        "stop_internalization_above",
        "Hedge stop tier",
        "money",
        D(1_000_000),
        "Net exposure above it forces the asset to HL (spec 05).",
    ),
)


def _hedge_field_setter(field: str) -> Any:
    def set_(scope: str, value: Any, acting_user: Any, reason: str) -> None:
        hedge_config_update(changes={field: value}, acting_user=acting_user, reason=reason)

    return set_


def _register_hedge_fields() -> None:
    for field, label, kind, default, description in HEDGE_FIELDS:
        register(
            Switch(
                f"hedge_{field}" if not field.startswith("hedge_") else field,
                label,
                kind,
                default,
                HEDGE,
                description,
                get=lambda s, f=field: getattr(hedge_config(), f),
                set=_hedge_field_setter(field),
                owner="risk.hedge_config",
                minimum=D(0),
                maximum=D(5) if field == "max_leverage" else None,
            )
        )


# --- wallets -------------------------------------------------------------------------------------


def _user_chains() -> list[str]:
    return [c for c in Chain.values if c != Chain.ARBITRUM]


def _withdrawals_get(chain: str) -> bool:
    return bool(chain_config(chain).withdrawals_enabled)


def _withdrawals_set(chain: str, value: Any, acting_user: Any, reason: str) -> None:
    chain_config_update(
        chain=chain, changes={"withdrawals_enabled": value}, acting_user=acting_user, reason=reason
    )


def _register_wallets() -> None:
    register(
        Switch(
            "withdrawals_enabled",
            "Withdrawals enabled",
            "bool",
            True,
            SUPER,
            "Per chain: run-on defense.",
            get=_withdrawals_get,
            set=_withdrawals_set,
            owner="wallets",
            scopes=_user_chains,
            scoped=True,
            consequences={"False": "Users cannot withdraw on this chain; requests are refused."},
        )
    )


# --- the core's own ------------------------------------------------------------------------------


def _core_setter(name: str) -> Any:
    def set_(scope: str, value: Any, acting_user: Any, reason: str) -> None:
        store.core_value_set(name=name, value=value, acting_user=acting_user, reason=reason)

    return set_


def _register_core() -> None:
    register(
        Switch(
            "api_mode",
            "API mode",
            "enum",
            store.API_OPEN,
            SUPER,
            "REDUCE_ONLY: only closes, cancels, queries, withdrawals. MAINTENANCE: the trader API answers 503.",
            get=lambda s: store.api_mode(),
            set=_core_setter("api_mode"),
            owner="switches",
            choices=(store.API_OPEN, store.API_REDUCE_ONLY, store.API_MAINTENANCE),
            consequences={
                "OPEN": "The trader API accepts every request again.",
                "REDUCE_ONLY": "Opening orders are refused (REDUCE_ONLY); closes, cancels, queries and "
                "withdrawals still work.",
                "MAINTENANCE": "The trader API answers 503 MAINTENANCE with the message below; the "
                "console stays up.",
            },
        )
    )
    register(
        Switch(
            "api_maintenance_message",
            "Maintenance message",
            "text",
            store.DEFAULT_MAINTENANCE_MESSAGE,
            SUPER,
            "What the trader API says while in MAINTENANCE.",
            get=lambda s: store.core_value("api_maintenance_message"),
            set=_core_setter("api_maintenance_message"),
            owner="switches",
        )
    )
    register(
        Switch(
            "canary_cohort_percent",
            "Canary cohort %",
            "int",
            100,
            SUPER,
            "Share of users (stable hash of the user id) that internalization applies to.",
            get=lambda s: store.core_value("canary_cohort_percent"),
            set=_core_setter("canary_cohort_percent"),
            owner="switches",
            minimum=D(0),
            maximum=D(100),
        )
    )
    register(
        Switch(
            "canary_cohort_allowlist",
            "Canary allow-list",
            "list",
            [],
            SUPER,
            "User ids always in the cohort (test users).",
            get=lambda s: store.core_value("canary_cohort_allowlist"),
            set=_core_setter("canary_cohort_allowlist"),
            owner="switches",
        )
    )


def _four_eyes_get(scope: str) -> bool:
    return risk_four_eyes_on()


def _four_eyes_set(scope: str, value: Any, acting_user: Any, reason: str) -> None:
    risk_four_eyes_set(value=bool(value), acting_user=acting_user, reason=reason)


def _register_four_eyes() -> None:
    register(
        Switch(
            "risk_four_eyes",
            "Four eyes on risk",
            "bool",
            False,
            SUPER,
            "On: risk-config and routing-threshold changes are proposed by one Risk Manager and applied "
            "only when a second one approves (Four eyes page).",
            get=_four_eyes_get,
            set=_four_eyes_set,
            owner="console",
            consequences={
                "True": "Risk-config and routing-threshold edits become proposals; a second Risk Manager "
                "applies them. The switches page refuses direct edits of those values.",
                "False": "Risk Managers apply risk-config and routing-threshold changes directly again.",
            },
        )
    )


def register_all() -> None:
    _register_routing()
    _register_core()
    _register_risk()
    _register_hedge()
    _register_hedge_fields()
    _register_wallets()
    _register_four_eyes()
