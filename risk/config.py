"""Risk configuration: database-backed, audited, cached per process (``LiveConfig``) and dropped in
every process when an edit commits. Defaults are spec 05's numbers (the model's field defaults)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.forms.models import model_to_dict
from django.http import HttpRequest
from django.utils import timezone

from core.accounts.four_eyes import four_eyes_required
from core.audit.services import audit_record
from core.defaults import register
from core.errors import ApplicationError, ErrorCode
from core.live_config import LiveConfig, invalidate
from core.money import DecimalShape, decimal_from_input
from risk.models import RiskConfig

JSON_NUMBER_INPUT = DecimalShape(12, 8)  # per-asset overrides (fractions, percentages)

NON_EDITABLE = {"id", "key", "updated_at", "updated_by"}


def _load() -> RiskConfig:
    row = RiskConfig.objects.filter(key="default").first()
    if row is None:
        # a fresh database (or a flushed test one): the defaults row, read back so every value has
        # its column's type (Decimal, not the default's literal)
        RiskConfig.objects.get_or_create(key="default")
        row = RiskConfig.objects.get(key="default")
    return row


RISK_CACHE: LiveConfig[RiskConfig] = LiveConfig("risk", _load)


def risk_config() -> RiskConfig:
    """The current thresholds (a shared instance: read it, never save it)."""
    return RISK_CACHE.get()


def editable_fields() -> list[str]:
    return [f.name for f in RiskConfig._meta.concrete_fields if f.name not in NON_EDITABLE]


def _within_bounds(model_field: Any, value: int) -> None:
    """The field's declared range (e.g. the sweep interval's 500–2,000 ms), said in the refusal."""
    try:
        model_field.run_validators(value)
    except DjangoValidationError as exc:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR,
            f"{model_field.name}: {' '.join(exc.messages)}",
            {"field": model_field.name},
        ) from None


def _clean(field: str, value: Any) -> Any:
    model_field = RiskConfig._meta.get_field(field)
    internal = model_field.get_internal_type()
    try:
        if internal == "DecimalField":  # plain decimal notation within the column
            shape = DecimalShape.of_column(model_field.max_digits, model_field.decimal_places)  # type: ignore[attr-defined]
            return decimal_from_input(value, shape, allow_zero=True)
        if internal in ("PositiveIntegerField", "PositiveSmallIntegerField"):
            if isinstance(value, bool) or int(value) < 0 or int(value) != Decimal(str(value)):
                raise InvalidOperation
            _within_bounds(model_field, int(value))
            return int(value)
        if internal == "BooleanField":
            if not isinstance(value, bool):
                raise InvalidOperation
            return value
        if internal == "JSONField":
            if not isinstance(value, dict):
                raise InvalidOperation
            return {
                str(k): str(decimal_from_input(v, JSON_NUMBER_INPUT, allow_zero=True))
                for k, v in value.items()
            }
    except (InvalidOperation, ValueError, TypeError, OverflowError):
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, f"Invalid value for {field}: {value!r}.", {"field": field}
        ) from None
    raise ApplicationError(ErrorCode.VALIDATION_ERROR, f"{field} is not editable.", {"field": field})


@transaction.atomic
def risk_config_update(
    *, changes: dict[str, Any], acting_user: Any, reason: str, request: HttpRequest | None = None
) -> RiskConfig:
    """Edit thresholds. Writes the audit row in the same transaction; every process reloads on commit."""
    if not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.", {"field": "reason"})
    if getattr(acting_user, "is_staff", False) and four_eyes_required("risk_config"):
        raise ApplicationError(  # the risk_four_eyes switch: a second Risk Manager applies a proposal
            ErrorCode.FOUR_EYES_REQUIRED,
            "Four eyes on risk is on: propose the change; a second person applies it.",
        )
    unknown = set(changes) - set(editable_fields())
    if unknown:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, f"Not editable: {', '.join(sorted(unknown))}.")
    cleaned = {field: _clean(field, value) for field, value in changes.items()}
    row, _ = RiskConfig.objects.select_for_update().get_or_create(key="default")
    before = {k: v for k, v in model_to_dict(row).items() if k in cleaned}
    for field, value in cleaned.items():
        setattr(row, field, value)
    row.updated_at = timezone.now()
    row.updated_by = acting_user if getattr(acting_user, "is_authenticated", False) else None
    try:
        with transaction.atomic():
            row.save()
    except Exception as exc:  # a CHECK constraint (e.g. halt above normal) says the combination is wrong
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, f"Inconsistent thresholds: {exc}") from None
    audit_record(
        action="risk.config_update",
        actor=acting_user,
        request=request,
        object_type="risk_config",
        object_id="default",
        before=before,
        after=cleaned,
        reason=reason,
    )
    invalidate(RISK_CACHE.name)
    return row


@register
def risk_defaults_ensure() -> None:
    if RiskConfig.objects.get_or_create(key="default")[1]:
        invalidate(RISK_CACHE.name)
