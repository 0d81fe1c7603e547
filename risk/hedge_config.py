"""The hedge engine's configuration (spec 05; spec 10 ``hedge_mode``): the ``HedgeConfig`` row read
through a process cache, the ``risk.hedge_policy`` policy made from it, and the audited edits of the
mode and the numbers."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction
from django.forms.models import model_to_dict
from django.http import HttpRequest
from django.utils import timezone

from core.audit.services import audit_record
from core.defaults import register
from core.errors import ApplicationError, ErrorCode
from core.live import broadcast_on_commit
from core.live_config import LiveConfig, invalidate
from risk.hedge_models import HedgeConfig
from risk.hedge_policy import HedgePolicy, Tier


def _load() -> HedgeConfig:
    HedgeConfig.objects.get_or_create(key="default")
    return HedgeConfig.objects.get(key="default")


HEDGE_CACHE: LiveConfig[HedgeConfig] = LiveConfig("hedge", _load)


def hedge_config() -> HedgeConfig:
    """The current hedge mode and policy numbers (a shared instance: read it, never save it)."""
    return HEDGE_CACHE.get()


def policy_for(cfg: HedgeConfig, *, unlimited_dehedge: bool = False) -> HedgePolicy:
    return HedgePolicy(
        tiers=(Tier(cfg.tier1_threshold, cfg.tier1_ratio), Tier(cfg.tier2_threshold, cfg.tier2_ratio)),
        stop_internalization_above=cfg.stop_internalization_above,
        min_order_notional=cfg.min_order_notional,
        max_leverage=min(5, max(1, cfg.max_leverage)),
        leverage_above_ladder=min(5, max(1, cfg.max_leverage)),
        max_slippage=cfg.max_slippage,
        dehedge_per_minute=Decimal(10**15) if unlimited_dehedge else cfg.dehedge_per_minute,
        stop_loss_margin_fraction=cfg.stop_loss_margin_fraction,
    )


@transaction.atomic
def hedge_mode_set(
    *, mode: str, acting_user: Any, reason: str, request: HttpRequest | None = None
) -> HedgeConfig:
    """Set ``hedge_mode`` (OFF / SHADOW / LIVE; spec 10). Audited in the same transaction; every process
    reloads on commit. Setting the current mode again changes nothing (no audit row)."""
    if mode not in HedgeConfig.Mode.values:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, f"Unknown hedge mode {mode!r}.", {"field": "mode"})
    if not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.", {"field": "reason"})
    row, _ = HedgeConfig.objects.select_for_update().get_or_create(key="default")
    if row.hedge_mode == mode:
        return row
    before = row.hedge_mode
    row.hedge_mode = mode
    row.updated_at = timezone.now()
    row.updated_by = acting_user if getattr(acting_user, "is_authenticated", False) else None
    row.save(update_fields=["hedge_mode", "updated_at", "updated_by"])
    audit_record(
        action="hedge.mode_set",
        actor=acting_user,
        request=request,
        object_type="hedge_config",
        object_id="default",
        before={"hedge_mode": before},
        after={"hedge_mode": mode},
        reason=reason,
    )
    invalidate(HEDGE_CACHE.name)
    broadcast_on_commit("hedge", {"event": "mode", "from": before, "to": mode})
    return row


EDITABLE = (
    "tier1_threshold",
    "tier1_ratio",
    "tier2_threshold",
    "tier2_ratio",
    "stop_internalization_above",
    "min_order_notional",
    "max_leverage",
    "max_slippage",
    "dehedge_per_minute",
    "stop_loss_margin_fraction",
    "debounce_seconds",
    "stop_loss_cooldown_seconds",
    "deleverage_fraction",
)


@transaction.atomic
def hedge_config_update(
    *, changes: dict[str, Any], acting_user: Any, reason: str, request: HttpRequest | None = None
) -> HedgeConfig:
    """Edit the hedge policy numbers (audited; the leverage cap can never exceed 5x)."""
    if not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.", {"field": "reason"})
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, f"Not editable: {', '.join(sorted(unknown))}.")
    row, _ = HedgeConfig.objects.select_for_update().get_or_create(key="default")
    before = {k: v for k, v in model_to_dict(row).items() if k in changes}
    for field, value in changes.items():
        try:
            number = Decimal(str(value))
        except ArithmeticError:
            raise ApplicationError(
                ErrorCode.VALIDATION_ERROR, f"Invalid {field}.", {"field": field}
            ) from None
        if not number.is_finite() or number < 0:
            raise ApplicationError(ErrorCode.VALIDATION_ERROR, f"Invalid {field}.", {"field": field})
        setattr(
            row,
            field,
            int(number)
            if field in ("max_leverage", "debounce_seconds", "stop_loss_cooldown_seconds")
            else number,
        )
    if not 1 <= row.max_leverage <= 5:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, "The hedge leverage cap is 1–5x.", {"field": "max_leverage"}
        )
    try:
        policy_for(row)
    except ValueError as exc:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, str(exc)) from None
    row.updated_at = timezone.now()
    row.updated_by = acting_user if getattr(acting_user, "is_authenticated", False) else None
    row.save()
    audit_record(
        action="hedge.config_update",
        actor=acting_user,
        request=request,
        object_type="hedge_config",
        object_id="default",
        before=before,
        after={k: str(v) for k, v in changes.items()},
        reason=reason,
    )
    invalidate(HEDGE_CACHE.name)
    return row


@register
def hedge_defaults_ensure() -> None:
    if HedgeConfig.objects.get_or_create(key="default")[1]:
        invalidate(HEDGE_CACHE.name)
