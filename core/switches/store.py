"""Values the switches app owns itself (API mode, liquidation mode, canary, degradation), read from a
process cache that every process drops when a write commits (``core.live_config``)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from core.audit.services import audit_record
from core.live_config import LiveConfig, invalidate
from core.switches.models import SwitchState

API_OPEN, API_REDUCE_ONLY, API_MAINTENANCE = "OPEN", "REDUCE_ONLY", "MAINTENANCE"
LIQ_OFF, LIQ_SHADOW, LIQ_LIVE = "OFF", "SHADOW", "LIVE"
DEFAULT_MAINTENANCE_MESSAGE = "XBIT is under maintenance. Trading resumes shortly; your funds are safe."

CORE_DEFAULTS: dict[str, Any] = {
    "api_mode": API_OPEN,
    "api_maintenance_message": DEFAULT_MAINTENANCE_MESSAGE,
    "liquidation_mode": LIQ_LIVE,
    "canary_stage": "",  # "" = no canary running (full configuration as operators set it)
    "canary_cohort_percent": 100,
    "canary_cohort_allowlist": [],
    # internal state, not switches: shown on the page, never edited directly
    "degradation_level": 0,
    "degradation_saved": {},
    "canary_baseline": {},
}


def _load() -> dict[str, Any]:
    values = dict(CORE_DEFAULTS)
    values.update(dict(SwitchState.objects.values_list("name", "value")))
    return values


SWITCH_CACHE: LiveConfig[dict[str, Any]] = LiveConfig("switches", _load)


def core_value(name: str) -> Any:
    """The value in force (µs: from memory). Unknown names are a programming error (KeyError)."""
    return SWITCH_CACHE.get()[name]


@transaction.atomic
def core_value_set(
    *, name: str, value: Any, acting_user: Any, reason: str, request: HttpRequest | None = None
) -> tuple[Any, Any]:
    """Write one core-owned value with its audit row; every process reloads on commit. Returns
    (old, new). Validation is the registry's job (``registry.Switch.clean``)."""
    if name not in CORE_DEFAULTS:
        raise KeyError(name)
    row, _ = SwitchState.objects.select_for_update().get_or_create(
        name=name, defaults={"value": CORE_DEFAULTS[name]}
    )
    old = row.value
    row.value = value
    row.updated_at = timezone.now()
    row.updated_by = acting_user if getattr(acting_user, "is_authenticated", False) else None
    row.save()
    audit_record(
        action="switches.core_set",
        actor=acting_user,
        request=request,
        object_type="switch",
        object_id=name,
        before={name: old},
        after={name: value},
        reason=reason,
    )
    invalidate(SWITCH_CACHE.name)
    return old, value


def api_mode() -> str:
    return str(core_value("api_mode"))


def liquidation_mode() -> str:
    """LIVE / SHADOW / OFF — read by the liquidation engine where it records and executes triggers."""
    return str(core_value("liquidation_mode"))
