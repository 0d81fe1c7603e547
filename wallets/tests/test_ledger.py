"""Spec 06 — the double-entry ledger."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction

from core.errors import ApplicationError, ErrorCode
from wallets.hooks import register_cross_margin_provider, unregister_cross_margin_provider
from wallets.ledger import AccountRef, TransferSpec, account_balance, ledger_invariant_violations, ledger_post
from wallets.models import BalanceLog, LedgerTransfer
from wallets.selectors import wallet_get
from wallets.tests.conftest import fund

pytestmark = pytest.mark.django_db

FEES = AccountRef.platform("fee_revenue")


def cash(user) -> AccountRef:
    return AccountRef.user(user.pk, "cash")


def test_a_transfer_moves_money_from_debit_to_credit_and_logs_the_user_change(make_trader):
    user = make_trader()
    fund(user, "100")
    posting = ledger_post(
        key="fee:1",
        transfers=[
            TransferSpec(
                debit=cash(user),
                credit=FEES,
                amount=Decimal("2.5"),
                kind="trading_fee",
                ref_type="fill",
                ref_id=7,
            )
        ],
    )
    assert not posting.replayed
    assert account_balance(cash(user)) == Decimal("97.5")
    assert account_balance(FEES) == Decimal("2.5")
    log = BalanceLog.objects.filter(user=user).order_by("-id").first()
    assert (log.type, log.amount, log.before, log.after, log.ref_type, log.ref_id) == (
        "trading_fee",
        Decimal("-2.5"),
        Decimal("100"),
        Decimal("97.5"),
        "fill",
        "7",
    )
    assert ledger_invariant_violations() == []


def test_several_transfers_post_atomically_or_not_at_all(make_trader):
    user = make_trader()
    fund(user, "10")
    margin = AccountRef.user(user.pk, "isolated_margin", sub="position:42")
    with pytest.raises(ApplicationError) as err:
        ledger_post(
            key="fill:1",
            transfers=[
                TransferSpec(debit=cash(user), credit=margin, amount=Decimal("8"), kind="margin_freeze"),
                TransferSpec(debit=cash(user), credit=FEES, amount=Decimal("3"), kind="trading_fee"),
            ],
        )
    assert err.value.code == ErrorCode.INSUFFICIENT_BALANCE
    assert account_balance(cash(user)) == Decimal("10")
    assert account_balance(margin) == 0
    assert not LedgerTransfer.objects.filter(idempotency_key__startswith="fill:1").exists()


def test_replaying_a_key_returns_the_original_and_changes_nothing(make_trader):
    user = make_trader()
    fund(user, "50")
    spec = TransferSpec(debit=cash(user), credit=FEES, amount=Decimal("5"), kind="trading_fee")
    first = ledger_post(key="k:1", transfers=[spec])
    again = ledger_post(key="k:1", transfers=[spec])
    assert again.replayed and again.batch_id == first.batch_id
    assert [t.pk for t in again.transfers] == [t.pk for t in first.transfers]
    assert account_balance(cash(user)) == Decimal("45")


def test_replaying_a_key_with_different_content_is_an_idempotency_conflict(make_trader):
    user = make_trader()
    fund(user, "50")
    ledger_post(
        key="k:2",
        transfers=[TransferSpec(debit=cash(user), credit=FEES, amount=Decimal("5"), kind="trading_fee")],
    )
    with pytest.raises(ApplicationError) as err:
        ledger_post(
            key="k:2",
            transfers=[TransferSpec(debit=cash(user), credit=FEES, amount=Decimal("6"), kind="trading_fee")],
        )
    assert err.value.code == ErrorCode.IDEMPOTENCY_CONFLICT
    assert account_balance(cash(user)) == Decimal("45")


@pytest.mark.parametrize("amount", [Decimal("0"), Decimal("-1"), Decimal("0.0000001"), "abc"])
def test_bad_amounts_are_refused_and_move_nothing(make_trader, amount):
    user = make_trader()
    fund(user, "50")
    with pytest.raises(ApplicationError) as err:
        ledger_post(
            key="bad",
            transfers=[TransferSpec(debit=cash(user), credit=FEES, amount=amount, kind="trading_fee")],
        )
    assert err.value.code == ErrorCode.INVALID_AMOUNT
    assert account_balance(cash(user)) == Decimal("50")


def test_a_float_amount_is_refused(make_trader):
    user = make_trader()
    with pytest.raises(ApplicationError) as err:
        ledger_post(
            key="f", transfers=[TransferSpec(debit=FEES, credit=cash(user), amount=0.1, kind="adjustment")]
        )  # type: ignore[arg-type]
    assert err.value.code == ErrorCode.INVALID_AMOUNT


def test_the_database_refuses_a_negative_user_balance(make_trader):
    user = make_trader()
    fund(user, "1")
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE ledger_accounts SET balance = -1 WHERE user_id = %s", [user.pk])


@pytest.mark.parametrize("table", ["ledger_transfers", "balance_logs", "ledger_batches"])
def test_ledger_tables_are_append_only(make_trader, table):
    user = make_trader()
    fund(user, "1")
    for statement in (f"UPDATE {table} SET created_at = now()", f"DELETE FROM {table}"):  # noqa: S608
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)


def test_the_invariant_checker_notices_a_balance_without_postings():
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO ledger_accounts (key, kind, sub, asset, balance, created_at, updated_at) "
                "VALUES ('p:risk_reserve:ghost:USDC', 'risk_reserve', 'ghost', 'USDC', 5, now(), now())"
            )
        problems = ledger_invariant_violations()
        transaction.set_rollback(True)
    assert any("sum to 5" in p for p in problems)
    assert any("ghost" in p for p in problems)


def test_a_four_transfer_fill_posts_in_a_fixed_small_number_of_queries(
    make_trader, django_assert_max_num_queries
):
    user = make_trader()
    fund(user, "1000")
    margin = AccountRef.user(user.pk, "isolated_margin", sub="position:1")
    fill = [
        TransferSpec(debit=cash(user), credit=margin, amount=Decimal("100"), kind="margin_freeze"),
        TransferSpec(debit=cash(user), credit=FEES, amount=Decimal("0.5"), kind="trading_fee"),
        TransferSpec(
            debit=margin, credit=AccountRef.platform("bbook_pnl"), amount=Decimal("3"), kind="realized_pnl"
        ),
        TransferSpec(
            debit=AccountRef.platform("bbook_pnl"),
            credit=AccountRef.platform("risk_reserve"),
            amount=Decimal("0.6"),
            kind="reserve_allocation",
        ),
    ]
    ledger_post(key="warm", transfers=fill)  # accounts now exist
    with django_assert_max_num_queries(7):  # savepoint, batch, lock, transfers, logs, balances, release
        ledger_post(key="fill:hot", transfers=fill)


def test_the_wallet_view_is_derived_from_the_ledger_and_the_cross_margin_hook(make_trader):
    user = make_trader()
    fund(user, "1000")
    ledger_post(
        key="freeze",
        transfers=[
            TransferSpec(
                debit=cash(user),
                credit=AccountRef.user(user.pk, "isolated_margin", sub="position:9"),
                amount=Decimal("200"),
                kind="margin_freeze",
            ),
            TransferSpec(
                debit=cash(user),
                credit=AccountRef.user(user.pk, "order_hold"),
                amount=Decimal("50"),
                kind="order_hold",
            ),
        ],
    )

    def provider(user_ids):
        return {user.pk: Decimal("120")}

    register_cross_margin_provider(provider)
    try:
        view = wallet_get(user_id=user.pk)
    finally:
        unregister_cross_margin_provider(provider)
    assert view.total_balance == Decimal("1000")
    assert view.frozen_margin == Decimal("250")
    assert view.cross_margin_used == Decimal("120")
    assert view.available_balance == Decimal("630")
