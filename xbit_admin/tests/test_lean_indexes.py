"""The tables every order writes carry no index that no query reads (migrations trading 0009,
wallets 0007): no pattern-matching copy of a unique key, no single-column index that a composite
already leads with; and the keys are still unique, by the constraints the models name."""

from __future__ import annotations

import re

import pytest
from django.db import IntegrityError, connection, transaction

ORDER_PATH_TABLES = (
    "trading_order",
    "trading_orderevent",
    "trading_position",
    "trading_fill",
    "ledger_accounts",
    "ledger_batches",
    "ledger_transfers",
    "balance_logs",
)
# (table, column): a composite index leads with the column
COVERED = [
    ("trading_order", "user_id"),
    ("trading_orderevent", "order_id"),
    ("trading_position", "user_id"),
    ("trading_fill", "user_id"),
    ("ledger_accounts", "user_id"),
    ("balance_logs", "user_id"),
]


def _indexes() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s)", [list(ORDER_PATH_TABLES)]
        )
        return dict(cursor.fetchall())


@pytest.mark.django_db
def test_no_pattern_copies_and_no_covered_single_column_indexes() -> None:
    indexes = _indexes()
    assert [name for name, definition in indexes.items() if "pattern_ops" in definition] == []
    for table, column in COVERED:
        single = re.compile(rf"ON public\.{table} USING btree \({column}\)$")
        leading = re.compile(rf"ON public\.{table} USING btree \({column}, ")
        assert [name for name, definition in indexes.items() if single.search(definition)] == [], table
        assert any(leading.search(definition) for definition in indexes.values()), (table, column)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "constraint",
    [
        "order_cloid_unique",
        "ledger_account_key_unique",
        "ledger_batch_key_unique",
        "ledger_transfer_key_unique",
    ],
)
def test_keys_are_unique_by_their_constraints(constraint: str) -> None:
    assert "CREATE UNIQUE INDEX" in _indexes()[constraint]


@pytest.mark.django_db
def test_a_duplicate_key_is_refused() -> None:
    sql = "INSERT INTO ledger_batches (key, fingerprint, created_at) VALUES ('k', 'f', now())"
    with (
        pytest.raises(IntegrityError, match="ledger_batch_key_unique"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql)
        cursor.execute(sql)
