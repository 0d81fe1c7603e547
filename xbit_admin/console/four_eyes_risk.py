"""Four eyes on risk: with the ``risk_four_eyes`` switch on, a risk-config or routing-threshold
change is proposed by one Risk Manager and applied only when a second one approves it (the generic
``core.accounts.four_eyes`` proposals; the approver's transaction calls the owning service). The switch is
off by default; turning it on or off is itself a Super Admin switch change with a reason.

Values travel in the proposal as JSON with their type ({"t": "decimal", "v": "0.05"}), so the approver
applies exactly what was proposed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from core.accounts.four_eyes import Action, action_register, guard_register, proposal_create
from core.accounts.models import StaffProposal, User
from core.audit.services import audit_record
from core.errors import ApplicationError, ErrorCode
from core.live_config import LiveConfig, invalidate
from risk.config import risk_config_update
from routing.services import routing_config_update
from xbit_admin.console.models import ConsoleSetting

SWITCH = "risk_four_eyes"


def _load() -> bool:
    value = ConsoleSetting.objects.filter(name=SWITCH).values_list("value", flat=True).first()
    return bool(value)


FOUR_EYES_CACHE: LiveConfig[bool] = LiveConfig("console_risk_four_eyes", _load)


def risk_four_eyes_on() -> bool:
    return FOUR_EYES_CACHE.get()


def risk_four_eyes_set(
    *, value: bool, acting_user: Any, reason: str, request: HttpRequest | None = None
) -> None:
    """Turn the rule on or off (audited; every process reloads on commit)."""
    if not reason or not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.")
    with transaction.atomic():
        row, _ = ConsoleSetting.objects.select_for_update().get_or_create(
            name=SWITCH, defaults={"value": False}
        )
        before = bool(row.value)
        row.value, row.updated_at = bool(value), timezone.now()
        row.save(update_fields=["value", "updated_at"])
        audit_record(
            action="switch.risk_four_eyes",
            actor=acting_user,
            request=request,
            object_type="switch",
            object_id=SWITCH,
            before={"value": before},
            after={"value": bool(value)},
            reason=reason.strip(),
        )
        invalidate(FOUR_EYES_CACHE.name)


def _encode(value: Any) -> dict[str, Any]:
    if isinstance(value, bool) or value is None:
        return {"t": "json", "v": value}
    if isinstance(value, Decimal):
        return {"t": "decimal", "v": format(value, "f")}
    if isinstance(value, int):
        return {"t": "json", "v": value}
    if isinstance(value, list | dict | str):
        return {"t": "json", "v": value}
    return {"t": "decimal", "v": str(value)}


def _decode(cell: dict[str, Any]) -> Any:
    return Decimal(cell["v"]) if cell.get("t") == "decimal" else cell.get("v")


def config_change_propose(
    *,
    scope: str,
    changes: dict[str, Any],
    acting_user: Any,
    reason: str,
    asset: str = "*",
    request: HttpRequest | None = None,
) -> StaffProposal:
    """Propose ``changes`` to the risk config (``scope`` "risk") or to one routing row (``scope``
    "routing", ``asset`` or "*" for the global row). Nothing changes until a second person approves."""
    kind = {"risk": StaffProposal.Kind.RISK_CONFIG, "routing": StaffProposal.Kind.ROUTING_CONFIG}.get(scope)
    if kind is None:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "Unknown configuration scope.", {"scope": scope})
    if not changes:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "Nothing to change.")
    subject = f"{asset if scope == 'routing' else 'risk'}:{','.join(sorted(changes))}"
    return proposal_create(
        kind=kind,
        acting_user=acting_user,
        reason=reason,
        subject=subject[:80],
        payload={"asset": asset, "changes": {k: _encode(v) for k, v in changes.items()}},
        request=request,
    )


def _changes(proposal: StaffProposal) -> dict[str, Any]:
    return {k: _decode(v) for k, v in proposal.payload.get("changes", {}).items()}


def _reason(proposal: StaffProposal, approver: User) -> str:
    return f"{proposal.reason} (proposed by {proposal.proposed_by.email}, approved by {approver.email}: four eyes)"


def _apply_risk(proposal: StaffProposal, approver: User, request: HttpRequest | None) -> dict[str, Any]:
    changes = _changes(proposal)
    with approved():
        risk_config_update(
            changes=changes, acting_user=approver, reason=_reason(proposal, approver), request=request
        )
    return {"applied": sorted(changes)}


def _apply_routing(proposal: StaffProposal, approver: User, request: HttpRequest | None) -> dict[str, Any]:
    changes = _changes(proposal)
    with approved():
        routing_config_update(
            asset=proposal.payload.get("asset", "*"),
            changes=changes,
            acting_user=approver,
            reason=_reason(proposal, approver),
            request=request,
        )
    return {"applied": sorted(changes)}


def _describe(proposal: StaffProposal) -> str:
    changes = ", ".join(f"{k} → {v.get('v')}" for k, v in proposal.payload.get("changes", {}).items())
    where = (
        "risk config"
        if proposal.kind == StaffProposal.Kind.RISK_CONFIG
        else f"routing {proposal.payload.get('asset', '*')}"
    )
    return f"Change {where}: {changes}"


_APPLYING: ContextVar[int] = ContextVar("four_eyes_applying", default=0)


@contextmanager
def approved() -> Iterator[None]:
    """Marks this thread (context) as applying an approved proposal, so the four-eyes guard lets the
    owning service's change through."""
    token = _APPLYING.set(_APPLYING.get() + 1)
    try:
        yield
    finally:
        _APPLYING.reset(token)


def four_eyes_guard() -> bool:
    """True when a direct change must be refused: the rule is on and no approval is being applied."""
    return _APPLYING.get() == 0 and risk_four_eyes_on()


def refuse_direct_change() -> None:
    """For paths that would change risk or routing configuration directly (the switches page)."""
    if four_eyes_guard():
        raise ApplicationError(
            ErrorCode.FOUR_EYES_REQUIRED,
            "Four eyes on risk is on: propose the change on the Risk config or Routing page; a second Risk "
            "Manager applies it.",
        )


action_register(
    StaffProposal.Kind.RISK_CONFIG,
    Action(permission="manage_risk_config", apply=_apply_risk, describe=_describe),
)
action_register(
    StaffProposal.Kind.ROUTING_CONFIG,
    Action(permission="manage_routing", apply=_apply_routing, describe=_describe),
)
guard_register("risk_config", four_eyes_guard)
guard_register("routing_config", four_eyes_guard)
