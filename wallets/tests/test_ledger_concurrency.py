"""Spec 06 — N concurrent debits of one user never overdraw and never lose a cent (real threads,
one PostgreSQL connection each)."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection

from core.errors import ApplicationError, ErrorCode
from wallets.ledger import AccountRef, TransferSpec, account_balance, ledger_invariant_violations, ledger_post
from wallets.tests.conftest import fund


@pytest.mark.django_db(transaction=True)
def test_50_concurrent_debits_never_overdraw_and_never_lose_a_cent(make_trader):
    user = make_trader()
    fund(user, "1000")
    cash = AccountRef.user(user.pk, "cash")
    holds = AccountRef.user(user.pk, "order_hold")
    fees = AccountRef.platform("fee_revenue")
    start = threading.Barrier(50)
    outcomes: list[str] = []
    lock = threading.Lock()

    def debit(i: int) -> None:
        try:
            start.wait()
            # alternate the second account so the lock order (by id) differs from the list order
            credit = holds if i % 2 else fees
            ledger_post(
                key=f"concurrent:{i}",
                transfers=[TransferSpec(debit=cash, credit=credit, amount=Decimal("30"), kind="order_hold")],
            )
            result = "ok"
        except ApplicationError as exc:
            result = str(exc.code)
        finally:
            connection.close()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=debit, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert len(outcomes) == 50
    assert outcomes.count("ok") == 33  # 33 × 30 = 990 ≤ 1000 < 34 × 30
    assert outcomes.count(ErrorCode.INSUFFICIENT_BALANCE) == 17
    assert account_balance(cash) == Decimal("10")
    assert account_balance(holds) + account_balance(fees) == Decimal("990")
    assert ledger_invariant_violations() == []
