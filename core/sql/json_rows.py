"""Bulk SQL writes: many rows in ONE JSON parameter.

psycopg's client-side binding (which :class:`core.sql.batch.SqlBatch` relies on) parses a statement's
``%s`` placeholders in Python, tens of microseconds each and uncached for long statements: a batch of
fifty liquidations written with one placeholder per value spent more time being bound than PostgreSQL
spent writing it. Here the rows of a statement travel as one JSON array (serialised by the C encoder)
and PostgreSQL unpacks them (``jsonb_array_elements``), casting each column to its own type.

Values are converted as the ORM would write them: decimals as their text (extra places rounded by the
column's type, as on the ORM's assignment), datetimes as ISO 8601 with their offset, JSON fields as
nested JSON.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.db.models import DateField, DateTimeField, DecimalField, Field, JSONField, Model, UUIDField


@functools.cache
def _column_expr(field: Field[Any, Any], index: int) -> str:
    """How row element ``index`` becomes the value of ``field``'s column."""
    if isinstance(field, JSONField):
        return f"NULLIF(r->{index}, 'null'::jsonb)"
    db_type = str(field.db_type(connection))
    if db_type.startswith("varchar"):
        db_type = "text"  # the column's own length check applies on assignment (a cast would truncate)
    return f"(r->>{index})::{db_type}"


def _as_is(value: Any) -> Any:
    return value


def _text(value: Any) -> Any:
    return None if value is None else str(value)


def _iso(value: Any) -> Any:
    return None if value is None else value.isoformat()


def _decimal_converter(field: DecimalField) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal):  # a default such as 0, or a float: as the ORM converts it
            value = field.to_python(value)
        return str(value)  # the column's cast rounds extra places, as on the ORM's assignment

    return convert


@functools.cache
def _converter(field: Field[Any, Any]) -> Callable[[Any], Any]:
    """How a value of ``field`` goes into the JSON rows (chosen once per field)."""
    if isinstance(field, JSONField):
        return _as_is
    if isinstance(field, DecimalField):
        return _decimal_converter(field)
    if isinstance(field, DateTimeField | DateField):
        return _iso
    if isinstance(field, UUIDField):
        return _text
    return _as_is


def json_param(rows: Any) -> str:
    """``rows`` (lists of JSON-able values) as one compact JSON parameter, for ``%s::jsonb``."""
    return json.dumps(rows, cls=DjangoJSONEncoder, separators=(",", ":"))


def _rows_param(fields: Sequence[Field[Any, Any]], objs: Sequence[Any]) -> str:
    columns = [(f.attname, _converter(f)) for f in fields]
    return json_param([[convert(getattr(obj, name)) for name, convert in columns] for obj in objs])


def insert_rows(model: type[Model], objs: Sequence[Any], *, with_pk: bool) -> tuple[str, list[Any]]:
    """ONE ``INSERT … SELECT`` of model instances — or of any objects carrying the model's field
    attributes — in the given order. ``with_pk``: they carry pre-allocated ids. Append
    ``ON CONFLICT …`` / ``RETURNING …`` as needed."""
    fields = [f for f in model._meta.concrete_fields if with_pk or not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(str(f.column)) for f in fields)
    values = ", ".join(_column_expr(f, i) for i, f in enumerate(fields))
    sql = (
        f"INSERT INTO {model._meta.db_table} ({columns}) "  # noqa: S608 - our own table and columns
        f"SELECT {values} FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS t(r, n) ORDER BY n"
    )
    return sql, [_rows_param(fields, objs)]


def update_rows(objs: Sequence[Model], names: Sequence[str]) -> tuple[str, list[Any]]:
    """ONE ``UPDATE … FROM`` of some fields of several instances of a model, by primary key."""
    meta = objs[0]._meta
    pk = meta.pk
    assert pk is not None
    fields = [pk, *(meta.get_field(name) for name in names)]
    sets = ", ".join(
        f"{connection.ops.quote_name(str(f.column))} = {_column_expr(f, i)}"  # type: ignore[union-attr, arg-type]
        for i, f in enumerate(fields)
        if i
    )
    sql = (
        f"UPDATE {meta.db_table} AS m SET {sets} FROM jsonb_array_elements(%s::jsonb) AS t(r) "  # noqa: S608
        f"WHERE m.{connection.ops.quote_name(str(pk.column))} = {_column_expr(pk, 0)}"
    )
    return sql, [_rows_param(fields, objs)]  # type: ignore[arg-type]
