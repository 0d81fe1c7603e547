"""Statement batches: several SQL statements sent to PostgreSQL in one round trip, and the builders of
the statements they carry (model inserts and updates written as the ORM writes them, id draws)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Model

Rows = list[tuple[Any, ...]]


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

    def run(self) -> list[Rows | None]:
        """Send everything queued; per statement, its rows (``None`` for one that returns none)."""
        if not self.statements:
            return []
        with connection.cursor() as cursor:
            # bound statement by statement (exactly as one execute would bind them all): psycopg caches
            # how it parses a statement's placeholders for short statements only, never for the joined text
            bind = cursor.cursor.mogrify
            cursor.execute(
                ";\n".join(
                    bind(sql, params) for sql, params in zip(self.statements, self.params, strict=True)
                )
            )
            results = fetch_results(cursor)
        self.statements, self.params = [], []
        return results


def fetch_results(cursor: Any) -> list[Rows | None]:
    """Every result set of the multi-statement query just executed on ``cursor`` (a DB-API cursor):
    per statement, its rows, or ``None`` for one that returns none."""
    results: list[Rows | None] = []
    while True:
        results.append(cursor.fetchall() if cursor.description is not None else None)
        if not cursor.nextset():
            return results


def values_rows(count: int, row: str) -> str:
    """``row`` (a ``VALUES`` tuple of placeholders) repeated ``count`` times, comma-separated."""
    return ", ".join([row] * count)


@functools.cache
def _insert_shape(model: type[Model], with_pk: bool) -> tuple[list[Any], str, str]:
    meta = model._meta
    fields = [f for f in meta.concrete_fields if with_pk or not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(str(f.column)) for f in fields)
    head = f"INSERT INTO {meta.db_table} ({columns}) VALUES "  # noqa: S608 - our own table and columns
    return fields, head, "(" + ", ".join(["%s"] * len(fields)) + ")"


def insert_statement(model: type[Model], objs: Sequence[Model], *, with_pk: bool) -> tuple[str, list[Any]]:
    """``INSERT`` of model instances as the ORM would write them (fields' own DB conversion; JSON with the
    field's encoder), for a :class:`SqlBatch`. ``with_pk``: the instances carry pre-allocated ids."""
    fields, head, row = _insert_shape(model, with_pk)
    db = connections[DEFAULT_DB_ALIAS]  # not the ``connection`` proxy: a thread-local lookup per use
    params = [f.get_db_prep_save(getattr(obj, f.attname), db) for obj in objs for f in fields]
    return head + ", ".join([row] * len(objs)), params


@functools.cache
def _update_shape(model: type[Model], fields: tuple[str, ...]) -> tuple[list[Any], str]:
    meta = model._meta
    model_fields = [meta.get_field(name) for name in fields]
    sets = ", ".join(f"{connection.ops.quote_name(str(f.column))} = %s" for f in model_fields)  # type: ignore[union-attr]
    return model_fields, f"UPDATE {meta.db_table} SET {sets} WHERE id = %s"  # noqa: S608


def update_statement(obj: Model, fields: Sequence[str]) -> tuple[str, list[Any]]:
    """``UPDATE`` of some fields of one model instance by primary key, for a :class:`SqlBatch`."""
    model_fields, sql = _update_shape(type(obj), tuple(fields))
    db = connections[DEFAULT_DB_ALIAS]
    params = [f.get_db_prep_save(getattr(obj, f.attname), db) for f in model_fields]
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
