"""Four eyes for staff actions that touch money or security: one staff member proposes with a
reason, a second one approves, and the action is applied in the approving transaction — or refused, and
the proposal records why. The same pattern as balance adjustments and cold-wallet top-ups, for actions
that have no table of their own (a client's 2FA reset, a staff member's TOTP reset, risk-config and
routing-threshold changes).

Each kind registers an :class:`Action`: the permission needed to propose and to decide, and the function
that applies the payload. Rooms above the ground register their own kinds (the console registers the
risk-config and routing ones at start), so this module imports no room."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from core.accounts.models import StaffProposal, User
from core.accounts.roles import perm
from core.audit.services import audit_record
from core.errors import ApplicationError, ErrorCode


@dataclass(frozen=True)
class Action:
    permission: str
    # applies the payload; receives the proposal, the approver and the request; raises ApplicationError
    apply: Callable[[StaffProposal, User, HttpRequest | None], dict[str, Any] | None]
    describe: Callable[[StaffProposal], str]


ACTIONS: dict[str, Action] = {}
# kind → "a direct change must be refused now" (registered by the frame: e.g. the console's risk_four_eyes
# switch); the owning services ask ``four_eyes_required`` before applying a change
GUARDS: dict[str, Callable[[], bool]] = {}


def guard_register(kind: str, guard: Callable[[], bool]) -> None:
    GUARDS[kind] = guard


def four_eyes_required(kind: str) -> bool:
    """True when a change of ``kind`` may only be applied by approving a proposal (and none is being
    applied now). Services refuse a direct change with FOUR_EYES_REQUIRED."""
    guard = GUARDS.get(kind)
    return bool(guard is not None and guard())


def action_register(kind: str, action: Action) -> None:
    ACTIONS[kind] = action


def _action(kind: str) -> Action:
    action = ACTIONS.get(kind)
    if action is None:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, f"No four-eyes action {kind!r}.", {"kind": kind})
    return action


def _require(user: User, codename: str) -> None:
    if not (user.is_staff and user.is_active and user.has_perm(perm(codename))):
        raise ApplicationError(ErrorCode.PERMISSION_DENIED, "You may not do this.", {"permission": codename})


def proposal_describe(proposal: StaffProposal) -> str:
    action = ACTIONS.get(proposal.kind)
    return action.describe(proposal) if action is not None else proposal.get_kind_display()


def proposal_create(
    *,
    kind: str,
    acting_user: User,
    reason: str,
    payload: dict[str, Any] | None = None,
    target_user: User | None = None,
    subject: str = "",
    request: HttpRequest | None = None,
) -> StaffProposal:
    """Record a proposal (nothing is applied yet). One open proposal per (kind, target, subject): a second
    one is refused with CONFLICT so two people do not approve two versions of the same change."""
    action = _action(kind)
    _require(acting_user, action.permission)
    if not reason or not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.")
    with transaction.atomic():
        open_same = StaffProposal.objects.select_for_update().filter(
            kind=kind, target_user=target_user, subject=subject, status=StaffProposal.Status.PROPOSED
        )
        if open_same.exists():
            raise ApplicationError(
                ErrorCode.CONFLICT,
                "The same change is already waiting for a second person: approve or reject it first.",
                {"proposal_id": open_same.first().pk},  # type: ignore[union-attr]
            )
        proposal = StaffProposal.objects.create(
            kind=kind,
            target_user=target_user,
            subject=subject,
            payload=payload or {},
            reason=reason.strip()[:500],
            proposed_by=acting_user,
        )
        audit_record(
            action=f"four_eyes.{kind}.propose",
            actor=acting_user,
            request=request,
            object_type="staff_proposal",
            object_id=proposal.pk,
            after={
                "target_user": target_user.pk if target_user else None,
                "subject": subject,
                **proposal.payload,
            },
            reason=proposal.reason,
        )
    return proposal


def proposal_decide(
    *, proposal_id: int, acting_user: User, approve: bool, note: str = "", request: HttpRequest | None = None
) -> StaffProposal:
    """Approve (applies the action in this transaction) or reject. The proposer may withdraw their own
    proposal (``approve=False``) but never approve it (FOUR_EYES_REQUIRED). A refused action leaves the
    proposal FAILED with the refusal's message; nothing is applied."""
    with transaction.atomic():
        proposal = StaffProposal.objects.select_for_update().filter(pk=proposal_id).first()
        if proposal is None:
            raise ApplicationError(ErrorCode.NOT_FOUND, "No such proposal.")
        action = _action(proposal.kind)
        own = proposal.proposed_by_id == acting_user.pk
        if not (own and not approve):
            _require(acting_user, action.permission)
        if proposal.status != StaffProposal.Status.PROPOSED:
            raise ApplicationError(ErrorCode.INVALID_STATE, f"The proposal is {proposal.status}.")
        if own and approve:
            raise ApplicationError(
                ErrorCode.FOUR_EYES_REQUIRED, "Another person must approve what you proposed."
            )
        result: dict[str, Any] | None = None
        if approve:
            try:
                with transaction.atomic():  # a refusal rolls back the action, not the decision
                    result = action.apply(proposal, acting_user, request)
                proposal.status = StaffProposal.Status.APPLIED
            except ApplicationError as exc:
                proposal.status = StaffProposal.Status.FAILED
                proposal.error = f"{exc.message} ({exc.code})"[:500]
        else:
            proposal.status = StaffProposal.Status.CANCELLED if own else StaffProposal.Status.REJECTED
        proposal.decided_by = acting_user
        proposal.decided_at = timezone.now()
        proposal.decision_note = note.strip()[:500]
        proposal.save(update_fields=["status", "decided_by", "decided_at", "decision_note", "error"])
        verb = {"APPLIED": "approve", "FAILED": "approve", "REJECTED": "reject", "CANCELLED": "cancel"}
        audit_record(
            action=f"four_eyes.{proposal.kind}.{verb[proposal.status]}",
            actor=acting_user,
            request=request,
            object_type="staff_proposal",
            object_id=proposal.pk,
            before={"status": StaffProposal.Status.PROPOSED},
            after={"status": proposal.status, "error": proposal.error, "result": result or {}},
            reason=proposal.decision_note or proposal.reason,
        )
    return proposal


def proposals_open(
    *, kinds: list[str] | None = None, target_user_id: int | None = None
) -> list[StaffProposal]:
    qs = StaffProposal.objects.filter(status=StaffProposal.Status.PROPOSED).select_related(
        "proposed_by", "target_user"
    )
    if kinds is not None:
        qs = qs.filter(kind__in=kinds)
    if target_user_id is not None:
        qs = qs.filter(target_user_id=target_user_id)
    return list(qs.order_by("-id")[:100])
