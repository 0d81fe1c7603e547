"""Helpers shared by the TRON and Solana suites: an approved withdrawal, a hot wallet booked
in the ledger, a killed worker."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django.core import mail

from wallets.config import chain_config
from wallets.ledger import AccountRef, TransferSpec, account_balance, ledger_post
from wallets.models import ChainConfig, Withdrawal
from wallets.services import withdrawal_confirm, withdrawal_request
from wallets.tests.conftest import totp_for

_funding = iter(range(1, 10**9))


class Killed(BaseException):
    """The worker process dies here (nothing after this line runs; the database keeps what committed)."""


def cash_of(user: Any) -> Decimal:
    return account_balance(AccountRef.user(user.pk, "cash"))


def approved_withdrawal(
    user: Any, chain: str, asset: str, address: str, amount: str, capture: Any
) -> Withdrawal:
    chain_config(chain)
    ChainConfig.objects.filter(chain=chain).update(withdrawal_fee=0, enabled=True, withdrawals_enabled=True)
    with capture(execute=True):
        withdrawal_request(
            user=user, chain=chain, asset=asset, address=address, amount=amount, totp_code=totp_for(user)
        )
    token = re.search(r"token=([\w\-]+)", mail.outbox[-1].body).group(1)  # type: ignore[union-attr]
    with capture(execute=False):  # the send task is run by the test
        withdrawal = withdrawal_confirm(token=token)
    assert withdrawal.status == "APPROVED"
    return withdrawal


def book_hot_wallet(chain: str, asset: str, amount: str, native: str, gas: str) -> None:
    """The ledger side of funding the hot wallet (equity -> hot wallet), as the demo books it."""
    for value, sub, kind_asset in ((amount, f"{chain}:{asset}", "USDC"), (gas, f"{chain}:{native}", native)):
        ledger_post(
            key=f"test-hot:{sub}:{next(_funding)}",
            transfers=[
                TransferSpec(
                    debit=AccountRef.platform("hot_wallet", sub=sub, asset=kind_asset),
                    credit=AccountRef.platform("equity", asset=kind_asset),
                    amount=Decimal(value),
                    kind="capital",
                )
            ],
        )
