"""B-book P&L attribution per asset and day: spread capture, market move, funding, hedge cost and
liquidation income, each equal to a hand computation, summing to the day's total."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone

from risk.client_risk.attribution import bbook_attribution_compute
from risk.client_risk.models import BbookPnlDaily, FillMarkout
from risk.hedge_models import HedgeInstruction
from risk.models import ExposureDaily, ExposureSnapshot, FundingSettlement
from trading.models import Fill, Position

D = Decimal
pytestmark = pytest.mark.django_db


def _fill(
    user: Any, position: Any, side: str, size: str, price: str, at: Any, mid: str | None = None
) -> None:
    fill = Fill.objects.create(
        user=user,
        position=position,
        asset="BTC",
        source="INTERNAL",
        side=side,
        size=D(size),
        price=D(price),
        liquidity="TAKER",
        fee=D(0),
        fee_rate=D(0),
        created_at=at,
    )
    if mid is not None:
        FillMarkout.objects.create(
            fill_id=fill.pk,
            user_id=user.pk,
            asset="BTC",
            source="INTERNAL",
            side=1 if side == "BUY" else -1,
            size=fill.size,
            price=fill.price,
            notional=fill.size * fill.price,
            filled_at=at,
            mid_at_fill=D(mid),
        )


def test_a_days_attribution_by_hand(make_trader: Any, set_quote: Any) -> None:
    now = timezone.now()
    day = now.astimezone(UTC).date()
    start = datetime.combine(day, time.min, tzinfo=UTC)
    if now - start < timedelta(minutes=15):
        pytest.skip("too close to midnight UTC for the fixture's times")
    client = make_trader()
    position = Position.objects.create(
        user=client,
        asset="BTC",
        source="INTERNAL",
        margin_mode="CROSS",
        direction="LONG",
        size=D("1.3"),
        entry_price=D(79000),
        leverage=5,
    )
    _fill(client, position, "BUY", "1", "79000", start - timedelta(hours=3))  # carried into the day
    _fill(client, position, "BUY", "0.5", "80100", now - timedelta(minutes=10), mid="80090")
    _fill(client, position, "SELL", "0.2", "80150", now - timedelta(minutes=5), mid="80160")
    ExposureSnapshot.objects.create(asset="BTC", at=start - timedelta(seconds=30), mark=D(80000))
    set_quote("BTC", "80200")  # the day is running: its end mark is the live one
    FundingSettlement.objects.create(
        position=position,
        user=client,
        funding_time=start + timedelta(minutes=1),
        asset="BTC",
        source="INTERNAL",
        margin_mode="CROSS",
        direction="LONG",
        size=D(1),
        rate=D("0.000156"),
        price=D(80000),
        payment=D("-12.5"),
        collected=D("-12.5"),
    )
    HedgeInstruction.objects.create(
        instruction_id="h1", asset="BTC", status="FILLED", fee=D(3), slippage=D("1.5")
    )
    HedgeInstruction.objects.create(
        instruction_id="h2", asset="BTC", status="SHADOW", fee=D(9), slippage=D(9)
    )
    ExposureDaily.objects.create(day=day, asset="BTC", liquidation_margin=D(20))

    rows = bbook_attribution_compute(day)
    [row] = rows
    # trading = −[1 × (80,200 − 80,000) + 0.5 × (80,200 − 80,100) − 0.2 × (80,200 − 80,150)] = −240
    # spread  = 0.5 × (80,100 − 80,090) − 0.2 × (80,150 − 80,160) = 5 + 2 = 7; market = −240 − 7
    assert (row.spread_capture, row.market_move) == (D(7), D(-247))
    assert (row.funding, row.hedge_cost, row.liquidation_income) == (D("12.5"), D("-4.5"), D(20))
    assert row.total == D(-212)
    bbook_attribution_compute(day)  # recomputed, not added to
    assert BbookPnlDaily.objects.get(day=day, asset="BTC").total == D(-212)
    out = StringIO()
    call_command("bbook_attribution", stdout=out)
    assert "= -212" in out.getvalue()
