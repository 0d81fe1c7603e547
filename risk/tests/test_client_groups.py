"""Client groups end to end on the Hyperliquid sandbox: a client trading on a lagging quote (buying just
before a scripted rise) is classified A and a random client B once the configured sample is reached,
each with its reason; in SHADOW the orders still route by size while the decision log records what the
group would have done; LIVE sends the first client's orders to Hyperliquid and keeps the second's
internal. A Risk Manager's override is permission-checked, audited and left alone by the classifier."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from core.accounts.roles import Role
from core.audit.models import AuditEntry
from core.errors import ApplicationError, ErrorCode
from core.events.services import outbox_relay_batch
from risk.client_risk.classify import Rules, classify, client_groups_classify
from risk.client_risk.markouts import markouts_consume, markouts_drain
from risk.client_risk.midhistory import mid_record_many
from routing.client_groups import (
    client_group_config_update,
    client_group_of,
    client_group_override,
    client_routing,
)
from routing.decision import ClientGroup
from routing.models import ClientGroupAssignment, ClientGroupChange, RoutingDecisionLog
from routing.services import routing_config_update
from trading.models import Fill
from trading.orders.input import order_input
from trading.orders.place import order_place
from trading.tests.hl_venue import Venue, sandbox_url, venue  # noqa: F401 - fixtures

D = Decimal
RULES = {"mode": "SHADOW", "horizon_s": 10, "min_fills": 20, "toxic_bp": "3", "benign_bp": "1"}


def _buy_or_sell(user: Any, side: str, size: str = "0.01") -> Any:
    return order_place(
        user=user,
        inp=order_input(
            asset="BTC", side=side, order_type="MARKET", size=size, leverage=10, margin_mode="CROSS"
        ),
    )


SLOT_S = 100.0  # each fill gets its own stretch of mid history (the two clients trade the same asset)
_slots = iter(range(10**6))


def _trade(hl: Venue, user: Any, side: str, move_bp: Decimal, *, from_fill: bool = False) -> None:
    """One internal fill, and the mid history after it: the mid moves ``move_bp`` (in ``side``'s
    favour when positive) from the mid at the fill — or from the fill's own price (``from_fill``: the
    client's edge is net of the spread paid). The fill is placed in a slot of its own in the past."""
    _bid, _ask, mid = hl.refresh_quote("BTC")
    order = _buy_or_sell(user, side)
    assert order.route == "INTERNAL" and order.status == "FILLED", order.error_message
    fill = Fill.objects.get(order=order)
    at = timezone.now() - timedelta(seconds=20_000 - SLOT_S * next(_slots))
    Fill.objects.filter(pk=fill.pk).update(created_at=at)
    t0 = at.timestamp()
    sign = 1 if side == "BUY" else -1
    after = (fill.price if from_fill else mid) * (1 + sign * move_bp / 10_000)
    mid_record_many({"BTC": [(t0 - 0.1, mid), (t0 + 0.5, after), (t0 + 9.0, after), (t0 + 59.0, after)]})


def _measure() -> None:
    outbox_relay_batch()
    while markouts_consume(consumer_name="test", block_ms=1):
        pass
    markouts_drain()


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_a_lagging_quote_trader_goes_to_a_and_a_random_one_to_b_then_live_routes_them(
    venue: Venue,  # noqa: F811 - the fixture
    make_trader: Any,
    fund: Any,
) -> None:
    client_group_config_update(changes=RULES, acting_user=None, reason="test rules")
    edge, rnd = make_trader(), make_trader()
    fund(edge, "100000")
    fund(rnd, "100000")
    rng = random.Random(5)
    for i in range(24):
        _trade(venue, edge, "BUY", D(8), from_fill=True)  # buys just before a scripted 8 bp rise
        _trade(venue, rnd, rng.choice(["BUY", "SELL"]), D(str(round(rng.gauss(0, 2), 2))))
        if i == 9:  # ten fills in: below the sample, nobody moves
            _measure()
            client_groups_classify()
            assert client_group_of(edge.pk)[0] is ClientGroup.HYBRID
    _measure()
    counts = client_groups_classify()
    assert counts["changed"] == 2, [
        (r.user_id, r.group, r.reason) for r in ClientGroupAssignment.objects.all()
    ]
    group, row = client_group_of(edge.pk)
    assert group is ClientGroup.A and row is not None
    assert row.reason.startswith("10 s markout +8.") and "over 24 fills ≥ 3" in row.reason
    group, row = client_group_of(rnd.pk)
    assert group is ClientGroup.B and "over 24 fills ≤ 1" in row.reason
    change = ClientGroupChange.objects.get(user_id=edge.pk)
    assert (change.from_group, change.to_group, change.mode, change.source) == (
        "HYBRID",
        "A",
        "SHADOW",
        "AUTO",
    )

    # SHADOW: still routed by size; the log says the group would have sent it to HL
    venue.refresh_quote("BTC")
    order = _buy_or_sell(edge, "BUY")
    log = RoutingDecisionLog.objects.get(order_id=order.pk)
    assert order.route == "INTERNAL" and log.client_group == "HYBRID"
    assert (log.shadow_group, log.shadow_route) == ("A", "HYPERLIQUID")

    # LIVE: the lagging-quote trader's orders go to Hyperliquid, the random one stays internal
    client_group_config_update(changes={"mode": "LIVE"}, acting_user=None, reason="go live")
    venue.refresh_quote("BTC")
    order = _buy_or_sell(edge, "BUY")
    log = RoutingDecisionLog.objects.get(order_id=order.pk)
    assert order.route == "HYPERLIQUID" and order.status == "FILLED", order.error_message
    assert (log.client_group, log.reason, log.shadow_route) == ("A", "client_group_a", "")
    routing_config_update(
        asset="*", changes={"max_internal_order_notional": "50000"}, acting_user=None, reason="test"
    )
    order = _buy_or_sell(rnd, "BUY", size="0.2")  # 16k: above the 10k threshold, B keeps it internal
    log = RoutingDecisionLog.objects.get(order_id=order.pk)
    assert (order.route, log.client_group, log.reason) == ("INTERNAL", "B", "client_group_b"), (
        order.error_message
    )


def test_the_rule_has_a_minimum_sample_and_hysteresis() -> None:
    rules = Rules(60, 100, D(3), D(0), D(1))
    assert (
        classify(markout_bp=D(9), measured=99, current=ClientGroup.HYBRID, rules=rules)[0]
        is ClientGroup.HYBRID
    )
    group, reason = classify(markout_bp=D("4.1"), measured=312, current=ClientGroup.HYBRID, rules=rules)
    assert (group, reason) == (ClientGroup.A, "60 s markout +4.1 bp over 312 fills ≥ 3 bp")
    # in A, 2.5 bp is still above the exit level (3 − 1): stays; 1.9 leaves to HYBRID
    assert classify(markout_bp=D("2.5"), measured=312, current=ClientGroup.A, rules=rules)[0] is ClientGroup.A
    assert (
        classify(markout_bp=D("1.9"), measured=312, current=ClientGroup.A, rules=rules)[0]
        is ClientGroup.HYBRID
    )
    assert classify(markout_bp=D("0.5"), measured=312, current=ClientGroup.B, rules=rules)[0] is ClientGroup.B
    assert classify(markout_bp=D("-2"), measured=312, current=ClientGroup.A, rules=rules)[0] is ClientGroup.B


@pytest.mark.django_db
def test_a_risk_manager_override_is_audited_pushed_and_kept_by_the_classifier(
    make_staff: Any, make_trader: Any
) -> None:
    client_group_config_update(changes={"mode": "LIVE"}, acting_user=None, reason="test")
    client = make_trader()
    support = make_staff(Role.SUPPORT)
    with pytest.raises(ApplicationError) as refused:
        client_group_override(user_id=client.pk, group="A", acting_user=support, reason="looks toxic")
    assert refused.value.code == ErrorCode.PERMISSION_DENIED
    manager = make_staff(Role.RISK_MANAGER)
    with pytest.raises(ApplicationError) as bad:
        client_group_override(user_id=client.pk, group="C", acting_user=manager, reason="x")
    assert bad.value.code == ErrorCode.VALIDATION_ERROR
    client_group_override(user_id=client.pk, group="A", acting_user=manager, reason="arbitrage desk")
    row = ClientGroupAssignment.objects.get(user_id=client.pk)
    assert (row.group, row.source) == ("A", "MANUAL") and "arbitrage desk" in row.reason
    entry = AuditEntry.objects.get(action="routing.client_group_override")
    assert entry.actor_id == manager.pk and entry.after == {"group": "A", "source": "MANUAL"}
    # every process reads the new group (the cache was dropped on commit)
    assert client_routing(client.pk).group is ClientGroup.A
    change = ClientGroupChange.objects.get(user_id=client.pk)
    assert change.actor_id == manager.pk and change.source == "MANUAL"
