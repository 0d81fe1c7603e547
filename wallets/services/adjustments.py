"""Manual balance adjustments with four eyes: one operator requests (reason mandatory), another
approves; the ledger transfer and the audit rows are written in the deciding transaction."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from core.accounts.models import User
from core.audit.services import audit_record
from core.errors import ApplicationError, ErrorCode
from core.money import MONEY_INPUT, USDC_DECIMALS, DecimalInputError, decimal_from_input
from wallets.ledger import AccountRef, TransferSpec, ledger_post
from wallets.models import AccountKind, BalanceAdjustment, TransferKind
from wallets.services.permissions import require_perm


@transaction.atomic
def adjustment_request(
    *, user_id: int, amount: object, reason: str, acting_user: Any, request: Any = None
) -> BalanceAdjustment:
    require_perm(acting_user, "request_adjustment")
    try:  # signed: > 0 credits, < 0 debits; plain decimal notation only
        value = decimal_from_input(amount, MONEY_INPUT, signed=True)
    except DecimalInputError as exc:
        raise ApplicationError(
            ErrorCode.INVALID_AMOUNT,
            f"A non-zero amount with at most {USDC_DECIMALS} decimals is required ({exc.message}).",
            {"reason": exc.reason},
        ) from None
    if not reason or not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required for a balance adjustment.")
    if not User.objects.filter(pk=user_id).exists():
        raise ApplicationError(ErrorCode.NOT_FOUND, "No such user.")
    adjustment = BalanceAdjustment.objects.create(
        user_id=user_id, amount=value, reason=reason.strip(), requested_by=acting_user
    )
    audit_record(
        action="wallets.adjustment.request",
        actor=acting_user,
        request=request,
        object_type="balance_adjustment",
        object_id=adjustment.pk,
        after={"user_id": user_id, "amount": str(value)},
        reason=adjustment.reason,
    )
    return adjustment


@transaction.atomic
def adjustment_decide(
    *, adjustment_id: int, acting_user: Any, approve: bool, note: str = "", request: Any = None
) -> BalanceAdjustment:
    """Approve (posts ``adjustment:<id>``: adjustments ↔ user cash) or reject. Requester ≠ decider."""
    require_perm(acting_user, "approve_adjustment")
    adjustment = BalanceAdjustment.objects.select_for_update().filter(pk=adjustment_id).first()
    if adjustment is None:
        raise ApplicationError(ErrorCode.NOT_FOUND, "No such adjustment.")
    if adjustment.status != BalanceAdjustment.Status.REQUESTED:
        raise ApplicationError(ErrorCode.INVALID_STATE, f"The adjustment is {adjustment.status}.")
    if adjustment.requested_by_id == acting_user.pk:
        raise ApplicationError(ErrorCode.FOUR_EYES_REQUIRED, "Another person must approve this adjustment.")
    if approve:
        platform = AccountRef.platform(AccountKind.ADJUSTMENTS)
        cash = AccountRef.user(adjustment.user_id, AccountKind.CASH)
        debit, credit = (platform, cash) if adjustment.amount > 0 else (cash, platform)
        ledger_post(
            key=f"adjustment:{adjustment.pk}",
            transfers=[
                TransferSpec(
                    debit=debit,
                    credit=credit,
                    amount=abs(adjustment.amount),
                    kind=TransferKind.ADJUSTMENT,
                    ref_type="adjustment",
                    ref_id=adjustment.pk,
                )
            ],
        )
    adjustment.status = BalanceAdjustment.Status.APPROVED if approve else BalanceAdjustment.Status.REJECTED
    adjustment.decided_by = acting_user
    adjustment.decided_at = timezone.now()
    adjustment.decision_note = note
    adjustment.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])
    audit_record(
        action="wallets.adjustment.approve" if approve else "wallets.adjustment.reject",
        actor=acting_user,
        request=request,
        object_type="balance_adjustment",
        object_id=adjustment.pk,
        before={"status": BalanceAdjustment.Status.REQUESTED},
        after={"status": adjustment.status, "amount": str(adjustment.amount), "user_id": adjustment.user_id},
        reason=note or adjustment.reason,
    )
    return adjustment
