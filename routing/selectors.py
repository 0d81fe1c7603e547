"""Reads for routing. ``asset_routing`` is the hot path: resolved per-asset configuration from memory."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.live_config import LiveConfig
from core.switches.store import SWITCH_CACHE
from routing.decision import AssetRouting, Mode
from routing.models import GLOBAL, RoutingConfig, RoutingState

CONFIG_FIELDS = (
    "routing_mode",
    "normal_threshold",
    "betting_threshold",
    "hl_mode_exposure_threshold",
    "betting_mode_exposure_threshold",
    "hl_exit_factor",
    "betting_exit_factor",
    "auto_switch_enabled",
    "internalization_enabled",
    "max_internal_order_notional",
    "max_internal_exposure",
)
GLOBAL_ONLY_FIELDS = ("global_internalization_enabled", "degraded")


@dataclass(frozen=True)
class RoutingSnapshot:
    configs: dict[str, dict[str, Any]]
    states: dict[str, RoutingState]

    def resolved(self, asset: str) -> dict[str, Any]:
        base = dict(self.configs[GLOBAL])
        for field, value in self.configs.get(asset, {}).items():
            if field in CONFIG_FIELDS and value is not None:
                base[field] = value
        return base

    def with_value(self, asset: str, field: str, value: Any) -> RoutingSnapshot:
        """A copy with one row's field replaced (what the configuration was before a change)."""
        configs = {name: dict(row) for name, row in self.configs.items()}
        configs.setdefault(asset, {})[field] = value
        return RoutingSnapshot(configs=configs, states=self.states)

    def internalized(self, assets: list[str]) -> list[str]:
        """The whitelist: the assets whose resolved ``internalization_enabled`` is on."""
        return sorted(a for a in assets if self.resolved(a)["internalization_enabled"])


def routing_snapshot_uncached() -> RoutingSnapshot:
    """The configuration as this transaction sees it now, bypassing the process cache."""
    return _load()


def _load() -> RoutingSnapshot:
    rows = RoutingConfig.objects.values("asset", *CONFIG_FIELDS, *GLOBAL_ONLY_FIELDS)
    configs = {row.pop("asset"): row for row in rows}
    if GLOBAL not in configs:
        raise RuntimeError("routing_config has no global row: migrations not applied?")
    states = {state.asset: state for state in RoutingState.objects.all()}
    return RoutingSnapshot(configs=configs, states=states)


ROUTING_CACHE: LiveConfig[RoutingSnapshot] = LiveConfig("routing", _load)


def asset_routing(asset: str) -> AssetRouting:
    snapshot = ROUTING_CACHE.get()
    resolved = snapshot.resolved(asset)
    glob = snapshot.configs[GLOBAL]
    state = snapshot.states.get(asset)
    platform = snapshot.states.get(GLOBAL)
    reasons: list[str] = []
    for source in (platform, state):
        if source is not None:
            reasons.extend(sorted(source.force_hl_reasons))
    factor = Decimal(1)
    for source in (platform, state):
        if source is not None:
            factor = min(factor, source.threshold_factor)
    return AssetRouting(
        mode=Mode(resolved["routing_mode"]),
        normal_threshold=resolved["normal_threshold"],
        betting_threshold=resolved["betting_threshold"],
        internalization_enabled=bool(resolved["internalization_enabled"]),
        max_internal_order_notional=resolved["max_internal_order_notional"],
        global_internalization_enabled=bool(glob["global_internalization_enabled"]),
        degraded=bool(glob["degraded"]),
        force_hl_reasons=tuple(reasons),
        hl_halted=bool(state and state.hl_halted) or bool(platform and platform.hl_halted),
        threshold_factor=factor,
    )


def resolved_config(asset: str) -> dict[str, Any]:
    """Effective configuration for an asset with where each value comes from (console and ops API)."""
    snapshot = ROUTING_CACHE.get()
    own = snapshot.configs.get(asset, {})
    out = {}
    for field in CONFIG_FIELDS:
        value = own.get(field)
        out[field] = {
            "value": value if value is not None else snapshot.configs[GLOBAL][field],
            "source": "asset" if value is not None else "global",
        }
    return out


def in_canary_cohort(user_id: int) -> bool:
    """Spec 10 canary cohort: internalization applies to the allow-listed test users and to
    ``canary_cohort_percent`` % of users by a stable hash of the user id (100 % = everyone, the
    default). From the switches' process cache: no query on the order path."""

    values = SWITCH_CACHE.get()
    percent = int(values["canary_cohort_percent"])
    if percent >= 100:
        return True
    if str(user_id) in values["canary_cohort_allowlist"]:
        return True
    digest = hashlib.blake2b(str(user_id).encode(), digest_size=8, person=b"xbit-canary").digest()
    return int.from_bytes(digest, "big") % 10_000 < percent * 100
