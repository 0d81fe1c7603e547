"""A transaction's BEGIN goes with its first batch and, where the caller allows it, its COMMIT with its
last (``core.sql.transaction``): counted on the wire, and with everything a transaction promises kept —
atomicity, a failing COMMIT, isolation settings, the on_commit hooks, nested blocks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from psycopg import IsolationLevel

from core.sql import prepared
from core.sql.batch import SqlBatch
from core.sql.transaction import atomic_commit_with_last_batch
from core.sql.wire import wire_queries

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tables() -> Iterator[None]:
    """Two tables of this session, the child's foreign key checked at COMMIT (as Django's are)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE t_parent (id int PRIMARY KEY);"
            "CREATE TEMP TABLE t_child (id int PRIMARY KEY, "
            "parent_id int REFERENCES t_parent DEFERRABLE INITIALLY DEFERRED)"
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS t_child; DROP TABLE IF EXISTS t_parent")


def _committed(sql: str) -> list[tuple[Any, ...]]:
    """``sql``'s rows as another session sees them (temp tables are not visible there: count rows in
    this session, outside any transaction)."""
    assert not connection.in_atomic_block
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return list(cursor.fetchall())


def _batch(*statements: str) -> SqlBatch:
    batch = SqlBatch()
    for sql in statements:
        batch.add(sql)
    return batch


def _raw() -> Any:
    connection.ensure_connection()
    return connection.connection


def test_begin_and_commit_go_with_the_first_and_last_batch(tables: None) -> None:
    hooks: list[str] = []
    with wire_queries(_raw()) as sent, atomic_commit_with_last_batch() as commit:
        assert commit is not None
        first = _batch("INSERT INTO t_parent VALUES (1)", "SELECT txid_current()").run()
        transaction.on_commit(lambda: hooks.append("ran"))
        last = _batch("INSERT INTO t_child VALUES (10, 1)", "SELECT txid_current()").run(commit)
        assert commit.sent
    assert len(sent) == 2, sent
    assert sent[0].startswith("BEGIN;") and sent[1].endswith("COMMIT")
    assert first[1] == last[1]  # one transaction
    assert len(last) == 2  # the COMMIT's own result is not among the batch's
    assert hooks == ["ran"]
    assert _committed("SELECT id FROM t_child") == [(10,)]


def test_without_leave_to_commit_django_commits_as_before(tables: None) -> None:
    with wire_queries(_raw()) as sent, atomic_commit_with_last_batch():
        _batch("INSERT INTO t_parent VALUES (1)").run()
        _batch("INSERT INTO t_parent VALUES (2)").run()
    assert [s.split(";")[0] for s in sent] == ["BEGIN", "INSERT INTO t_parent VALUES (2)", "COMMIT"]
    assert _committed("SELECT count(*) FROM t_parent") == [(2,)]


def test_a_merged_begin_still_opens_the_transaction_a_failure_rolls_back(tables: None) -> None:
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        _batch("INSERT INTO t_parent VALUES (1)").run()
        assert _raw().pgconn.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        raise ZeroDivisionError
    assert _committed("SELECT count(*) FROM t_parent") == [(0,)]


def test_a_first_batch_that_fails_leaves_nothing_and_the_connection_usable(tables: None) -> None:
    with pytest.raises(IntegrityError), atomic_commit_with_last_batch():
        _batch("INSERT INTO t_parent VALUES (1)", "INSERT INTO t_parent VALUES (1)").run()
    assert _committed("SELECT count(*) FROM t_parent") == [(0,)]
    with atomic_commit_with_last_batch() as commit:
        _batch("INSERT INTO t_parent VALUES (1)").run()
        _batch("INSERT INTO t_parent VALUES (2)").run(commit)
    assert _committed("SELECT id FROM t_parent ORDER BY id") == [(1,), (2,)]


def test_a_commit_that_fails_raises_from_the_batch_and_leaves_nothing(tables: None) -> None:
    with pytest.raises(IntegrityError, match="t_child"), atomic_commit_with_last_batch() as commit:
        _batch("INSERT INTO t_parent VALUES (1)").run()
        _batch("INSERT INTO t_child VALUES (10, 99)").run(commit)  # no parent 99: refused at COMMIT
    assert _committed("SELECT count(*) FROM t_parent") == [(0,)]
    # the connection goes on as usual
    with atomic_commit_with_last_batch() as commit:
        _batch("INSERT INTO t_parent VALUES (2)").run(commit)
    assert _committed("SELECT id FROM t_parent") == [(2,)]


def test_a_statement_after_the_committing_batch_is_refused_and_rolled_back(tables: None) -> None:
    refused = pytest.raises(RuntimeError, match="after the batch that carried")
    with refused, atomic_commit_with_last_batch() as commit:
        _batch("INSERT INTO t_parent VALUES (1)").run(commit)
        _batch("INSERT INTO t_parent VALUES (2)").run()
    assert _committed("SELECT id FROM t_parent") == [(1,)]


def test_inside_another_block_nothing_commits_early(tables: None) -> None:
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        with atomic_commit_with_last_batch() as inner:
            assert inner is None  # nothing to hand out inside another block
        raise ZeroDivisionError
    with pytest.raises(ZeroDivisionError), atomic_commit_with_last_batch() as outer:
        assert outer is not None
        with transaction.atomic():  # a savepoint: the outer block's leave does not reach in here
            _batch("INSERT INTO t_parent VALUES (1)").run(outer)
            assert not outer.sent
        raise ZeroDivisionError
    assert _committed("SELECT count(*) FROM t_parent") == [(0,)]


def test_a_transaction_opened_by_hand_is_not_committed_early(tables: None) -> None:
    transaction.set_autocommit(False)
    try:
        with atomic_commit_with_last_batch() as commit:
            assert commit is not None
            _batch("INSERT INTO t_parent VALUES (1)").run(commit)
            assert not commit.sent  # Django would not commit at this block's end: neither do we
        transaction.rollback()
    finally:
        transaction.set_autocommit(True)
    assert _committed("SELECT count(*) FROM t_parent") == [(0,)]


def test_prepared_batches_merge_the_same_way(tables: None) -> None:
    raw = _raw()
    raw.prepare_threshold = 0
    try:
        for parent in (1, 2, 3):  # prepared from the second time on
            with wire_queries(raw) as sent, atomic_commit_with_last_batch() as commit:
                batch = SqlBatch()
                batch.add("INSERT INTO t_parent VALUES (%s)", [parent])
                batch.add("SELECT count(*) FROM t_parent")
                rows = prepared.run(batch, commit)
            assert len(sent) == 1 and sent[0].startswith("BEGIN;") and sent[0].endswith("COMMIT"), sent
            assert rows == [None, [(parent,)]]
        assert prepared.prepared_names()
    finally:
        raw.prepare_threshold = settings.DATABASES["default"]["OPTIONS"].get("prepare_threshold")


def test_the_merged_begin_is_psycopg_own_with_the_isolation_level(tables: None) -> None:
    raw = _raw()
    raw.isolation_level = IsolationLevel.SERIALIZABLE
    try:
        with wire_queries(raw) as sent, transaction.atomic():
            rows = _batch("SHOW transaction_isolation").run()
        assert rows == [[("serializable",)]]
        assert sent[0].startswith("BEGIN ISOLATION LEVEL SERIALIZABLE;")
    finally:
        raw.isolation_level = None


def test_observed_queries_keep_django_shape(tables: None) -> None:
    observed = CaptureQueriesContext(connection)
    with wire_queries(_raw()) as sent, observed as captured, atomic_commit_with_last_batch() as commit:
        _batch("INSERT INTO t_parent VALUES (1)").run(commit)
    assert sent == ["BEGIN", "INSERT INTO t_parent VALUES (1)", "COMMIT"]
    assert [q["sql"] for q in captured.captured_queries] == [
        "BEGIN",
        "INSERT INTO t_parent VALUES (1)",
        "COMMIT",
    ]
