"""Spec 06 — random sequences of postings keep every ledger invariant after every step."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from core.errors import ApplicationError, ErrorCode
from wallets.ledger import AccountRef, TransferSpec, account_balance, ledger_invariant_violations, ledger_post

PLATFORM = [
    AccountRef.platform("fee_revenue"),
    AccountRef.platform("bbook_pnl"),
    AccountRef.platform("risk_reserve"),
    AccountRef.platform("deposit_clearing", sub="TRON:USDT"),
]
amounts = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("5000"), places=6)


class LedgerMachine(RuleBasedStateMachine):
    user_ids: list[int] = []

    def __init__(self) -> None:
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.expected: dict[str, Decimal] = {}
        self.posted: dict[str, list[TransferSpec]] = {}
        self.accounts: list[AccountRef] = list(PLATFORM)

    @initialize()
    def open_user_accounts(self) -> None:
        for uid in self.user_ids:
            self.accounts += [
                AccountRef.user(uid, "cash"),
                AccountRef.user(uid, "isolated_margin", sub="position:1"),
                AccountRef.user(uid, "order_hold"),
            ]

    def _apply(self, specs: list[TransferSpec]) -> None:
        for spec in specs:
            self.expected[spec.debit.key] = self.expected.get(spec.debit.key, Decimal(0)) - spec.amount
            self.expected[spec.credit.key] = self.expected.get(spec.credit.key, Decimal(0)) + spec.amount

    def _would_overdraw(self, specs: list[TransferSpec]) -> bool:
        """Transfers apply in order: a user account may not dip below zero at any step."""
        trial = dict(self.expected)
        for spec in specs:
            trial[spec.debit.key] = trial.get(spec.debit.key, Decimal(0)) - spec.amount
            if spec.debit.is_user and trial[spec.debit.key] < 0:
                return True
            trial[spec.credit.key] = trial.get(spec.credit.key, Decimal(0)) + spec.amount
        return False

    @rule(
        data=st.data(),
        n=st.integers(min_value=1, max_value=4),
    )
    def post(self, data: st.DataObject, n: int) -> None:
        specs = []
        for _ in range(n):
            debit = data.draw(st.sampled_from(self.accounts))
            credit = data.draw(st.sampled_from([a for a in self.accounts if a != debit]))
            specs.append(
                TransferSpec(debit=debit, credit=credit, amount=data.draw(amounts), kind="adjustment")
            )
        key = f"prop:{len(self.posted)}"
        if self._would_overdraw(specs):
            with pytest.raises(ApplicationError) as err:
                ledger_post(key=key, transfers=specs)
            assert err.value.code == ErrorCode.INSUFFICIENT_BALANCE
            return
        ledger_post(key=key, transfers=specs)
        self.posted[key] = specs
        self._apply(specs)

    @rule(data=st.data())
    def replay(self, data: st.DataObject) -> None:
        if not self.posted:
            return
        key = data.draw(st.sampled_from(sorted(self.posted)))
        assert ledger_post(key=key, transfers=self.posted[key]).replayed

    @invariant()
    def ledger_is_consistent(self) -> None:
        assert ledger_invariant_violations() == []
        for account in self.accounts:
            assert account_balance(account) == self.expected.get(account.key, Decimal(0))

    def teardown(self) -> None:
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)


@pytest.mark.django_db
def test_random_postings_keep_the_ledger_invariants(make_trader):
    LedgerMachine.user_ids = [make_trader().pk, make_trader().pk]
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(max_examples=30, stateful_step_count=12, deadline=None, database=None),
    )
