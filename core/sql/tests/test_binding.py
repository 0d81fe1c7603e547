"""The batch's own parameter binding gives, character for character, what psycopg's client-side
``mogrify`` gives, for every type the order path sends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.db import connection
from psycopg.types.json import Jsonb

from core.sql.batch import SqlBatch, binder

pytestmark = pytest.mark.django_db

VALUES = [
    1,
    -(2**40),
    Decimal("123.456000"),
    Decimal("-0.000001"),
    "it's 100%",
    "",
    None,
    True,
    datetime(2026, 12, 7, 0, 30, 1, 123456, tzinfo=UTC),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    Jsonb({"a": "b", "n": [1, 2]}),
    "line\nbreak \\ backslash",
    # the fast literals (core.sql.batch.fast_literal) and what they leave to psycopg
    0,
    False,
    2**70,
    Decimal("1E+3"),
    Decimal("0E-8"),
    Decimal("-0"),
    Decimal("NaN"),
    Decimal("-123456789.123456789123"),
    "a'b''c",
    "日本 \x01 ctrl",
    datetime(2026, 12, 7, 0, 30, 1, tzinfo=UTC),
    datetime(2026, 12, 7, 0, 30, 1, 5, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
    datetime(2026, 12, 7, 0, 30, 1, 5),
    1.5,
]


def test_binding_matches_psycopg_mogrify_for_every_type() -> None:
    row = "(" + ", ".join(["%s"] * len(VALUES)) + ")"
    sql = "SELECT '%%' AS pct, " + ", ".join(["%s"] * len(VALUES)) + " FROM (VALUES " + row + ") v"  # noqa: S608 - placeholders only
    params = VALUES + VALUES
    with connection.cursor() as cursor:
        bind = binder(cursor.cursor)
        assert bind(sql, params) == cursor.cursor.mogrify(sql, params)
        # many rows and parameters: the statements psycopg does not cache its parse for
        wide = "INSERT INTO t VALUES " + ", ".join([row] * 20)  # noqa: S608 - placeholders only
        assert bind(wide, VALUES * 20) == cursor.cursor.mogrify(wide, VALUES * 20)
        # a named placeholder is left to psycopg
        assert bind("SELECT %(x)s", {"x": 1}) == cursor.cursor.mogrify("SELECT %(x)s", {"x": 1})  # type: ignore[arg-type]


def test_a_batch_round_trips_the_values() -> None:
    batch = SqlBatch()
    i = batch.add(
        "SELECT %s::numeric, %s::text, %s::timestamptz, %s::uuid, %s::jsonb ->> 'a', %s::int IS NULL",
        [VALUES[2], VALUES[4], VALUES[8], VALUES[9], VALUES[10], None],
    )
    assert batch.run()[i] == [(VALUES[2], VALUES[4], VALUES[8], VALUES[9], "b", True)]


def test_the_fast_literals_are_psycopgs_byte_for_byte() -> None:
    from psycopg.adapt import Transformer

    from core.sql.batch import fast_literal

    with connection.cursor() as cursor:
        tx = Transformer(cursor.cursor.connection)
        fast = 0
        for value in VALUES:
            mine = fast_literal(value)
            if mine:
                fast += 1
                assert mine == ("NULL" if value is None else tx.as_literal(value).decode()), value
        assert fast >= 20  # the common types take the fast path
