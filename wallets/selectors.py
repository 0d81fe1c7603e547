"""Reads of the wallets app. Every user-facing read is owner-scoped: another user's id is NOT_FOUND."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import QuerySet

from core.errors import ApplicationError, ErrorCode
from wallets.hooks import cross_margin_used
from wallets.models import (
    BalanceLog,
    Deposit,
    DepositAddress,
    LedgerAccount,
    UserWalletSettings,
    Wallet,
    Withdrawal,
    WithdrawalAddress,
)

ZERO = Decimal(0)


@dataclass(frozen=True)
class WalletView:
    user_id: int
    total_balance: Decimal
    available_balance: Decimal
    frozen_margin: Decimal
    cross_margin_used: Decimal
    pending_withdrawal: Decimal
    asset: str = "USDC"


def wallet_get(*, user_id: int) -> WalletView:
    """Derived from the ledger (``wallets`` view) plus trading's cross-margin hook.
    available = cash − cross margin used (never below 0); frozen = isolated margin + order holds."""
    row = Wallet.objects.filter(user_id=user_id).first()
    cross = cross_margin_used([user_id]).get(user_id, ZERO)
    if row is None:
        return WalletView(user_id, ZERO, ZERO, ZERO, cross, ZERO)
    return WalletView(
        user_id=user_id,
        total_balance=row.total_balance,
        available_balance=max(row.cash_balance - cross, ZERO),
        frozen_margin=row.frozen_margin,
        cross_margin_used=cross,
        pending_withdrawal=row.pending_withdrawal,
    )


def user_accounts(*, user_id: int) -> QuerySet[LedgerAccount]:
    return LedgerAccount.objects.filter(user_id=user_id).order_by("kind", "sub")


def balance_logs_list(*, user_id: int) -> QuerySet[BalanceLog]:
    return BalanceLog.objects.filter(user_id=user_id)


def deposit_addresses_list(*, user_id: int) -> QuerySet[DepositAddress]:
    return DepositAddress.objects.filter(user_id=user_id)


def deposits_list(*, user_id: int) -> QuerySet[Deposit]:
    return Deposit.objects.filter(user_id=user_id)


def withdrawals_list(*, user_id: int) -> QuerySet[Withdrawal]:
    return Withdrawal.objects.filter(user_id=user_id)


def withdrawal_get(*, user_id: int, withdrawal_id: int) -> Withdrawal:
    withdrawal = Withdrawal.objects.filter(user_id=user_id, pk=withdrawal_id).first()
    if withdrawal is None:
        raise ApplicationError(ErrorCode.NOT_FOUND, "No such withdrawal.")
    return withdrawal


def withdrawal_addresses_list(*, user_id: int) -> QuerySet[WithdrawalAddress]:
    return WithdrawalAddress.objects.filter(user_id=user_id)


def whitelist_only(*, user_id: int) -> bool:
    return UserWalletSettings.objects.filter(user_id=user_id, whitelist_only=True).exists()


def withdrawal_token_hash(token: str) -> str:
    """What a withdrawal stores of its emailed confirmation token (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()


def withdrawal_awaiting_confirmation(*, token: str) -> Withdrawal | None:
    """The withdrawal an emailed confirmation token names, while it still waits for that confirmation."""
    digest = withdrawal_token_hash(str(token or ""))
    return Withdrawal.objects.filter(
        token_hash=digest, status=Withdrawal.Status.AWAITING_CONFIRMATION
    ).first()
