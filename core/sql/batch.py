"""Statement batches: several SQL statements sent to PostgreSQL in one round trip, and the builders of
the statements they carry (model inserts and updates written as the ORM writes them, id draws)."""

from __future__ import annotations

import functools
import re
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, models
from django.db.models import Field, Model
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from psycopg.adapt import Transformer
from psycopg.pq import ExecStatus
from psycopg.types.json import Jsonb

from core.sql.transaction import LastBatchCommit, execute_with_begin, inline_begin

Rows = list[tuple[Any, ...]]


class Execute(Protocol):
    def __call__(self, sql: str, commit: LastBatchCommit | None = None) -> bool: ...


class SqlBatch:
    """Several SQL statements sent to PostgreSQL in ONE round trip.

    A round trip over loopback costs ~130 µs on the development machine, more than most of our
    statements take to run, so hot paths queue their statements here and send them together. This
    relies on Django's default client-side parameter binding (psycopg's ``ClientCursor``; the
    ``server_side_binding`` option stays off), which lets one ``execute`` carry ``;``-separated
    statements. They run in order inside the caller's transaction; the first error stops the rest and
    raises as usual. Literal ``%`` must be written ``%%``."""

    __slots__ = ("params", "statements")

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.params: list[Sequence[Any]] = []  # per statement

    def add(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Queue a statement; returns its index in :meth:`run`'s result."""
        self.statements.append(sql)
        self.params.append(params)
        return len(self.statements) - 1

    def __bool__(self) -> bool:
        return bool(self.statements)

    def run(self, commit: LastBatchCommit | None = None) -> list[Rows | None]:
        """Send everything queued; per statement, its rows (``None`` for one that returns none).
        ``commit``: this is the transaction's last batch, which may carry its COMMIT
        (``core.sql.transaction``)."""
        if not self.statements:
            return []
        db = connections[DEFAULT_DB_ALIAS]
        db.ensure_connection()
        with plain_cursor(db) as (cursor, execute):
            bind = binder(cursor)
            committed = execute(
                ";\n".join(
                    bind(sql, params) for sql, params in zip(self.statements, self.params, strict=True)
                ),
                commit,
            )
            results = fetch_results(cursor)
            if committed:
                results.pop()  # the COMMIT's
        self.statements, self.params = [], []
        return results


_PLACEHOLDER = re.compile(r"%%|%s|%")


@functools.lru_cache(maxsize=4096)
def _pieces(sql: str) -> tuple[str, ...] | None:
    """``sql`` cut at its ``%s`` placeholders (``%%`` as ``%``): n + 1 pieces for n parameters, or None
    for a statement with any other ``%`` form (left to psycopg). Cached per statement text: psycopg
    caches its own parse only for statements under 4 kB and 50 parameters, so the order path's
    multi-row inserts were parsed again on every order (~10 % of the web process's CPU per order)."""
    pieces: list[str] = []
    current: list[str] = []
    start = 0
    for match in _PLACEHOLDER.finditer(sql):
        current.append(sql[start : match.start()])
        start = match.end()
        if match.group() == "%%":
            current.append("%")
        elif match.group() == "%s":
            pieces.append("".join(current))
            current = []
        else:
            return None
    current.append(sql[start:])
    pieces.append("".join(current))
    return tuple(pieces)


_transformers: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()  # connection -> Transformer


def binder(cursor: Any) -> Callable[[str, Sequence[Any]], str]:
    """A function binding a statement's parameters as literals, as psycopg's client-side ``mogrify`` of
    ``cursor`` (a psycopg cursor) does, with the statement's cut kept between calls."""
    raw = cursor.connection
    tx = _transformers.get(raw)
    if tx is None:
        tx = _transformers[raw] = Transformer(raw)
    as_literal = tx.as_literal
    encoding = raw.info.encoding
    mogrify = cursor.mogrify

    def literal(value: Any) -> str:
        return as_literal(value).decode(encoding)

    def bind(sql: str, params: Sequence[Any]) -> str:
        pieces = _pieces(sql)
        if pieces is None or len(pieces) != len(params) + 1:
            return str(mogrify(sql, params))
        out = [pieces[0]]
        for value, piece in zip(params, pieces[1:], strict=True):
            out.append(fast_literal(value) or literal(value))
            out.append(piece)
        return "".join(out)

    return bind


# text an array literal carries without quotes (psycopg quotes empty strings, spaces, quotes, commas,
# braces and backslashes, and "NULL" in any case)
_BARE_ARRAY_TEXT = re.compile(r"[A-Za-z0-9_:.@/+-]+\Z")


def fast_literal(value: Any) -> str:
    """``value`` as psycopg's ``as_literal`` writes it, byte for byte, for the types the hot paths bind
    most (None, bool, int, finite Decimal, str and its subclasses such as a model's choices, aware
    datetime, UUID, a JSON field's value, a list of plain text); ""
    for any other value, which psycopg then binds. psycopg looks up a dumper per value (~40 % of
    binding's time on the order path).
    A negative number gets a leading space as psycopg gives it (``x -%s`` must not become a comment);
    a string with a backslash or NUL, a naive datetime, NaN and the rest are left to psycopg."""
    kind = type(value)
    if value is None:
        return "NULL"
    if kind is str or isinstance(value, str):  # a model's choices (TextChoices members) too
        if "\\" in value or "\x00" in value:
            return ""
        return "'" + value.replace("'", "''") + "'"
    if kind is int:
        return str(value) if value >= 0 else " " + str(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is Decimal:
        if not value.is_finite():
            return ""
        return str(value) if not value.is_signed() else " " + str(value)
    if kind is datetime and value.tzinfo is not None:
        return "'" + str(value) + "'::timestamptz"
    if kind is uuid.UUID:
        return "'" + value.hex + "'::uuid"
    if kind is list:  # a text array (ledger keys): elements psycopg writes bare, or left to it
        for item in value:
            if not isinstance(item, str) or not _BARE_ARRAY_TEXT.match(item) or item.upper() == "NULL":
                return ""
        return "'{" + ",".join(value) + "}'"
    if kind is Jsonb and value.dumps is not None:  # a JSONField's value: dumped by the field's encoder
        text = value.dumps(value.obj)
        if isinstance(text, bytes | bytearray | memoryview):
            text = bytes(text).decode()
        if "\\" in text or "\x00" in text:
            return ""
        return "'" + text.replace("'", "''") + "'::jsonb"
    return ""


def fetch_results(cursor: Any) -> list[Rows | None]:
    """Every result set of the multi-statement query just executed on ``cursor`` (a DB-API cursor):
    per statement, its rows, or ``None`` for one that returns none."""
    results: list[Rows | None] = []
    while True:
        results.append(cursor.fetchall() if has_rows(cursor) else None)
        if not cursor.nextset():
            return results


def has_rows(cursor: Any) -> bool:
    """Whether the current result of ``cursor`` (psycopg's, or Django's wrapper of one) has rows to
    fetch — what ``description is not None`` says, without building the description's columns
    (~4 % of the order path's CPU when asked per result set)."""
    result = getattr(cursor, "pgresult", None)
    if result is None:
        return cursor.description is not None
    return bool(result.status == ExecStatus.TUPLES_OK)


@contextmanager
def plain_cursor(db: Any) -> Iterator[tuple[Any, Execute]]:
    """A psycopg cursor of ``db`` (a Django database wrapper, connected) and the function that runs one
    query on it, with Django's error translation (``IntegrityError`` and the rest arrive as Django's).
    Django's cursor wrapper is left out when nothing observes queries — its per-call bookkeeping is a
    few % of the order path — and kept when something does (``DEBUG``'s query log, tests that count
    queries, execute wrappers), so they see every query as before.

    On the plain path a query that opens a transaction carries psycopg's ``BEGIN`` with it, and one
    given a usable ``commit`` ends with ``COMMIT`` (``core.sql.transaction``): ``execute`` returns
    whether it did — then the query's last result set is the COMMIT's."""
    if db.queries_logged or db.execute_wrappers:
        with db.cursor() as wrapper:

            def execute_observed(sql: str, commit: LastBatchCommit | None = None) -> bool:
                wrapper.execute(sql)
                return False

            yield wrapper.cursor, execute_observed
        return
    with db.wrap_database_errors:
        cursor = db.create_cursor()
    try:

        def execute(sql: str, commit: LastBatchCommit | None = None) -> bool:
            db.validate_no_broken_transaction()  # as Django's wrapper refuses a query after a failed one
            raw = db.connection
            committing = commit is not None and commit.usable(db)
            if committing:
                sql += ";\nCOMMIT"
            begin = inline_begin(raw)
            with db.wrap_database_errors:
                if begin is None:
                    cursor.execute(sql)
                else:
                    execute_with_begin(raw, cursor, begin, sql)
            if committing:
                assert commit is not None
                commit.sent = True
            return committing

        yield cursor, execute
    finally:
        cursor.close()


def values_rows(count: int, row: str) -> str:
    """``row`` (a ``VALUES`` tuple of placeholders) repeated ``count`` times, comma-separated."""
    return ", ".join([row] * count)


# Field classes whose DB conversion leaves a value of these exact Python types as it is (on PostgreSQL; an
# integer field's only wraps it in psycopg's sized int, which names the type the column already has):
# such a value is written as it is, skipping the field's conversion chain (~5 % of the order path's CPU).
# Any other value — a float for a Decimal, a naive datetime, a string for a number — and every other
# field class (JSON, subclasses) still go through the field.
_PASS_THROUGH: dict[type[Field[Any, Any]], tuple[type, ...]] = {
    models.AutoField: (int,),
    models.BigAutoField: (int,),
    models.IntegerField: (int,),
    models.BigIntegerField: (int,),
    models.SmallIntegerField: (int,),
    models.PositiveIntegerField: (int,),
    models.PositiveBigIntegerField: (int,),
    models.PositiveSmallIntegerField: (int,),
    models.CharField: (str,),
    models.TextField: (str,),
    models.BooleanField: (bool,),
    models.UUIDField: (uuid.UUID,),
    models.DecimalField: (Decimal,),
    models.DateTimeField: (datetime,),
}


def _column_writer(field: Any) -> Callable[[Any, Any], Any]:
    """``(value, db) -> parameter`` for one concrete field, as ``field.get_db_prep_save`` answers."""
    prep = field.get_db_prep_save
    if field.is_relation:  # a foreign key writes its target's id: an integer id passes as it is
        if type(field) is not models.ForeignKey or _PASS_THROUGH.get(type(field.target_field)) != (int,):
            return prep
        kinds: tuple[type, ...] = (int,)
    else:
        kinds = _PASS_THROUGH.get(type(field), ())
    if not kinds:
        return prep
    nullable = bool(field.null)  # a None where the field refuses it: the field's own answer
    kind = kinds[0]
    if kind is Decimal:
        return lambda value, db: (
            value
            if (type(value) is Decimal and value.is_finite()) or (value is None and nullable)
            else prep(value, db)  # a non-finite Decimal: the field refuses it
        )
    if kind is datetime:
        return lambda value, db: (
            value
            if (type(value) is datetime and value.tzinfo is not None) or (value is None and nullable)
            else prep(value, db)  # a naive datetime: the field warns
        )
    return lambda value, db: value if type(value) is kind or (value is None and nullable) else prep(value, db)


@functools.cache
def _insert_shape(model: type[Model], with_pk: bool) -> tuple[list[tuple[str, Any]], str, str]:
    meta = model._meta
    fields = [f for f in meta.concrete_fields if with_pk or not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(str(f.column)) for f in fields)
    head = f"INSERT INTO {meta.db_table} ({columns}) VALUES "  # noqa: S608 - our own table and columns
    writers = [(f.attname, _column_writer(f)) for f in fields]
    return writers, head, "(" + ", ".join(["%s"] * len(fields)) + ")"


def insert_statement(model: type[Model], objs: Sequence[Model], *, with_pk: bool) -> tuple[str, list[Any]]:
    """``INSERT`` of model instances as the ORM would write them (fields' own DB conversion; JSON with the
    field's encoder), for a :class:`SqlBatch`. ``with_pk``: the instances carry pre-allocated ids."""
    writers, head, row = _insert_shape(model, with_pk)
    db = connections[DEFAULT_DB_ALIAS]  # not the ``connection`` proxy: a thread-local lookup per use
    params = [write(getattr(obj, attname), db) for obj in objs for attname, write in writers]
    return head + ", ".join([row] * len(objs)), params


@functools.cache
def _update_shape(model: type[Model], fields: tuple[str, ...]) -> tuple[list[tuple[str, Any]], str]:
    meta = model._meta
    model_fields = [meta.get_field(name) for name in fields]
    sets = ", ".join(f"{connection.ops.quote_name(str(f.column))} = %s" for f in model_fields)  # type: ignore[union-attr]
    writers = [(f.attname, _column_writer(f)) for f in model_fields]  # type: ignore[union-attr]
    return writers, f"UPDATE {meta.db_table} SET {sets} WHERE id = %s"  # noqa: S608


def update_statement(obj: Model, fields: Sequence[str]) -> tuple[str, list[Any]]:
    """``UPDATE`` of some fields of one model instance by primary key, for a :class:`SqlBatch`."""
    writers, sql = _update_shape(type(obj), tuple(fields))
    db = connections[DEFAULT_DB_ALIAS]
    params = [write(getattr(obj, attname), db) for attname, write in writers]
    return sql, [*params, obj.pk]


def next_id_sql(model: type[Model]) -> str:
    """The SQL expression drawing the next id from ``model``'s id sequence."""
    return f"nextval(pg_get_serial_sequence('{model._meta.db_table}', 'id'))"


def next_ids(batch: SqlBatch, counts: dict[type[Model], int]) -> int:
    """Queue one statement that draws ``count`` ids from each model's id sequence (gaps are harmless,
    as after any rollback); the row it returns holds them in ``counts`` order."""
    parts = []
    for model, count in counts.items():
        parts += [next_id_sql(model)] * count
    return batch.add("SELECT " + ", ".join(parts or ["NULL"]))


@functools.cache
def _new_shape(model: type[Model]) -> tuple[tuple[str, str | None, Any], ...] | None:
    """Per concrete field: (attname, the relation's name for a foreign key else None, the field), or
    None when the model has anything ``Model.__init__`` does that :func:`new_instance` does not (private
    fields such as generic foreign keys, a relation other than a plain foreign key)."""
    meta = model._meta
    if meta.private_fields:
        return None
    shape = []
    for f in meta.concrete_fields:
        if f.is_relation and type(f) is not models.ForeignKey:
            return None
        shape.append((f.attname, f.name if f.is_relation else None, f))
    return tuple(shape)


def new_instance(model: type[Model], /, **values: Any) -> Any:
    """``model(**values)``: a new, unsaved instance with the same attributes, the same defaults for
    fields not given and a foreign key given as an object cached as the descriptor caches it — in about
    a third of the time (``Model.__init__`` was ~7 % of the order path's CPU). Falls back to the
    constructor when the model has init signal receivers or a field kind this does not handle, and for
    values that are not fields (the constructor sets properties; here that is an error)."""
    shape = _new_shape(model)
    if shape is None or pre_init.has_listeners(model) or post_init.has_listeners(model):
        return model(**values)
    obj = model.__new__(model)
    state = obj._state = ModelState()
    attrs = obj.__dict__
    given = len(values)
    for attname, relation, field in shape:
        if relation is not None and relation in values:
            related = values[relation]
            given -= 1
            if related is not None:
                if not isinstance(related, field.remote_field.model) or settings.DATABASE_ROUTERS:
                    return model(**values)  # the descriptor's own refusal, or routers to ask
                # the databases as the descriptor sets them when no router is configured
                if state.db is None:
                    state.db = related._state.db or DEFAULT_DB_ALIAS
                if related._state.db is None:
                    related._state.db = state.db
                if related._state.db != state.db:
                    return model(**values)  # a relation across databases: the descriptor refuses it
            attrs[attname] = None if related is None else getattr(related, field.target_field.attname)
            state.fields_cache[relation] = related
        elif attname in values:
            attrs[attname] = values[attname]
            given -= 1
        else:
            attrs[attname] = field.get_default()
    if given:
        return model(**values)  # a name that is not a field: the constructor's answer
    return obj
