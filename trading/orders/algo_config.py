"""The parent-order scheduler's configuration: database-backed (``AlgoConfig``), audited, cached per
process and dropped in every process when an edit commits. Defaults are the model's field defaults
(spec 02: off by default; HL's TWAP pace of a slice every 30 s)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from core.audit.services import audit_record
from core.defaults import register
from core.errors import ApplicationError, ErrorCode
from core.live_config import LiveConfig, invalidate
from core.money import DecimalShape, decimal_from_input
from trading.orders.parent_models import AlgoConfig


@dataclass(frozen=True, slots=True)
class AlgoSettings:
    enabled: bool
    min_parent_notional: Decimal
    tick_ms: int
    twap_slice_seconds: int
    twap_min_slice_seconds: int
    twap_min_duration_seconds: int
    twap_max_duration_seconds: int
    max_slices: int
    catch_up_factor: Decimal
    randomize_share: Decimal
    split_interval_seconds: int
    lease_seconds: int


FIELDS = tuple(AlgoSettings.__dataclass_fields__)


def _load() -> AlgoSettings:
    row = AlgoConfig.objects.filter(key="default").first() or AlgoConfig()
    return AlgoSettings(**{name: getattr(row, name) for name in FIELDS})


ALGO_CACHE: LiveConfig[AlgoSettings] = LiveConfig("trading_algo", _load)


def algo_settings() -> AlgoSettings:
    return ALGO_CACHE.get()


def _clean(field: str, value: Any) -> Any:
    model_field = AlgoConfig._meta.get_field(field)
    kind = model_field.get_internal_type()
    try:
        if kind == "BooleanField":
            if not isinstance(value, bool):
                raise InvalidOperation
            return value
        if kind == "DecimalField":
            shape = DecimalShape.of_column(model_field.max_digits, model_field.decimal_places)  # type: ignore[attr-defined]
            return decimal_from_input(value, shape, allow_zero=True)
        if isinstance(value, bool) or int(value) < 0 or int(value) != Decimal(str(value)):
            raise InvalidOperation
        return int(value)
    except (InvalidOperation, ValueError, TypeError, OverflowError):
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, f"Invalid value for {field}: {value!r}.", {"field": field}
        ) from None


@transaction.atomic
def algo_config_update(*, changes: dict[str, Any], acting_user: Any, reason: str) -> AlgoConfig:
    """Edit the scheduler's parameters; the audit row commits with the change, every process reloads."""
    if not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.", {"field": "reason"})
    unknown = set(changes) - set(FIELDS)
    if unknown:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, f"Not editable: {', '.join(sorted(unknown))}.")
    cleaned = {field: _clean(field, value) for field, value in changes.items()}
    row, _ = AlgoConfig.objects.select_for_update().get_or_create(key="default")
    before = {k: v for k, v in model_to_dict(row).items() if k in cleaned}
    for field, value in cleaned.items():
        setattr(row, field, value)
    row.updated_at = timezone.now()
    row.updated_by = acting_user if getattr(acting_user, "is_authenticated", False) else None
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError as exc:  # a CHECK constraint: the values are out of range or inconsistent
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, f"Inconsistent algo settings: {exc}") from None
    audit_record(
        action="trading.algo_config_update",
        actor=acting_user,
        object_type="algo_config",
        object_id="default",
        before=before,
        after=cleaned,
        reason=reason,
    )
    invalidate(ALGO_CACHE.name)
    return row


@register
def algo_defaults_ensure() -> None:
    if AlgoConfig.objects.get_or_create(key="default")[1]:
        invalidate(ALGO_CACHE.name)
