"""A transaction's BEGIN sent with its first query, and its COMMIT with its last batch.

psycopg opens a transaction by sending ``BEGIN`` on its own, one round trip before the transaction's
first query, and Django's outermost atomic block ends with one more for ``COMMIT``. An internal order
is four round trips that way — BEGIN | locking reads | writes | COMMIT — where the work needs two:
both extra ones carry no data, only wait for the network and wake the server.

* **BEGIN**: when a batch (``core.sql.batch`` / ``core.sql.prepared``) is the first query of a
  transaction, its text starts with psycopg's own ``BEGIN`` statement and psycopg is told not to send
  it separately. Same statement, same transaction, one round trip less; nothing for the caller to do.
* **COMMIT**: only where the caller says so. :func:`atomic_commit_with_last_batch` is
  ``transaction.atomic()`` that hands out a :class:`LastBatchCommit`; the one batch given it (the
  transaction's last) ends with ``COMMIT`` when the block is the outermost one and Django would commit
  at its end. Django's own commit then finds the transaction finished (psycopg skips a ``COMMIT`` when
  the server is idle) and runs the ``on_commit`` hooks as usual. A failing ``COMMIT`` (a deferred
  foreign key, a serialization failure) raises from that batch as Django's error, with the transaction
  rolled back — as it would from Django's commit. A statement sent after that batch would open a
  second transaction: the block refuses to end that way (``RuntimeError``, that second transaction
  rolled back), so a caller that breaks the rule finds out in its tests.

Both apply only when nothing observes queries (``core.sql.batch.plain_cursor``'s plain path): with
``DEBUG``'s query log, a test's query capture or an execute wrapper, queries go through Django's
cursor wrapper exactly as before, so what those observers record is unchanged.

Both use psycopg internals (``Connection._autocommit``, ``_get_tx_start_command``): each is looked up
first, and a psycopg without them gets the separate round trips, as before."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from psycopg.pq import TransactionStatus

_IDLE = TransactionStatus.IDLE


def inline_begin(raw: Any) -> str | None:
    """The statement psycopg would send on its own before the next query of ``raw`` (a psycopg
    connection) to open a transaction, or None when it would send none (autocommit, a transaction
    already open, pipeline mode, a psycopg without the internals used here)."""
    if raw.autocommit or raw.pgconn.transaction_status != _IDLE:
        return None
    if getattr(raw, "_pipeline", None) is not None or not isinstance(getattr(raw, "_autocommit", None), bool):
        return None
    start = getattr(raw, "_get_tx_start_command", None)
    if start is None:
        return None
    return bytes(start()).decode()


def execute_with_begin(raw: Any, cursor: Any, begin: str, sql: str) -> None:
    """Run ``sql`` on ``cursor`` as the first query of a transaction, ``begin`` (from
    :func:`inline_begin`) in front of it in the same round trip; the cursor is left on the first result
    of ``sql`` itself."""
    raw._autocommit = True  # psycopg's separate BEGIN skipped: ours goes with the query
    try:
        cursor.execute(begin + ";\n" + sql)
    finally:
        raw._autocommit = False
    cursor.nextset()  # past BEGIN's own result


class LastBatchCommit:
    """Leave for one batch — the last of an outermost atomic block — to carry the block's COMMIT."""

    __slots__ = ("block", "db", "sent")

    def __init__(self, db: Any) -> None:
        self.db = db
        self.block = db.atomic_blocks[-1]
        self.sent = False

    def usable(self, db: Any) -> bool:
        """Whether a batch on ``db`` may end with ``COMMIT`` now: still inside this block, the outermost
        one, which Django commits at its end (not a block inside a transaction opened by hand), with
        nothing failed and the COMMIT not sent yet."""
        return (
            not self.sent
            and db is self.db
            and len(db.atomic_blocks) == 1
            and db.atomic_blocks[0] is self.block
            and db.commit_on_exit
            and not db.needs_rollback
        )


@contextmanager
def atomic_commit_with_last_batch(using: str = DEFAULT_DB_ALIAS) -> Iterator[LastBatchCommit | None]:
    """``transaction.atomic(using)``, yielding a :class:`LastBatchCommit` when the block is the
    outermost one (None inside another), for the transaction's last batch to send the COMMIT with it."""
    with transaction.atomic(using=using):
        db = connections[using]
        commit = LastBatchCommit(db) if len(db.atomic_blocks) == 1 else None
        yield commit
        if commit is not None and commit.sent and db.connection.pgconn.transaction_status != _IDLE:
            raise RuntimeError(
                "a statement ran after the batch that carried this transaction's COMMIT; it ran in a "
                "second transaction, which is rolled back"
            )
