"""The order path's batches as prepared statements (``core.sql.prepared``): same results as the plain
batch, still one round trip, and a failure never leaves the connection thinking a statement is
prepared when it may not be."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from core.sql import prepared
from core.sql.batch import SqlBatch
from trading.models import Order, Position
from trading.orders.input import order_input
from trading.orders.place import order_place
from wallets.ledger import ledger_invariant_violations

pytestmark = pytest.mark.django_db(transaction=True)

SELECT = "SELECT %s::int + 1, %s::text || '%%'"


def _batch(*rows: tuple[str, list[Any]]) -> SqlBatch:
    batch = SqlBatch()
    for sql, params in rows:
        batch.add(sql, params)
    return batch


def test_the_server_form_numbers_placeholders_and_unescapes_percent() -> None:
    assert prepared.server_form(SELECT) == ("SELECT $1::int + 1, $2::text || '%'", 2)
    assert prepared.server_form("SELECT 1") == ("SELECT 1", 0)


def test_statements_are_prepared_after_the_threshold_in_the_same_round_trip() -> None:
    connection.ensure_connection()
    assert connection.connection.prepare_threshold == 2  # xbit_admin/settings/base.py
    plain = _batch((SELECT, [1, "a"]), ("SELECT 7", [])).run()
    for n in range(5):
        with CaptureQueriesContext(connection) as ctx:
            results = prepared.run(_batch((SELECT, [n, "b"]), ("SELECT 7", [])))
        assert len(ctx.captured_queries) == 1
        assert results == [[(n + 1, "b%")], [(7,)]]
        sent = ctx.captured_queries[0]["sql"]
        # sends 1 and 2 plain, the third prepares, later ones only execute
        assert ("PREPARE" in sent) == (n == 2) and ("EXECUTE" in sent) == (n >= 2)
    assert plain == [[(2, "a%")], [(7,)]]
    assert set(prepared.prepared_names()) >= {SELECT, "SELECT 7"}


def test_a_failed_batch_records_nothing_and_its_names_are_never_reused() -> None:
    statement = "SELECT %s::int + 0"
    prepared.run(_batch((statement, [1])))
    prepared.run(_batch((statement, [1])))  # the next send prepares it …
    with pytest.raises(Exception), transaction.atomic():  # noqa: B017 - the division
        prepared.run(_batch((statement, [1]), ("SELECT %s::int / 0", [1])))
    # … but its batch failed: the PREPARE ran (a rollback does not undo it) yet nothing assumes so; it is
    # prepared again, under a new name, once it has been sent plain as often again
    assert statement not in prepared.prepared_names()
    assert [prepared.run(_batch((statement, [n]))) for n in (5, 6, 7, 8)] == [[[(n,)]] for n in (5, 6, 7, 8)]
    assert statement in prepared.prepared_names()


def test_a_statement_postgresql_cannot_prepare_fails_once_and_is_then_sent_plain() -> None:
    untyped = "SELECT %s IS NULL"  # PostgreSQL cannot infer the parameter's type: PREPARE fails
    failures = 0
    for _ in range(10):
        try:
            with transaction.atomic():
                assert prepared.run(_batch((untyped, [None]))) == [[(True,)]]
        except Exception:  # counting them
            failures += 1
    assert failures == 1 and untyped not in prepared.prepared_names()


@pytest.mark.usefixtures("internalization_on")
def test_orders_fill_the_same_through_prepared_statements(trader: Any, set_quote: Any) -> None:
    set_quote("BTC", "80000")
    for i in range(8):
        order = order_place(
            user=trader,
            inp=order_input(
                asset="BTC",
                side="BUY" if i % 2 == 0 else "SELL",
                order_type="MARKET",
                size="0.01",
                leverage=10,
            ),
        )
        assert order.status == "FILLED"
    assert any(sql.startswith("WITH b AS (INSERT INTO ledger_batches") for sql in prepared.prepared_names())
    assert Order.objects.filter(user=trader, status="FILLED").count() == 8
    assert not Position.objects.filter(user=trader, status="OPEN").exists()
    assert Position.objects.filter(user=trader).values_list("realized_pnl", flat=True)[0] <= Decimal(0)
    assert ledger_invariant_violations() == []
