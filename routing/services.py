"""Writes for routing: configuration edits, mode switches, and the verdicts risk pushes down.

Every operator change writes its audit row in the same transaction and invalidates the in-memory
routing cache of every process on commit (``core.live_config``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from core.accounts.four_eyes import four_eyes_required
from core.audit.services import audit_record
from core.defaults import register
from core.errors import ApplicationError, ErrorCode
from core.events.services import outbox_emit
from core.live import broadcast_on_commit
from core.live_config import invalidate
from core.money import DecimalInputError, DecimalShape, decimal_from_input
from routing.decision import FORCE_HL_REASONS, Mode
from routing.defaults import GLOBAL_DEFAULTS, LAUNCH_WHITELIST
from routing.models import GLOBAL, RoutingConfig, RoutingModeLog, RoutingState
from routing.selectors import CONFIG_FIELDS, GLOBAL_ONLY_FIELDS, ROUTING_CACHE

logger = logging.getLogger(__name__)

MONEY_FIELDS = {
    "normal_threshold",
    "betting_threshold",
    "hl_mode_exposure_threshold",
    "betting_mode_exposure_threshold",
    "max_internal_order_notional",
    "max_internal_exposure",
}
FACTOR_FIELDS = {"hl_exit_factor", "betting_exit_factor"}
BOOL_FIELDS = {"auto_switch_enabled", "internalization_enabled", "global_internalization_enabled", "degraded"}


def _column_shape(field: str) -> DecimalShape:
    column = RoutingConfig._meta.get_field(field)
    return DecimalShape.of_column(column.max_digits, column.decimal_places)  # type: ignore[attr-defined]


def _clean(field: str, value: Any, *, is_global: bool) -> Any:
    if value is None:
        if is_global:
            raise ApplicationError(
                ErrorCode.VALIDATION_ERROR, f"The global row needs a value for {field}.", {"field": field}
            )
        return None
    if field in MONEY_FIELDS:
        try:  # plain decimal notation within the column
            return decimal_from_input(
                value, _column_shape(field), allow_zero=field == "betting_mode_exposure_threshold"
            )
        except DecimalInputError as exc:
            message = (
                f"{field} must be greater than zero (got {value})."
                if exc.reason in ("zero", "negative")
                else f"{field} must be a number: {exc.message}."
            )
            raise ApplicationError(
                ErrorCode.VALIDATION_ERROR, message, {"field": field, "reason": exc.reason}
            ) from None
    if field in FACTOR_FIELDS:
        try:
            number = decimal_from_input(value, _column_shape(field))
        except DecimalInputError as exc:
            raise ApplicationError(
                ErrorCode.VALIDATION_ERROR,
                f"{field} must be a number: {exc.message}.",
                {"field": field, "reason": exc.reason},
            ) from None
        if field == "hl_exit_factor" and not (0 < number <= 1):
            raise ApplicationError(
                ErrorCode.VALIDATION_ERROR, "hl_exit_factor must be in (0, 1].", {"field": field}
            )
        if field == "betting_exit_factor" and number < 1:
            raise ApplicationError(
                ErrorCode.VALIDATION_ERROR, "betting_exit_factor must be ≥ 1.", {"field": field}
            )
        return number
    if field in BOOL_FIELDS:
        if not isinstance(value, bool):
            raise ApplicationError(
                ErrorCode.VALIDATION_ERROR, f"{field} must be true or false.", {"field": field}
            )
        return value
    if field == "routing_mode":
        try:
            return Mode(value).value
        except ValueError:
            raise ApplicationError(
                ErrorCode.VALIDATION_ERROR, f"Unknown routing mode {value!r}.", {"field": field}
            ) from None
    raise ApplicationError(ErrorCode.VALIDATION_ERROR, f"{field} is not a routing setting.", {"field": field})


@transaction.atomic
def routing_config_update(
    *, asset: str, changes: dict[str, Any], acting_user: Any, reason: str, request: HttpRequest | None = None
) -> RoutingConfig:
    """Edit thresholds / whitelist / auto-switch for one asset (or the global row ``*``). A null value
    on an asset row means "inherit the global value". Mode changes go through ``routing_mode_switch``."""
    if not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.", {"field": "reason"})
    is_global = asset == GLOBAL
    thresholds = set(changes) - {"internalization_enabled", *GLOBAL_ONLY_FIELDS}
    if thresholds and getattr(acting_user, "is_staff", False) and four_eyes_required("routing_config"):
        raise ApplicationError(  # the risk_four_eyes switch: a second Risk Manager applies a proposal
            ErrorCode.FOUR_EYES_REQUIRED,
            "Four eyes on risk is on: propose the change; a second person applies it.",
        )
    allowed = set(CONFIG_FIELDS) - {"routing_mode"} | (set(GLOBAL_ONLY_FIELDS) if is_global else set())
    unknown = set(changes) - allowed
    if unknown:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, f"Not editable here: {', '.join(sorted(unknown))}."
        )
    cleaned = {field: _clean(field, value, is_global=is_global) for field, value in changes.items()}
    row, _ = RoutingConfig.objects.select_for_update().get_or_create(asset=asset)
    before = {field: getattr(row, field) for field in cleaned}
    for field, value in cleaned.items():
        setattr(row, field, value)
    row.updated_at = timezone.now()
    row.updated_by = acting_user if getattr(acting_user, "is_authenticated", False) else None
    row.save()
    audit_record(
        action="routing.config_update",
        actor=acting_user,
        request=request,
        object_type="routing_config",
        object_id=asset,
        before=before,
        after=cleaned,
        reason=reason,
    )
    invalidate(ROUTING_CACHE.name)
    broadcast_on_commit("routing", {"event": "config", "asset": asset})
    return row


@dataclass(frozen=True)
class ModeSwitchResult:
    changed: bool
    log: RoutingModeLog | None
    message: str


def routing_mode_switch(
    *,
    asset: str,
    mode: str,
    acting_user: Any,
    reason: str,
    change_id: str,
    trigger: str = RoutingModeLog.Trigger.MANUAL,
    net_exposure: Decimal | None = None,
    request: HttpRequest | None = None,
) -> ModeSwitchResult:
    """Switch an asset's routing mode (spec 01). Idempotent on ``change_id``: a replay returns the
    first result. Switching to the current mode changes nothing and says so. Writes
    ``routing_mode_logs`` and the audit row atomically; on commit the caches drop, consoles are pushed
    and the event goes to the outbox (notifiers tell the risk channel)."""
    try:
        target = Mode(mode)
    except ValueError:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, f"Unknown routing mode {mode!r}.", {"field": "mode"}
        ) from None
    if asset == GLOBAL:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "Modes are set per asset.")
    if not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.", {"field": "reason"})
    if not change_id or len(change_id) > 80:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, "change_id must be 1–80 characters.", {"field": "change_id"}
        )
    existing = RoutingModeLog.objects.filter(change_id=change_id).first()
    if existing is not None:
        return _replay(existing, asset, target)
    try:
        with transaction.atomic():
            glob = RoutingConfig.objects.get(asset=GLOBAL)
            row, _ = RoutingConfig.objects.select_for_update().get_or_create(asset=asset)
            current = Mode(row.routing_mode or glob.routing_mode or Mode.NORMAL_MODE)
            if current is target:
                return ModeSwitchResult(
                    False, None, f"{asset} is already in {target.value}; nothing changed."
                )
            row.routing_mode = target.value
            row.updated_at = timezone.now()
            operator = acting_user if getattr(acting_user, "is_authenticated", False) else None
            row.updated_by = operator
            row.save(update_fields=["routing_mode", "updated_at", "updated_by"])
            log = RoutingModeLog.objects.create(
                change_id=change_id,
                asset=asset,
                from_mode=current.value,
                to_mode=target.value,
                trigger=trigger,
                operator=operator,
                net_exposure_at_switch=net_exposure,
                reason=reason,
            )
            audit_record(
                action="routing.mode_switch",
                actor=acting_user,
                request=request,
                object_type="asset",
                object_id=asset,
                before={"mode": current.value},
                after={"mode": target.value, "trigger": trigger},
                reason=reason,
            )
            payload = {
                "asset": asset,
                "from_mode": current.value,
                "to_mode": target.value,
                "trigger": trigger,
                "operator": getattr(operator, "email", None),
                "reason": reason,
                "net_exposure": str(net_exposure) if net_exposure is not None else None,
                "at": log.created_at.isoformat(),
            }
            outbox_emit(topic="routing.mode_changed", aggregate=f"asset:{asset}", payload=payload)
            invalidate(ROUTING_CACHE.name)
            broadcast_on_commit("routing", {"event": "mode", **payload})
            return ModeSwitchResult(True, log, f"{asset}: {current.value} → {target.value}.")
    except IntegrityError:
        # a concurrent request with the same change_id won the race: answer with its result
        return _replay(RoutingModeLog.objects.get(change_id=change_id), asset, target)


def _replay(log: RoutingModeLog, asset: str, target: Mode) -> ModeSwitchResult:
    if log.asset != asset or log.to_mode != target.value:
        raise ApplicationError(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            "This change_id was already used for a different switch.",
            {"change_id": log.change_id, "asset": log.asset, "to_mode": log.to_mode},
        )
    return ModeSwitchResult(True, log, f"{asset}: {log.from_mode} → {log.to_mode} (already applied).")


def _state_for_update(asset: str) -> RoutingState:
    state, _ = RoutingState.objects.select_for_update().get_or_create(asset=asset)
    return state


@transaction.atomic
def routing_force_hl_set(*, asset: str, reason: str, active: bool, detail: str = "") -> bool:
    """Risk's command: add or clear a force-HL reason for an asset (``*`` = every asset).
    Returns True when the state changed. Idempotent: setting an active reason again only refreshes it."""
    if reason not in FORCE_HL_REASONS:
        raise ValueError(f"not a force-HL reason: {reason}")
    state = _state_for_update(asset)
    reasons = dict(state.force_hl_reasons)
    changed = (reason in reasons) != active
    if active:
        reasons[reason] = {
            "since": reasons.get(reason, {}).get("since") or timezone.now().isoformat(),
            "detail": detail,
        }
    else:
        reasons.pop(reason, None)
    state.force_hl_reasons = reasons
    state.updated_at = timezone.now()
    state.save(update_fields=["force_hl_reasons", "updated_at"])
    if changed:
        invalidate(ROUTING_CACHE.name)
        broadcast_on_commit(
            "routing", {"event": "force_hl", "asset": asset, "reason": reason, "active": active}
        )
    return changed


@transaction.atomic
def routing_hl_halt_set(*, asset: str, halted: bool, reason: str = "") -> bool:
    """Halt (or resume) HL routing for an asset — critical drift (spec 04) or a failing HL account."""
    state = _state_for_update(asset)
    if state.hl_halted == halted:
        return False
    state.hl_halted = halted
    state.hl_halt_reason = reason if halted else ""
    state.updated_at = timezone.now()
    state.save(update_fields=["hl_halted", "hl_halt_reason", "updated_at"])
    invalidate(ROUTING_CACHE.name)
    broadcast_on_commit("routing", {"event": "hl_halt", "asset": asset, "halted": halted, "reason": reason})
    return True


@transaction.atomic
def routing_threshold_factor_set(*, asset: str = GLOBAL, factor: Decimal) -> bool:
    """Scale the routing thresholds (reserve warning lowers them, spec 05). 1 = unchanged."""
    if not (0 < factor <= 1):
        raise ValueError("factor must be in (0, 1]")
    state = _state_for_update(asset)
    if state.threshold_factor == factor:
        return False
    state.threshold_factor = factor
    state.updated_at = timezone.now()
    state.save(update_fields=["threshold_factor", "updated_at"])
    invalidate(ROUTING_CACHE.name)
    return True


@register
def routing_defaults_ensure() -> None:
    """Idempotent: the global row and launch whitelist exist (see ``core.defaults``)."""

    created = RoutingConfig.objects.get_or_create(asset=GLOBAL, defaults=GLOBAL_DEFAULTS)[1]
    for asset in LAUNCH_WHITELIST:
        created |= RoutingConfig.objects.get_or_create(
            asset=asset, defaults={"internalization_enabled": True}
        )[1]
    if created:
        invalidate(ROUTING_CACHE.name)
