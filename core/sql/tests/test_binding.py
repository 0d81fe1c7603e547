"""The batch's own parameter binding gives, character for character, what psycopg's client-side
``mogrify`` gives, for every type the order path sends."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models
from psycopg.types.json import Jsonb

from core.sql.batch import SqlBatch, binder

pytestmark = pytest.mark.django_db


class _Choice(models.TextChoices):
    ORDER_HOLD = "ORDER_HOLD", "Order hold"
    FILLED = "FILLED", "Filled"
    ODD = "it's \\ odd", "Odd"


def _django_dumps(obj: Any) -> str:
    return json.dumps(obj, cls=DjangoJSONEncoder)


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
    # JSON fields' values as Django hands them over (its encoder as the dumps function)
    Jsonb({"a": "it's", "n": [1, Decimal("2.50")]}, dumps=_django_dumps),
    Jsonb({"k": "back\\slash \n é"}, dumps=_django_dumps),
    Jsonb([], dumps=lambda obj: b"[]"),
    uuid.UUID(int=0),
    # a model's choices (str subclasses) and text arrays, as the ledger and order rows bind them
    _Choice.ORDER_HOLD,
    _Choice.FILLED,
    _Choice.ODD,
    ["p:fee_revenue::USDC", "u:7:cash:USDC", "order:12/x+y@z-1.5"],
    [],
    ["it's"],
    ["a\\b"],
    ["null"],
    [""],
    ["a b"],
    ['q"x'],
    ["x,y"],
    ["{"],
    [None],
    [1, 2],
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
        assert fast >= 28  # the common types take the fast path


def _models_of_the_order_path() -> list[type]:
    from django.apps import apps

    return [m for m in apps.get_models() if m._meta.app_label in ("trading", "wallets", "events", "routing")]


SAMPLES = [
    None,
    0,
    -7,
    2**40,
    True,
    False,
    "",
    "abc",
    Decimal("1.50"),
    Decimal("-0"),
    Decimal("NaN"),
    Decimal("Infinity"),
    datetime(2026, 12, 7, 0, 30, 1, 5, tzinfo=UTC),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    1.5,
    "12.5",
    {"a": [1, Decimal("2.5")]},
]


def test_the_column_writers_answer_as_the_fields_do() -> None:
    """Per concrete field of every model the order path writes and per sample value: the writer's
    parameter equals the field's own conversion, or both refuse it with the same error."""
    import warnings

    from core.sql.batch import _column_writer

    checked = passed = 0
    for model in _models_of_the_order_path():
        for field in model._meta.concrete_fields:
            write = _column_writer(field)
            for value in SAMPLES:

                def answer(fn: Any, value: Any = value) -> tuple[str, Any]:
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            return "ok", fn(value, connection)
                    except Exception as exc:  # the field's own refusal
                        return "error", type(exc)

                mine, theirs = answer(write), answer(field.get_db_prep_save)
                assert mine[0] == theirs[0], (model, field.name, value, mine, theirs)
                if mine[0] == "ok":
                    if isinstance(theirs[1], Jsonb):  # compared by what they carry
                        mine, theirs = ("ok", (type(mine[1]), mine[1].obj)), ("ok", (Jsonb, theirs[1].obj))
                    assert mine[1] == theirs[1] and type(mine[1]) in (
                        type(theirs[1]),
                        *type(theirs[1]).__mro__,
                    ), (
                        model,
                        field.name,
                        value,
                    )
                    passed += write is not field.get_db_prep_save
                checked += 1
    assert checked > 1000 and passed > 100  # the pass-through is really taken


def test_a_batch_without_query_observers_translates_errors_and_reads_rows() -> None:
    """The plain psycopg cursor (no query log, no execute wrapper): Django's errors, rows per result
    set, and a query after a failed one refused as Django refuses it."""
    from django.db import IntegrityError, transaction
    from django.db.transaction import TransactionManagementError

    from core.sql.batch import has_rows

    assert not connection.queries_logged and not connection.execute_wrappers
    batch = SqlBatch()
    batch.add("CREATE TEMP TABLE t_plain (id int PRIMARY KEY)")
    i = batch.add("INSERT INTO t_plain VALUES (1), (2) RETURNING id")
    j = batch.add("UPDATE t_plain SET id = id + 10")
    assert batch.run() == [None, [(1,), (2,)], None]
    assert (i, j) == (1, 2)

    def run(sql: str) -> list[Any]:
        one = SqlBatch()
        one.add(sql)
        return one.run()

    with pytest.raises(IntegrityError), transaction.atomic():
        run("INSERT INTO t_plain VALUES (11)")
    with transaction.atomic():
        assert run("INSERT INTO t_plain VALUES (13) RETURNING id") == [[(13,)]]
        with pytest.raises(IntegrityError):
            run("INSERT INTO t_plain VALUES (13)")
        connection.needs_rollback = True  # as atomic marks it after the failure above
        with pytest.raises(TransactionManagementError):
            run("SELECT 1")
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert has_rows(cursor) and has_rows(cursor.cursor)
        cursor.execute("SET LOCAL statement_timeout = 0")
        assert not has_rows(cursor) and not has_rows(cursor.cursor)


def test_new_instance_builds_what_the_constructor_builds() -> None:
    """Same attributes, same defaults (a callable default called), the same cached related object, and
    the constructor's own errors for what it refuses."""
    from core.accounts.models import User
    from core.events.models import OutboxEvent
    from core.sql.batch import new_instance
    from trading.models import Order, OrderEvent

    user = User(id=41, email="n@x.test")
    order = Order(id=7, user=user, asset="ETH", side="BUY", size=Decimal("1.5"))
    when = datetime(2026, 12, 7, tzinfo=UTC)
    cases: list[tuple[type, dict[str, Any]]] = [
        (Order, {"id": 7, "user": user, "asset": "ETH", "side": "BUY", "size": Decimal("1.5")}),
        (Order, {"user_id": 41, "asset": "BTC", "position": None}),
        (Order, {"user": user, "user_id": 42}),  # both: the constructor's way (the id given last wins)
        (OrderEvent, {"order": order, "status": "NEW", "detail": {"a": 1}, "created_at": when}),
        (OutboxEvent, {"event_id": uuid.UUID(int=5), "topic": "t", "payload": {}, "created_at": when}),
    ]
    for model, values in cases:
        mine, theirs = new_instance(model, **values), model(**values)
        assert type(mine) is model
        assert mine.__dict__.keys() == theirs.__dict__.keys()
        for key, value in mine.__dict__.items():
            if isinstance(value, datetime) and key not in values:  # a default of "now": a moment apart
                assert abs(value - theirs.__dict__[key]) < timedelta(seconds=1), (model, key)
            elif key != "_state":
                assert value == theirs.__dict__[key], (model, key)
        assert mine._state.adding and mine._state.db == theirs._state.db
        assert mine._state.fields_cache == theirs._state.fields_cache
    # a default that is a callable is called per instance
    a, b = new_instance(Order, user_id=1), new_instance(Order, user_id=1)
    assert a.fee_total == Order(user_id=1).fee_total
    # what the constructor refuses, refused the same way
    for bad in ({"user": order}, {"no_such_field": 1}):
        with pytest.raises((TypeError, ValueError)) as theirs_exc:
            Order(**bad)
        with pytest.raises(theirs_exc.type):
            new_instance(Order, **bad)
    assert a is not b
