"""Client groups for routing: the store the order path reads (from memory, per process) and the writes
that change it — the classifier's assignments and a Risk Manager's override, each with its reason and
history row; every process drops its copy when a change commits (``core.live_config``)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from core.accounts.desk import require_staff_perm
from core.accounts.models import User
from core.audit.services import audit_record
from core.defaults import register
from core.errors import ApplicationError, ErrorCode
from core.live import broadcast_on_commit
from core.live_config import LiveConfig, invalidate
from core.money import DecimalInputError, DecimalShape, decimal_from_input
from core.text import ascii_int
from routing.decision import ClientGroup
from routing.models import ClientGroupAssignment, ClientGroupChange, ClientGroupConfig

Mode = ClientGroupConfig.Mode


@dataclass(frozen=True)
class ClientGroupsSnapshot:
    config: ClientGroupConfig
    groups: dict[int, ClientGroup]  # clients not in HYBRID


def _config_row() -> ClientGroupConfig:
    row = ClientGroupConfig.objects.filter(key="default").first()
    if row is None:
        ClientGroupConfig.objects.get_or_create(key="default")
        row = ClientGroupConfig.objects.get(key="default")
    return row


def _load() -> ClientGroupsSnapshot:
    rows = ClientGroupAssignment.objects.exclude(group=ClientGroup.HYBRID).values_list("user_id", "group")
    return ClientGroupsSnapshot(config=_config_row(), groups={u: ClientGroup(g) for u, g in rows})


CLIENT_GROUPS_CACHE: LiveConfig[ClientGroupsSnapshot] = LiveConfig("client_groups", _load)


def client_group_config() -> ClientGroupConfig:
    """The rules and mode in force (a shared instance: read it, never save it)."""
    return CLIENT_GROUPS_CACHE.get().config


@dataclass(frozen=True, slots=True)
class ClientRouting:
    group: ClientGroup  # what routes the order
    shadow_group: ClientGroup | None  # SHADOW: what the classifier proposes (logged, not used)


_HYBRID = ClientRouting(ClientGroup.HYBRID, None)


def client_routing(user_id: int) -> ClientRouting:
    """The order path's read: no query (the process cache)."""
    snapshot = CLIENT_GROUPS_CACHE.get()
    mode = snapshot.config.mode
    if mode == Mode.OFF:
        return _HYBRID
    group = snapshot.groups.get(user_id, ClientGroup.HYBRID)
    if mode == Mode.LIVE:
        return ClientRouting(group, None)
    return ClientRouting(ClientGroup.HYBRID, group)


def client_groups_assigned() -> dict[int, ClientGroup]:
    """Every client's assigned group (clients without a row are HYBRID): from the database."""
    return {uid: ClientGroup(g) for uid, g in ClientGroupAssignment.objects.values_list("user_id", "group")}


def client_group_of(user_id: int) -> tuple[ClientGroup, ClientGroupAssignment | None]:
    """A client's assigned group and its row (console, classifier): from the database."""
    row = ClientGroupAssignment.objects.filter(user_id=user_id).first()
    return (ClientGroup(row.group) if row else ClientGroup.HYBRID), row


def _record(
    *,
    user_id: int,
    group: ClientGroup,
    source: str,
    reason: str,
    actor: Any = None,
    row: ClientGroupAssignment | None,
    mode: str,
) -> None:
    before = ClientGroup(row.group) if row else ClientGroup.HYBRID
    now = timezone.now()
    if row is None:
        row = ClientGroupAssignment(user_id=user_id)
    row.group, row.source, row.reason, row.updated_at = group.value, source, reason[:300], now
    row.save()
    if before is not group:
        ClientGroupChange.objects.create(
            user_id=user_id,
            from_group=before.value,
            to_group=group.value,
            source=source,
            mode=mode,
            reason=reason[:300],
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            at=now,
        )
        invalidate(CLIENT_GROUPS_CACHE.name)
        broadcast_on_commit(
            "routing", {"event": "client_group", "user_id": user_id, "from": before, "to": group.value}
        )


@transaction.atomic
def client_group_assign(*, user_id: int, group: ClientGroup, reason: str) -> bool:
    """The classifier's assignment. A manual override stands: returns False and changes nothing.
    Idempotent: the same group again only refreshes the reason. Returns True when the group changed."""
    row = ClientGroupAssignment.objects.select_for_update().filter(user_id=user_id).first()
    if row is not None and row.source == ClientGroupAssignment.Source.MANUAL:
        return False
    changed = (ClientGroup(row.group) if row else ClientGroup.HYBRID) is not group
    if row is None and not changed:
        return False  # HYBRID with no row: nothing to record
    _record(
        user_id=user_id,
        group=group,
        source=ClientGroupAssignment.Source.AUTO,
        reason=reason,
        row=row,
        mode=_config_row().mode,
    )
    return changed


@transaction.atomic
def client_group_override(
    *,
    user_id: int,
    group: ClientGroup | str | None,
    acting_user: Any,
    reason: str,
    request: HttpRequest | None = None,
) -> ClientGroupAssignment | None:
    """A Risk Manager pins a client's group (``manage_routing``), or lifts the pin (``group=None``: the
    classifier decides again from its next run; the client is HYBRID until then). Audited."""
    require_staff_perm(acting_user, "manage_routing")
    if not User.objects.filter(pk=user_id, is_staff=False).exists():
        raise ApplicationError(ErrorCode.NOT_FOUND, "No such client.", {"field": "user_id"})
    if not reason or not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.", {"field": "reason"})
    target: ClientGroup | None
    try:
        target = None if group is None or group == "" else ClientGroup(group)
    except ValueError:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, f"Unknown client group {group!r}.", {"field": "group"}
        ) from None
    row = ClientGroupAssignment.objects.select_for_update().filter(user_id=user_id).first()
    before = {"group": row.group, "source": row.source} if row else {"group": ClientGroup.HYBRID.value}
    mode = _config_row().mode
    text = f"override by {getattr(acting_user, 'email', 'staff')}: {reason.strip()}"
    if target is None:
        _record(
            user_id=user_id,
            group=ClientGroup.HYBRID,
            source=ClientGroupAssignment.Source.AUTO,
            reason=f"override lifted: {reason.strip()}",
            actor=acting_user,
            row=row,
            mode=mode,
        )
    else:
        _record(
            user_id=user_id,
            group=target,
            source=ClientGroupAssignment.Source.MANUAL,
            reason=text,
            actor=acting_user,
            row=row,
            mode=mode,
        )
    audit_record(
        action="routing.client_group_override",
        actor=acting_user,
        request=request,
        object_type="user",
        object_id=user_id,
        before=before,
        after={"group": target.value if target else None, "source": "MANUAL" if target else "AUTO"},
        reason=reason.strip(),
    )
    return ClientGroupAssignment.objects.filter(user_id=user_id).first()


_NUMBER = DecimalShape(10, 4)
_DECIMAL_FIELDS = ("toxic_bp", "benign_bp", "hysteresis_bp", "stale_quote_bp")
_INT_FIELDS = ("horizon_s", "min_fills", "window_days")
HORIZON_CHOICES = (1, 10, 60, 300)


def _clean(field: str, value: Any) -> Any:
    if field == "mode":
        if value not in Mode.values:
            raise ApplicationError(ErrorCode.VALIDATION_ERROR, f"Unknown mode {value!r}.", {"field": field})
        return value
    if field in _DECIMAL_FIELDS:
        try:
            return decimal_from_input(value, _NUMBER, allow_zero=True, signed=field == "benign_bp")
        except DecimalInputError as exc:
            raise ApplicationError(
                ErrorCode.VALIDATION_ERROR, f"{field}: {exc.message}.", {"field": field}
            ) from None
    if field in _INT_FIELDS:
        if isinstance(value, int) and not isinstance(value, bool):
            number: int | None = value if 0 <= value < 10**9 else None
        else:
            number = ascii_int(value, max_digits=9)  # ASCII digits only ("²" and "١٢" are not numbers)
        if number is None:
            raise ApplicationError(
                ErrorCode.VALIDATION_ERROR, f"{field} must be a whole number.", {"field": field}
            )
        if field == "horizon_s" and number not in HORIZON_CHOICES:
            raise ApplicationError(
                ErrorCode.VALIDATION_ERROR, f"horizon_s must be one of {HORIZON_CHOICES}.", {"field": field}
            )
        if number <= 0:
            raise ApplicationError(ErrorCode.VALIDATION_ERROR, f"{field} must be > 0.", {"field": field})
        return number
    raise ApplicationError(ErrorCode.VALIDATION_ERROR, f"{field} is not a client-group setting.")


@transaction.atomic
def client_group_config_update(
    *, changes: dict[str, Any], acting_user: Any, reason: str, request: HttpRequest | None = None
) -> ClientGroupConfig:
    """Edit the rules or the mode (OFF / SHADOW / LIVE). Audited; every process reloads on commit."""
    if getattr(acting_user, "is_staff", False):
        require_staff_perm(acting_user, "manage_routing")
    if not reason or not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.", {"field": "reason"})
    cleaned = {field: _clean(field, value) for field, value in changes.items()}
    row = ClientGroupConfig.objects.select_for_update().get_or_create(key="default")[0]
    before = {field: getattr(row, field) for field in cleaned}
    for field, value in cleaned.items():
        setattr(row, field, value)
    toxic, benign = Decimal(row.toxic_bp), Decimal(row.benign_bp)
    if toxic <= benign:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, "toxic_bp must be above benign_bp.", {"field": "toxic_bp"}
        )
    row.updated_at = timezone.now()
    row.updated_by = acting_user if getattr(acting_user, "is_authenticated", False) else None
    row.save()
    audit_record(
        action="routing.client_group_config",
        actor=acting_user,
        request=request,
        object_type="client_group_config",
        object_id="default",
        before=before,
        after=cleaned,
        reason=reason.strip(),
    )
    invalidate(CLIENT_GROUPS_CACHE.name)
    broadcast_on_commit("routing", {"event": "client_group_config"})
    return row


@register
def client_group_defaults_ensure() -> None:
    """Idempotent: the configuration row exists (see ``core.defaults``)."""
    ClientGroupConfig.objects.get_or_create(key="default")
