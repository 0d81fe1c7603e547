"""The what-if replay of client groups over a recorded day: the B-book's P&L under proposed groups
against what happened, equal to a hand computation to the cent."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from risk.client_risk.replay import bbook_whatif
from routing.client_groups import client_group_assign
from routing.decision import ClientGroup
from trading.models import Fill, Position

D = Decimal
pytestmark = pytest.mark.django_db


def _fill(user: Any, asset: str, source: str, side: str, size: str, price: str, at: Any) -> None:
    position = Position.objects.create(
        user=user,
        asset=asset,
        source=source,
        margin_mode="CROSS",
        direction="LONG" if side == "BUY" else "SHORT",
        size=D(size),
        entry_price=D(price),
        leverage=5,
        status="CLOSED",
    )
    Fill.objects.create(
        user=user,
        position=position,
        asset=asset,
        source=source,
        side=side,
        size=D(size),
        price=D(price),
        liquidity="TAKER",
        fee=D(0),
        fee_rate=D(0),
        created_at=at,
    )


@pytest.fixture
def day(make_trader: Any) -> dict[str, Any]:
    x, y, z = make_trader(), make_trader(), make_trader()
    t = timezone.now() - timedelta(hours=6)
    _fill(x, "BTC", "INTERNAL", "BUY", "0.5", "80000", t)
    _fill(x, "BTC", "INTERNAL", "SELL", "0.5", "80400", t + timedelta(minutes=3))
    _fill(y, "ETH", "HYPERLIQUID", "BUY", "1", "3000.10", t + timedelta(minutes=5))
    _fill(y, "ETH", "INTERNAL", "SELL", "2", "3010.55", t + timedelta(minutes=9))
    _fill(z, "BTC", "INTERNAL", "BUY", "0.1", "80100", t + timedelta(minutes=11))
    return {"x": x, "y": y, "z": z, "since": t - timedelta(hours=1), "until": t + timedelta(hours=1)}


MARKS = {"BTC": D("80250.33"), "ETH": D("2995.17")}


def test_the_replay_matches_a_hand_computation_to_the_cent(day: dict[str, Any]) -> None:
    x, y, z = day["x"], day["y"], day["z"]
    # by hand, the B-book's side of each INTERNAL fill marked at BTC 80,250.33 / ETH 2,995.17:
    #   x: −(80,250.33 − 80,000) × 0.5 + (80,250.33 − 80,400) × 0.5 = −125.165 − 74.835 = −200.00
    #   y: the sell of 2 @ 3,010.55: −(−1) × 2 × (2,995.17 − 3,010.55) = −30.76
    #   z: −(80,250.33 − 80,100) × 0.1 = −15.033
    # actual = −245.793 → −245.79
    # proposed x → A (none of it), y → B (its HL buy too: −(2,995.17 − 3,000.10) × 1 = +4.93), z HYBRID:
    #   0 + (4.93 − 30.76) − 15.033 = −40.863 → −40.86
    groups = {x.pk: ClientGroup.A, y.pk: ClientGroup.B}
    replay = bbook_whatif(since=day["since"], until=day["until"], proposed=groups, marks=MARKS).rounded()
    assert (replay.actual, replay.proposed) == (D("-245.79"), D("-40.86"))
    assert (replay.clients[x.pk].actual, replay.clients[x.pk].proposed) == (D("-200.00"), D("0.00"))
    assert (replay.clients[y.pk].actual, replay.clients[y.pk].proposed) == (D("-30.76"), D("-25.83"))
    assert replay.clients[z.pk].actual == replay.clients[z.pk].proposed == D("-15.03")
    assert replay.clients[y.pk].fills == 2

    # under today's groups (everyone HYBRID) nothing changes
    same = bbook_whatif(since=day["since"], until=day["until"], marks=MARKS).rounded()
    assert same.proposed == same.actual == D("-245.79")


def test_the_command_replays_the_assigned_groups_with_overrides(day: dict[str, Any], set_quote: Any) -> None:
    x, y = day["x"], day["y"]
    client_group_assign(user_id=x.pk, group=ClientGroup.A, reason="test")
    set_quote("BTC", "80250.33")
    set_quote("ETH", "2995.17")
    out = StringIO()
    call_command("client_groups_replay", "--days", "1", "--group", f"{y.pk}=B", stdout=out)
    first = out.getvalue().splitlines()[0]
    assert "actual -245.79 USDC, proposed -40.86 USDC, difference 204.93 USDC" in first, first
