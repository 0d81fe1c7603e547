"""Withdrawals (spec 06): request with TOTP → emailed single-use link → funds cash → pending →
automatic review → approvals by tier → hot wallet check → sign + broadcast once → confirmations →
completed. Rejection, cancellation and failure refund the pending funds with the reason.

Ledger keys: ``withdrawal:<id>:hold`` (cash → pending), ``withdrawal:<id>:refund`` (pending → cash),
``withdrawal:<id>:complete`` (pending → hot wallet, fee → revenue, gas → expense).
Broadcast key: nonce ``wd-<id>``. Signing is deterministic, so the stored payload, its tx hash and any
re-broadcast after a crash are identical: the chain can include it at most once.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from core.accounts.models import SecurityEvent, User
from core.accounts.roles import perm
from core.accounts.selectors import kyc_limits_for
from core.audit.services import audit_record
from core.errors import ApplicationError, ErrorCode
from core.events.services import outbox_emit
from core.locks import user_lock
from wallets.config import chain_config, chain_state, known_asset, wallet_config
from wallets.enqueue import WITHDRAWAL_SEND, task_enqueue
from wallets.hooks import withdrawable_limit
from wallets.ledger import AccountRef, TransferSpec, account_balance, ledger_post
from wallets.models import (
    AccountKind,
    BlacklistedAddress,
    ChainState,
    ChainTx,
    TransferKind,
    UserWalletSettings,
    Withdrawal,
    WithdrawalAddress,
    WithdrawalApproval,
)
from wallets.selectors import withdrawal_token_hash
from wallets.services.withdrawal_addresses import clean_address, clean_amount, verify_totp

logger = logging.getLogger(__name__)
S = Withdrawal.Status
# Withdrawals that count as "used the address" for the duplicate and frequency rules.
COUNTED = [S.AWAITING_APPROVAL, S.APPROVED, S.SENDING, S.BROADCAST, S.COMPLETED]
REFUNDABLE = [S.AWAITING_APPROVAL, S.APPROVED]
SECURITY_KINDS = [
    SecurityEvent.Kind.PASSWORD_CHANGED,
    SecurityEvent.Kind.EMAIL_CHANGED,
    SecurityEvent.Kind.OTP_ENROLLED,
    SecurityEvent.Kind.OTP_DISABLED,
    SecurityEvent.Kind.LOCKED,
    SecurityEvent.Kind.TOKEN_REUSE,
]


def _tier(amount: Decimal) -> str:
    config = wallet_config()
    if amount < config.auto_approve_below:
        return Withdrawal.Tier.AUTO
    if amount <= config.single_approval_max:
        return Withdrawal.Tier.SINGLE
    return Withdrawal.Tier.DUAL


# --- request and confirmation ------------------------------------------------------------------------


def withdrawal_request(
    *,
    user: User,
    chain: str,
    asset: str,
    address: str,
    amount: object,
    totp_code: str,
    request: Any = None,
) -> Withdrawal:
    """Create a withdrawal waiting for its email confirmation. Moves no money yet.

    Side effects: Withdrawal row; after commit, an email with a single-use link (expires after
    ``email_token_ttl_minutes``). Raises UNKNOWN_CHAIN/UNKNOWN_ASSET/INVALID_AMOUNT/INVALID_ADDRESS,
    USER_RESTRICTED, OTP_REQUIRED/INVALID_OTP, ADDRESS_NOT_WHITELISTED, WITHDRAWALS_DISABLED,
    DUPLICATE_WITHDRAWAL, INSUFFICIENT_BALANCE.
    """
    config = chain_config(chain)
    asset = known_asset(config, asset)
    value = clean_amount(amount)
    normalized = clean_address(config.chain, address)
    if value < config.min_withdrawal:
        raise ApplicationError(
            ErrorCode.INVALID_AMOUNT,
            f"The minimum withdrawal on {config.chain} is {config.min_withdrawal:,.2f}.",
        )
    if value <= config.withdrawal_fee:
        raise ApplicationError(ErrorCode.INVALID_AMOUNT, "The amount must exceed the withdrawal fee.")
    if not (config.enabled and config.withdrawals_enabled):
        raise ApplicationError(ErrorCode.WITHDRAWALS_DISABLED, f"Withdrawals on {config.chain} are disabled.")
    if user.withdrawals_restricted or user.blacklisted or not user.is_active:
        raise ApplicationError(ErrorCode.USER_RESTRICTED, "Withdrawals are restricted on this account.")
    if not user.email_verified:
        # the confirmation link goes by email: a wallet-only account links a verified email first
        raise ApplicationError(
            ErrorCode.EMAIL_NOT_VERIFIED, "Link and verify an email address before withdrawing."
        )
    verify_totp(user=user, code=totp_code)
    now = timezone.now()
    limits = kyc_limits_for(user)
    withdrawn_24h = Withdrawal.objects.filter(
        user=user, created_at__gte=now - timedelta(hours=24), status__in=COUNTED
    ).aggregate(total=Sum("amount"))["total"] or Decimal(0)
    if withdrawn_24h + value > limits.daily_withdrawal_limit:
        raise ApplicationError(
            ErrorCode.KYC_LIMIT_EXCEEDED,
            f"Your verification level ({limits.status}) allows {limits.daily_withdrawal_limit:,.0f} per 24 hours.",
            {"limit": str(limits.daily_withdrawal_limit), "used": str(withdrawn_24h)},
        )
    wallet_settings = UserWalletSettings.objects.filter(user=user).first()
    if wallet_settings is not None and wallet_settings.whitelist_only:
        entry = WithdrawalAddress.objects.filter(user=user, chain=config.chain, address=normalized).first()
        if entry is None or entry.usable_at > now:
            raise ApplicationError(
                ErrorCode.ADDRESS_NOT_WHITELISTED,
                "Whitelist-only mode: use an address-book entry at least 24 hours old.",
                {"usable_at": entry.usable_at.isoformat() if entry else None},
            )
    if chain_state(config.chain).hot_level == ChainState.Level.EMERGENCY:
        raise ApplicationError(
            ErrorCode.WITHDRAWALS_DISABLED,
            f"Withdrawals on {config.chain} are halted for now. Try again later.",
        )
    if _duplicate_exists(user_id=user.pk, chain=config.chain, address=normalized, exclude=None):
        raise ApplicationError(
            ErrorCode.DUPLICATE_WITHDRAWAL, "A withdrawal to this address was made in the last 10 minutes."
        )
    available = account_balance(AccountRef.user(user.pk, AccountKind.CASH))
    limit = withdrawable_limit(user.pk)
    if limit is not None:
        available = min(available, limit)
    if available < value:
        raise ApplicationError(
            ErrorCode.INSUFFICIENT_BALANCE, "Insufficient balance.", {"available": str(available)}
        )
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        withdrawal = Withdrawal.objects.create(
            user=user,
            chain=config.chain,
            asset=asset,
            address=normalized,
            amount=value,
            fee=config.withdrawal_fee,
            tier=_tier(value),
            token_hash=withdrawal_token_hash(token),
            token_expires_at=now + timedelta(minutes=wallet_config().email_token_ttl_minutes),
        )
        transaction.on_commit(lambda: _send_confirmation_email(withdrawal, token))
    return withdrawal


def _send_confirmation_email(withdrawal: Withdrawal, token: str) -> None:
    # the page at /withdrawals/confirm shows the withdrawal and confirms it with a button (wallets.pages)
    base = getattr(
        settings, "WITHDRAWAL_CONFIRM_URL", f"{settings.PUBLIC_BASE_URL.rstrip('/')}/withdrawals/confirm"
    )
    send_mail(
        subject=f"Confirm your withdrawal of {withdrawal.amount} {withdrawal.asset}",
        message=(
            f"Confirm the withdrawal of {withdrawal.amount} {withdrawal.asset} on {withdrawal.chain} "
            f"to {withdrawal.address}:\n\n{base}?token={token}\n\n"
            f"The link works once and expires at {withdrawal.token_expires_at:%Y-%m-%d %H:%M} UTC. "
            "If you did not ask for this, change your password now."
        ),
        from_email=None,
        recipient_list=[withdrawal.user.email],
    )


def _duplicate_exists(*, user_id: int, chain: str, address: str, exclude: int | None) -> bool:
    since = timezone.now() - timedelta(minutes=wallet_config().duplicate_window_minutes)
    qs = Withdrawal.objects.filter(
        user_id=user_id, chain=chain, address=address, created_at__gte=since, status__in=COUNTED
    )
    if exclude is not None:
        qs = qs.exclude(pk=exclude)
    return qs.exists()


def withdrawal_confirm(*, token: str) -> Withdrawal:
    """The emailed link: single use, expiring. Moves the funds cash → pending and runs the automatic
    review (which may reject and refund in the same transaction). Approved withdrawals are queued
    for sending after commit.
    """
    digest = withdrawal_token_hash(str(token or ""))
    expired = False
    with transaction.atomic():
        withdrawal = Withdrawal.objects.select_for_update().filter(token_hash=digest).first()
        if withdrawal is None:
            raise ApplicationError(ErrorCode.INVALID_TOKEN, "This confirmation link is not valid.")
        if withdrawal.status != S.AWAITING_CONFIRMATION:
            raise ApplicationError(ErrorCode.INVALID_TOKEN, "This confirmation link was already used.")
        now = timezone.now()
        if withdrawal.token_expires_at is not None and withdrawal.token_expires_at < now:
            withdrawal.status = S.EXPIRED
            withdrawal.reason_code = ErrorCode.TOKEN_EXPIRED
            withdrawal.reason = "The confirmation link expired."
            withdrawal.updated_at = now
            withdrawal.save(update_fields=["status", "reason_code", "reason", "updated_at"])
            expired = True
        else:
            _hold_and_review(withdrawal, now)
    if expired:
        raise ApplicationError(ErrorCode.TOKEN_EXPIRED, "This confirmation link has expired.")
    return withdrawal


def _hold_and_review(withdrawal: Withdrawal, now: Any) -> None:
    # The user's lock serialises this with orders and margin moves: the withdrawable amount checked
    # here cannot be spent on margin before the hold is posted (and vice versa).
    user_lock(withdrawal.user_id)
    limit = withdrawable_limit(withdrawal.user_id)
    if limit is not None and withdrawal.amount > limit:
        raise ApplicationError(
            ErrorCode.INSUFFICIENT_BALANCE,
            "Open positions use part of your balance: that amount is not withdrawable now.",
            {"withdrawable": str(max(limit, Decimal(0)))},
        )
    user_cash = AccountRef.user(withdrawal.user_id, AccountKind.CASH)
    pending = AccountRef.user(withdrawal.user_id, AccountKind.PENDING_WITHDRAWAL)
    # The hold locks the user's cash row: concurrent confirmations of one user run the review one
    # after the other, so the duplicate and frequency rules see each other's result.
    ledger_post(
        key=f"withdrawal:{withdrawal.pk}:hold",
        transfers=[
            TransferSpec(
                debit=user_cash,
                credit=pending,
                amount=withdrawal.amount,
                kind=TransferKind.WITHDRAWAL_HOLD,
                ref_type="withdrawal",
                ref_id=withdrawal.pk,
            )
        ],
    )
    withdrawal.confirmed_at = now
    decision, code, reasons = _auto_review(withdrawal, now)
    withdrawal.review_reasons = reasons
    if decision == "reject":
        withdrawal_refund(withdrawal, status=S.REJECTED, code=code, reason=reasons[-1] if reasons else code)
        return
    withdrawal.manual_review = decision == "manual"
    needed = _required_approvals(withdrawal)
    withdrawal.status = S.AWAITING_APPROVAL if needed else S.APPROVED
    if not needed:
        withdrawal.approved_at = now
    withdrawal.updated_at = now
    withdrawal.save()
    outbox_emit(
        topic="wallets.withdrawal_requested",
        aggregate=f"user:{withdrawal.user_id}",
        payload={
            "withdrawal_id": withdrawal.pk,
            "status": withdrawal.status,
            "amount": str(withdrawal.amount),
        },
    )
    if withdrawal.status == S.APPROVED:
        pk = withdrawal.pk
        transaction.on_commit(lambda: task_enqueue(WITHDRAWAL_SEND, pk))


def _auto_review(withdrawal: Withdrawal, now: Any) -> tuple[str, str, list[str]]:
    """Returns ("reject" | "manual" | "auto", code, reasons)."""
    config = wallet_config()
    if BlacklistedAddress.objects.filter(chain=withdrawal.chain, address=withdrawal.address).exists():
        return "reject", ErrorCode.ADDRESS_BLACKLISTED, ["The destination address is blacklisted."]
    if _duplicate_exists(
        user_id=withdrawal.user_id, chain=withdrawal.chain, address=withdrawal.address, exclude=withdrawal.pk
    ):
        return (
            "reject",
            ErrorCode.DUPLICATE_WITHDRAWAL,
            ["A withdrawal to this address was made in the last 10 minutes."],
        )
    reasons = []
    day_ago = now - timedelta(hours=24)
    used = (
        Withdrawal.objects.filter(
            chain=withdrawal.chain, address=withdrawal.address, created_at__gte=day_ago, status__in=COUNTED
        )
        .exclude(pk=withdrawal.pk)
        .count()
    )
    if used >= config.same_address_max_24h:
        reasons.append(f"address used {used} times in 24 h")
    lock_since = now - timedelta(hours=config.security_lock_hours)
    user = User.objects.get(pk=withdrawal.user_id)
    if (
        user.last_security_change_at and user.last_security_change_at >= lock_since
    ) or SecurityEvent.objects.filter(
        Q(kind__in=SECURITY_KINDS) | Q(kind=SecurityEvent.Kind.LOGIN, details__abnormal=True),
        user_id=withdrawal.user_id,
        created_at__gte=lock_since,
    ).exists():
        reasons.append("security change or abnormal login in the last 24 h")
    level = chain_state(withdrawal.chain).hot_level
    if level in (ChainState.Level.CRITICAL, ChainState.Level.EMERGENCY):
        reasons.append(f"{withdrawal.chain} hot wallet is {level}")
    return ("manual" if reasons else "auto"), "", reasons


def _required_approvals(withdrawal: Withdrawal) -> set[str]:
    needed: set[str] = set()
    if withdrawal.tier == Withdrawal.Tier.DUAL:
        needed = {WithdrawalApproval.Kind.RISK, WithdrawalApproval.Kind.OPS}
    elif withdrawal.tier == Withdrawal.Tier.SINGLE or withdrawal.manual_review:
        needed = {WithdrawalApproval.Kind.OPS}
    return needed


def withdrawal_refund(withdrawal: Withdrawal, *, status: str, code: str, reason: str) -> None:
    """Return pending funds to cash (inside the caller's transaction, row locked by the caller)."""
    ledger_post(
        key=f"withdrawal:{withdrawal.pk}:refund",
        transfers=[
            TransferSpec(
                debit=AccountRef.user(withdrawal.user_id, AccountKind.PENDING_WITHDRAWAL),
                credit=AccountRef.user(withdrawal.user_id, AccountKind.CASH),
                amount=withdrawal.amount,
                kind=TransferKind.WITHDRAWAL_REFUND,
                ref_type="withdrawal",
                ref_id=withdrawal.pk,
            )
        ],
    )
    withdrawal.status = status
    withdrawal.reason_code = str(code)
    withdrawal.reason = reason[:300]
    withdrawal.updated_at = timezone.now()
    withdrawal.save()
    outbox_emit(
        topic="wallets.withdrawal_refunded",
        aggregate=f"user:{withdrawal.user_id}",
        payload={"withdrawal_id": withdrawal.pk, "status": status, "code": str(code), "reason": reason},
    )


# --- staff decisions and user cancellation ---------------------------------------------------------


def withdrawal_approve(
    *, withdrawal_id: int, acting_user: User, note: str = "", request: Any = None
) -> Withdrawal:
    """Give the next approval this person may give (risk review or operations approval).

    Four eyes: nobody approves the same withdrawal twice (also a unique constraint), and nobody
    approves their own. Audited in the same transaction; queued for sending when complete.
    """
    can_risk = acting_user.is_staff and acting_user.has_perm(perm("risk_review_withdrawals"))
    can_ops = acting_user.is_staff and acting_user.has_perm(perm("approve_withdrawals"))
    if not (can_risk or can_ops):
        raise ApplicationError(ErrorCode.PERMISSION_DENIED, "You may not approve withdrawals.")
    with transaction.atomic():
        withdrawal = Withdrawal.objects.select_for_update().filter(pk=withdrawal_id).first()
        if withdrawal is None:
            raise ApplicationError(ErrorCode.NOT_FOUND, "No such withdrawal.")
        if withdrawal.status != S.AWAITING_APPROVAL:
            raise ApplicationError(ErrorCode.INVALID_STATE, f"The withdrawal is {withdrawal.status}.")
        given = dict(withdrawal.approvals.values_list("kind", "approver_id"))
        if acting_user.pk in given.values() or acting_user.pk == withdrawal.user_id:
            raise ApplicationError(
                ErrorCode.FOUR_EYES_REQUIRED, "A different person must give the remaining approval."
            )
        missing = _required_approvals(withdrawal) - set(given)
        if WithdrawalApproval.Kind.RISK in missing and can_risk:
            kind = WithdrawalApproval.Kind.RISK
        elif WithdrawalApproval.Kind.OPS in missing and can_ops:
            kind = WithdrawalApproval.Kind.OPS
        else:
            raise ApplicationError(
                ErrorCode.PERMISSION_DENIED,
                "The remaining approval needs a different role.",
                {"missing": sorted(missing)},
            )
        WithdrawalApproval.objects.create(
            withdrawal=withdrawal, kind=kind, approver=acting_user, note=note[:300]
        )
        before = withdrawal.status
        if not (missing - {kind}):
            withdrawal.status = S.APPROVED
            withdrawal.approved_at = timezone.now()
            withdrawal.updated_at = withdrawal.approved_at
            withdrawal.save(update_fields=["status", "approved_at", "updated_at"])
            pk = withdrawal.pk
            transaction.on_commit(lambda: task_enqueue(WITHDRAWAL_SEND, pk))
        audit_record(
            action=f"wallets.withdrawal.{kind}_approve",
            actor=acting_user,
            request=request,
            object_type="withdrawal",
            object_id=withdrawal.pk,
            before={"status": before, "approvals": given},
            after={"status": withdrawal.status, "approval": kind},
            reason=note,
        )
    return withdrawal


def withdrawal_reject(
    *, withdrawal_id: int, acting_user: User, reason: str, request: Any = None
) -> Withdrawal:
    if not (
        acting_user.has_perm(perm("approve_withdrawals"))
        or acting_user.has_perm(perm("risk_review_withdrawals"))
    ):
        raise ApplicationError(ErrorCode.PERMISSION_DENIED, "You may not reject withdrawals.")
    if not reason.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A reason is required.")
    with transaction.atomic():
        withdrawal = Withdrawal.objects.select_for_update().filter(pk=withdrawal_id).first()
        if withdrawal is None:
            raise ApplicationError(ErrorCode.NOT_FOUND, "No such withdrawal.")
        if withdrawal.status not in REFUNDABLE:
            raise ApplicationError(ErrorCode.INVALID_STATE, f"The withdrawal is {withdrawal.status}.")
        _refuse_if_signed(withdrawal)
        before = withdrawal.status
        withdrawal_refund(withdrawal, status=S.REJECTED, code="REJECTED_BY_STAFF", reason=reason)
        audit_record(
            action="wallets.withdrawal.reject",
            actor=acting_user,
            request=request,
            object_type="withdrawal",
            object_id=withdrawal.pk,
            before={"status": before},
            after={"status": withdrawal.status},
            reason=reason,
        )
    return withdrawal


def _refuse_if_signed(withdrawal: Withdrawal) -> None:
    """An EVM withdrawal back in APPROVED after its broadcast was refused (the hot wallet short of gas)
    holds a signed transaction and its nonce: refunding it would leave a nonce gap that blocks every
    later transaction of the hot wallet (or, were the bytes broadcast later, pay twice). It is sent
    once the hot wallet can pay."""
    signed = ChainTx.objects.filter(chain=withdrawal.chain, ref=f"wd-{withdrawal.pk}").first()
    if signed is not None:
        raise ApplicationError(
            ErrorCode.INVALID_STATE,
            f"The withdrawal is signed on chain (nonce {signed.nonce}); it is sent once the hot wallet has gas.",
        )


def withdrawal_cancel(*, user: User, withdrawal_id: int) -> Withdrawal:
    """The owner cancels before sending starts (the send claim and this both need the row lock)."""
    with transaction.atomic():
        withdrawal = Withdrawal.objects.select_for_update().filter(pk=withdrawal_id, user=user).first()
        if withdrawal is None:
            raise ApplicationError(ErrorCode.NOT_FOUND, "No such withdrawal.")
        if withdrawal.status == S.AWAITING_CONFIRMATION:
            withdrawal.status = S.CANCELLED
            withdrawal.reason = "Cancelled by the user."
            withdrawal.updated_at = timezone.now()
            withdrawal.save(update_fields=["status", "reason", "updated_at"])
        elif withdrawal.status in REFUNDABLE:
            _refuse_if_signed(withdrawal)
            withdrawal_refund(
                withdrawal, status=S.CANCELLED, code="CANCELLED", reason="Cancelled by the user."
            )
        else:
            raise ApplicationError(ErrorCode.INVALID_STATE, f"The withdrawal is {withdrawal.status}.")
    return withdrawal
