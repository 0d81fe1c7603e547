"""The order tools' operator numbers (``TradingConfig``: batch size, the dead-man's switch's minimum
lead, the TP/SL check interval, how long an order waits for a quote Redis lost, how long a cancel is
retried when HL answers 5xx) changed through one audited service: a reason is required, the audit
row commits with the change and every process drops its cached settings."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from core.audit.services import audit_record
from core.errors import ApplicationError, ErrorCode
from core.live_config import invalidate
from trading.config import TRADING_CACHE
from trading.models import TradingConfig

# field → (lowest, highest) an operator may set: sane bounds, the defaults are the model's
BOUNDS = {
    "batch_max_orders": (1, 100),
    "deadman_min_lead_seconds": (1, 3600),
    "trigger_check_interval_ms": (50, 10_000),
    "quote_refill_wait_ms": (0, 10_000),
    "hl_cancel_retry_ms": (0, 10_000),
}


@transaction.atomic
def order_tools_config_update(*, changes: dict[str, Any], acting_user: Any, reason: str) -> TradingConfig:
    if not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.", {"field": "reason"})
    unknown = set(changes) - set(BOUNDS)
    if unknown:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, f"Not editable here: {', '.join(sorted(unknown))}."
        )
    for field, value in changes.items():
        low, high = BOUNDS[field]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ApplicationError(
                ErrorCode.VALIDATION_ERROR,
                f"{field} must be a whole number from {low} to {high}.",
                {"field": field, "min": low, "max": high},
            )
    row = TradingConfig.objects.select_for_update().get(key="default")
    before = {field: getattr(row, field) for field in changes}
    for field, value in changes.items():
        setattr(row, field, value)
    row.updated_at = timezone.now()
    row.save(update_fields=[*changes, "updated_at"])
    audit_record(
        action="trading.order_tools_config_update",
        actor=acting_user,
        object_type="trading_config",
        object_id="default",
        before=before,
        after=dict(changes),
        reason=reason,
    )
    invalidate(TRADING_CACHE.name)
    return row
