"""The internal order path's database cost is pinned: a regression to per-row ORM writes shows here.

As Django records it, an internal market order is four queries: BEGIN, one locking read (advisory lock,
positions, the user's ledger accounts, leverage setting, ids), one write of everything (order, events,
decision log, position, fill, ledger posting, outbox event, and the relay's NOTIFY, which PostgreSQL
delivers at the commit), COMMIT. On the wire, with nothing observing queries, it is two round trips:
the BEGIN goes with the read and the COMMIT with the write (``core.sql.transaction``)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.events.models import OutboxEvent
from core.sql.prepared import prepared_names
from core.sql.wire import wire_queries
from routing.models import RoutingDecisionLog
from trading.models import Fill, Order, OrderEvent, Position
from trading.orders.input import order_input
from trading.orders.place import order_place
from wallets.ledger import ledger_invariant_violations

# committed fixtures, as in production: configuration read in a transaction that changed it is never
# cached (core.live_config), and the order's own transaction is the outermost one (no savepoint)
pytestmark = [pytest.mark.usefixtures("internalization_on"), pytest.mark.django_db(transaction=True)]


def _notifies(sql: str) -> bool:
    """The write round trip ends with the relay's NOTIFY: as text, or (once this connection has prepared
    it, e.g. after earlier tests on the same connection) as the EXECUTE of the prepared NOTIFY."""
    if "pg_notify" in sql:
        return True
    names = {name for statement, name in prepared_names().items() if "pg_notify" in statement}
    return any(f"EXECUTE {name}(" in sql for name in names)


def _assert_shape(ctx: CaptureQueriesContext, extra: int = 0) -> None:
    sqls = [q["sql"] for q in ctx.captured_queries]
    assert len(sqls) == 4 + extra, "\n".join(s[:100] for s in sqls)
    assert sqls[0] == "BEGIN" and sqls[-1] == "COMMIT" and _notifies(sqls[-2])


def _market(user: Any, side: str, size: str = "0.01", mode: str = "CROSS") -> Order:
    return order_place(
        user=user,
        inp=order_input(
            asset="BTC", side=side, order_type="MARKET", size=size, leverage=10, margin_mode=mode
        ),
    )


@pytest.mark.parametrize("mode", ["CROSS", "ISOLATED"])
def test_an_internal_market_order_opening_a_position_is_four_round_trips(
    trader: Any, set_quote: Any, mode: str
) -> None:
    set_quote("BTC", "80000")
    _market(trader, "BUY", mode=mode)  # warm: routing/trading config caches, platform accounts exist
    _market(trader, "SELL", mode=mode)  # flat again
    with CaptureQueriesContext(connection) as ctx:
        order = _market(trader, "BUY", mode=mode)
    assert order.status == "FILLED"
    _assert_shape(ctx)
    assert OrderEvent.objects.filter(order=order).count() == 3
    assert RoutingDecisionLog.objects.filter(order_id=order.pk).exists()
    assert Fill.objects.filter(order=order).count() == 1
    assert Position.objects.get(pk=order.position_id).status == "OPEN"
    assert OutboxEvent.objects.filter(topic="trading.fill").count() == 3
    assert ledger_invariant_violations() == []


def test_on_the_wire_an_internal_market_order_is_two_round_trips(trader: Any, set_quote: Any) -> None:
    set_quote("BTC", "80000")
    _market(trader, "BUY")  # warm
    for side in ("BUY", "SELL", "SELL"):  # increase, reduce, close
        with wire_queries(connection.connection) as sent:
            order = _market(trader, side)
        assert order.status == "FILLED"
        assert len(sent) == 2, [s[:80] for s in sent]
        assert sent[0].startswith("BEGIN;")  # the locking read opens the transaction
        assert sent[1].endswith("COMMIT")
        assert Order.objects.filter(pk=order.pk, status="FILLED").exists()  # committed, seen after
    assert Position.objects.filter(user=trader, status="OPEN").count() == 0
    assert ledger_invariant_violations() == []


def test_increasing_and_closing_are_four_round_trips_each(trader: Any, set_quote: Any) -> None:
    set_quote("BTC", "80000")
    _market(trader, "BUY")
    for side, size in (("BUY", "0.01"), ("SELL", "0.02")):
        with CaptureQueriesContext(connection) as ctx:
            order = _market(trader, side, size)
        assert order.status == "FILLED"
        _assert_shape(ctx)
    assert Position.objects.filter(user=trader, status="OPEN").count() == 0
    assert ledger_invariant_violations() == []


def test_a_flip_draws_its_extra_ids_in_one_more_round_trip(trader: Any, set_quote: Any) -> None:
    set_quote("BTC", "80000")
    _market(trader, "BUY")
    with CaptureQueriesContext(connection) as ctx:
        order = _market(trader, "SELL", "0.03")
    assert order.status == "FILLED"
    _assert_shape(ctx, extra=1)
    short = Position.objects.get(user=trader, status="OPEN")
    assert short.direction == "SHORT" and short.size == Decimal("0.02")
    assert ledger_invariant_violations() == []


def test_the_order_path_feeds_the_hot_path_metrics_and_tags_its_log_lines(
    trader: Any, set_quote: Any
) -> None:
    import structlog
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    set_quote("BTC", "80000")
    before = (
        sample("xbit_routing_decisions_total", route="INTERNAL", reason="threshold"),
        sample("xbit_routing_decision_seconds_count"),
        sample("xbit_internal_execution_seconds_count"),
    )
    structlog.contextvars.clear_contextvars()
    order = _market(trader, "BUY")
    assert order.status == "FILLED" and order.route == "INTERNAL"
    after = (
        sample("xbit_routing_decisions_total", route="INTERNAL", reason="threshold"),
        sample("xbit_routing_decision_seconds_count"),
        sample("xbit_internal_execution_seconds_count"),
    )
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1]
    assert structlog.contextvars.get_contextvars().get("order_id") == order.pk
    structlog.contextvars.clear_contextvars()
