"""The JSON-parameter bulk writes of set-based liquidations store exactly what the ORM stores."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import connection
from django.utils import timezone

from core.events.models import OutboxEvent
from core.sql.json_rows import insert_rows, update_rows
from trading.models import Position

D = Decimal


NOW = timezone.now()


def _position(user: Any, asset: str, **extra: Any) -> Position:
    now = NOW
    fields: dict[str, Any] = {
        "user": user,
        "asset": asset,
        "source": "INTERNAL",
        "margin_mode": "ISOLATED",
        "direction": "LONG",
        "size": D("0.1"),
        "entry_price": D("80000.123456789"),  # more places than the column: rounded as PostgreSQL rounds
        "leverage": 10,
        "isolated_margin": D("800.0000005"),
        "liquidation_price": D("72289.16"),
        "opened_at": now,
        "updated_at": now,
    }
    fields.update(extra)
    return Position(**fields)


def test_insert_and_update_rows_store_what_the_orm_stores(make_trader: Any) -> None:
    user = make_trader()
    by_orm = _position(user, "BTC")
    by_orm.save()
    bulk = _position(user, "ETH")
    with connection.cursor() as cursor:
        sql, params = insert_rows(Position, [bulk], with_pk=False)
        cursor.execute(sql + " RETURNING id", params)
        bulk_id = cursor.fetchone()[0]
    stored = Position.objects.get(pk=bulk_id)
    reference = Position.objects.get(pk=by_orm.pk)
    columns = [
        "size",
        "entry_price",
        "isolated_margin",
        "liquidation_price",
        "status",
        "opened_at",
        "realized_pnl",
    ]
    assert [getattr(stored, c) for c in columns] == [getattr(reference, c) for c in columns]
    assert stored.entry_price == D("80000.12345679") and stored.isolated_margin == D("800.000001")

    # several rows, a NULL, a status, a timestamp: one statement
    stored.liquidation_price, stored.status, stored.closed_at = None, "LIQUIDATED", timezone.now()
    reference.liquidation_price = D("1.5")
    with connection.cursor() as cursor:
        cursor.execute(*update_rows([stored, reference], ["liquidation_price", "status", "closed_at"]))
        assert cursor.rowcount == 2
    stored.refresh_from_db()
    reference.refresh_from_db()
    assert (stored.liquidation_price, stored.status, stored.closed_at is not None) == (
        None,
        "LIQUIDATED",
        True,
    )
    assert (reference.liquidation_price, reference.status, reference.closed_at) == (D("1.5"), "OPEN", None)


def test_json_columns_keep_their_structure_and_rows_their_order(db: Any) -> None:
    events = [
        OutboxEvent(topic="t", aggregate=f"a{i}", payload={"n": i, "s": 'it\'s "quoted"', "l": [1, None]})
        for i in range(3)
    ]
    with connection.cursor() as cursor:
        cursor.execute(*insert_rows(OutboxEvent, events, with_pk=False))
    rows = list(OutboxEvent.objects.filter(topic="t").order_by("id").values_list("aggregate", "payload"))
    assert rows == [(f"a{i}", {"n": i, "s": 'it\'s "quoted"', "l": [1, None]}) for i in range(3)]
