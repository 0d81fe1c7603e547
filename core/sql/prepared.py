"""Statement batches as server-side prepared statements, still in one round trip.

A :class:`core.sql.batch.SqlBatch` sends its statements as one multi-statement query: one round trip,
but PostgreSQL parses and plans every statement on every call (~1 ms of server time for the write of an
internal fill on the development machine, more than its execution). psycopg's own prepared statements
need the extended protocol, one statement per message (a pipeline: measured slower here, see README).
So the batch stays one simple query and each statement becomes ``EXECUTE <name>(<bound literals>)``;
``PREPARE <name> AS <statement>`` goes in front of it, in the same query, the first time the
connection sends it after it was seen ``prepare_threshold`` times.

Switched by the database connection's ``prepare_threshold`` (``DATABASES["default"]["OPTIONS"]``; Django's
default ``None`` disables prepared statements, as a transaction-pooling PgBouncer requires).

Prepared statements live as long as the database session and, unlike everything else in the batch,
are not undone by a rollback. What this module knows per connection is therefore kept conservative:
a name is recorded as prepared only after a batch carrying its ``PREPARE`` succeeded; a name whose
batch failed is never used again (the next attempt prepares under a new name); a statement whose
batch failed twice while being prepared — or once with a class 42 error, one PostgreSQL cannot
prepare — is never prepared again in this process. (Every statement of the order path prepares:
``trading/tests`` run with prepared statements on.)
"""

from __future__ import annotations

import functools
import re
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections

from core.sql.batch import Rows, SqlBatch, binder, has_rows, plain_cursor
from core.sql.transaction import LastBatchCommit

MAX_PREPARED = 500  # per connection; beyond it statements are sent as they are
_PLACEHOLDER = re.compile(r"%%|%s")


@dataclass
class _Session:
    names: dict[str, str] = field(default_factory=dict)  # statement -> prepared name
    seen: dict[str, int] = field(default_factory=dict)  # statement -> times sent unprepared
    issued: int = 0  # names used so far (a failed PREPARE's name is never reused)


_sessions: weakref.WeakKeyDictionary[Any, _Session] = weakref.WeakKeyDictionary()
_failures: dict[str, int] = {}  # statement -> failed batches while it was being prepared (process-wide)
_lock = threading.Lock()


def server_form(sql: str) -> tuple[str, int]:
    """``sql`` with psycopg's ``%s`` placeholders as ``$1 … $n`` (and ``%%`` as ``%``), and n."""
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match.group() == "%%":
            return "%"
        count += 1
        return f"${count}"

    return _PLACEHOLDER.sub(number, sql), count


def run(batch: SqlBatch, commit: LastBatchCommit | None = None) -> list[Rows | None]:
    """:meth:`SqlBatch.run` with prepared statements (same results, same single round trip; the same
    ``commit``: the transaction's last batch may carry its COMMIT)."""
    if not batch.statements:
        return []
    # the wrapper itself: the ``connection`` proxy is a thread-local lookup per use
    db = connections[DEFAULT_DB_ALIAS]
    db.ensure_connection()
    raw = db.connection
    threshold = getattr(raw, "prepare_threshold", None)
    if threshold is None:
        return batch.run(commit)
    with _lock:
        session = _sessions.setdefault(raw, _Session())
    parts: list[str] = []
    keep: list[bool] = []  # per result set: one of the batch's statements (True) or a PREPARE (False)
    preparing: list[tuple[str, str]] = []
    with plain_cursor(db) as (cursor, execute):
        bind = binder(cursor)
        for sql, params in zip(batch.statements, batch.params, strict=True):
            name = session.names.get(sql)
            if name is None and _should_prepare(session, sql, threshold):
                name = f"xbit_{session.issued}"
                session.issued += 1
                body, count = server_form(sql)
                if count == len(params):
                    parts.append(f"PREPARE {name} AS {body}")
                    keep.append(False)
                    preparing.append((sql, name))
                else:  # not the statement psycopg would bind: leave it alone
                    _failures[sql] = 2
                    name = None
            if name is None:
                parts.append(bind(sql, params))
            elif params:
                parts.append(bind(_execute_sql(name, len(params)), params))
            else:
                parts.append(f"EXECUTE {name}")
            keep.append(True)
        try:
            execute(";\n".join(parts), commit)
        except BaseException as exc:
            # a statement PostgreSQL cannot prepare (SQLSTATE class 42: e.g. a parameter whose type it
            # cannot infer) is never tried again; any other failure counts once
            cause = exc.__cause__ or exc
            fatal = str(getattr(cause, "sqlstate", "") or "").startswith("42")
            for sql, _name in preparing:
                _failures[sql] = 2 if fatal else _failures.get(sql, 0) + 1
            raise
        for sql, name in preparing:
            session.names[sql] = name
        results: list[Rows | None] = []
        for wanted in keep:
            if wanted:
                results.append(cursor.fetchall() if has_rows(cursor) else None)
            if not cursor.nextset():
                break
    batch.statements, batch.params = [], []
    return results


@functools.lru_cache(maxsize=4096)
def _execute_sql(name: str, count: int) -> str:
    """``EXECUTE name(%s, …)`` for ``count`` parameters (built once: the statement's cut is cached by
    its text in ``core.sql.batch``)."""
    return f"EXECUTE {name}({', '.join(['%s'] * count)})"


def _should_prepare(session: _Session, sql: str, threshold: int) -> bool:
    if _failures.get(sql, 0) >= 2 or session.issued >= MAX_PREPARED:
        return False
    seen = session.seen.get(sql, 0)
    if seen == 0 and len(session.seen) >= 10 * MAX_PREPARED:
        session.seen.clear()  # statements whose text keeps changing: never worth preparing
    if seen >= threshold:
        session.seen.pop(sql, None)
        return True
    session.seen[sql] = seen + 1
    return False


def prepared_names() -> dict[str, str]:
    """This connection's prepared statements (statement -> name), for tests."""
    raw = connection.connection
    session = _sessions.get(raw) if raw is not None else None
    return dict(session.names) if session is not None else {}
