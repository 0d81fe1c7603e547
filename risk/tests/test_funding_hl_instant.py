"""An order that trades on Hyperliquid just before a funding instant, booked by us just after it (the
answer arrives across the instant): HL counts the position at the instant, so must we. The fill is
dated at HL's trade time once HL's trades of the order are reconciled, and the user pays their share
of what HL booked; the funding-mirror reconciliation stays OK."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests

from risk.funding import funding_tick
from risk.models import FundingSettlement
from risk.reconciliation import reconciliation_run
from sandbox.testing import SandboxProcess
from trading import margin
from trading.hl_accounts import hl_sandbox_accounts_setup
from trading.markets import hl_info, markets_sync
from trading.models import Fill, Position
from trading.orders.hl_fills import backfill
from trading.orders.input import order_input
from trading.orders.place import order_place
from trading.tests.hl_venue import Venue
from trading.venues.hl import reset_gateways

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
D = Decimal
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def before_the_hour_url() -> Iterator[str]:
    """HL's clock two seconds before the last whole hour of the wall clock: its next funding instant is
    already in our past, as it is for an order booked a moment after HL's hour."""
    wall = int(time.time() * 1000)
    start = wall - wall % HOUR_MS - 2_000
    config = {"hyperliquid": {"clock": "manual", "start_time_ms": start}}
    with SandboxProcess(seed=43, config=config) as sb:
        yield sb.urls["hyperliquid"]


@pytest.fixture
def venue(before_the_hour_url: str, settings: Any, internalization_on: None) -> Iterator[Venue]:
    settings.HL_API_URL = before_the_hour_url
    settings.HL_TIMEOUT_SECONDS = 5.0
    reset_gateways()
    markets_sync(info=hl_info(base_url=before_the_hour_url))
    hl_sandbox_accounts_setup(base_url=before_the_hour_url)
    yield Venue(before_the_hour_url)
    reset_gateways()


def test_a_fill_traded_before_hls_instant_and_booked_after_it_pays_that_instant(
    venue: Venue, trader: Any, fund: Any
) -> None:
    fund(trader, "100000")
    mid = venue.refresh_quote("BTC")[2]
    clock = requests.get(f"{venue.url}/control/time", timeout=5).json()
    instant = datetime.fromtimestamp(clock["nextFundingTime"] / 1000, tz=UTC)
    assert clock["time"] < clock["nextFundingTime"]
    order = order_place(
        user=trader,
        inp=order_input(
            asset="BTC",
            side="BUY",
            order_type="MARKET",
            size=str(margin.floor_size(D(50_000) / mid, 5)),
            leverage=10,
            margin_mode="CROSS",
        ),
    )
    assert order.status == "FILLED" and order.route == "HYPERLIQUID", (order.route, order.error_message)
    position = Position.objects.get(pk=order.position_id)
    assert position.opened_at > instant  # booked from HL's answer, on our clock: after HL's instant

    backfill(since_ms=clock["time"] - 60_000)  # HL's trades of the order (the user stream does this live)
    fill = Fill.objects.get(order=order)
    position.refresh_from_db()
    assert fill.created_at == datetime.fromtimestamp(clock["time"] / 1000, tz=UTC)  # HL's trade time
    assert position.opened_at == fill.created_at < instant

    venue.control("advance", {"seconds": (clock["nextFundingTime"] - clock["time"]) / 1000})
    funding_tick()
    settled = FundingSettlement.objects.get(position=position, funding_time=instant)
    assert settled.source == "HYPERLIQUID" and settled.payment != 0
    rows = reconciliation_run(dimensions=["funding_mirror"])
    assert {r.subject.split("@")[0]: r.status for r in rows}.get("BTC") == "OK", [
        (r.subject, r.status, r.expected, r.actual) for r in rows
    ]
