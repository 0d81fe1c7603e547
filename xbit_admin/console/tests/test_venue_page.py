"""Issue #21, venue health: HL market-data latency (now, and its sampled history), order round trip and
reject rate of HL-routed orders, and both HL accounts' margin ratio with history — for view_risk only."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from core.accounts.roles import Role

pytestmark = pytest.mark.django_db


def _chart(html: str, chart_id: str) -> dict[str, Any]:
    return json.loads(html.split(f'id="{chart_id}" type="application/json">', 1)[1].split("</script>", 1)[0])


def test_the_venue_page_shows_latency_round_trip_rejects_and_margin_ratios(
    console_as: Any, trader: Any
) -> None:
    from trading.marketdata import latency_clear, latency_update
    from trading.models import HLAccountSnapshot, Order
    from trading.selectors import FEED_NAME
    from xbit_admin.console.venue import venue_sample

    now = timezone.now()
    for i, (status, ms) in enumerate([("FILLED", 120), ("FILLED", 80), ("REJECTED", 0), ("FILLED", 300)]):
        submitted = now - timedelta(minutes=5, seconds=i)
        Order.objects.create(
            user=trader,
            asset="BTC",
            side="BUY",
            order_type="MARKET",
            size=Decimal("0.01"),
            leverage=5,
            margin_mode="CROSS",
            status=status,
            route="HYPERLIQUID",
            hl_submitted_at=submitted,
            created_at=submitted,
            updated_at=submitted + timedelta(milliseconds=ms),
        )
    for name, ratio in (("trading", "4.2"), ("hedge", "2.1")):
        for minutes in (30, 10):
            HLAccountSnapshot.objects.create(
                account=name,
                account_value=Decimal(100_000),
                total_margin_used=Decimal(0),
                maintenance_margin_used=Decimal(1000),
                withdrawable=Decimal(0),
                total_notional=Decimal(0),
                margin_ratio=Decimal(ratio),
                created_at=now - timedelta(minutes=minutes),
            )
    try:
        latency_update(FEED_NAME, round_trips_ms=[240.0] * 5, measured_at=time.time())
        venue_sample()
        html = console_as(Role.RISK_MANAGER).get("/venue/").content.decode()
    finally:
        latency_clear(FEED_NAME)
    assert "240 ms" in html.split('id="venue-latency"', 1)[1].split("</dd>", 1)[0]
    rtt = html.split('id="venue-rtt"', 1)[1].split("</dd>", 1)[0]
    assert "120 / 300 ms" in rtt
    rejects = html.split('id="venue-rejects"', 1)[1].split("</dd>", 1)[0]
    assert "25.00%" in rejects and "(1 of 4)" in rejects
    assert "420%" in html.split('id="venue-account-trading"', 1)[1].split("</section>", 1)[0]
    assert "badge warn" in html.split('id="venue-account-hedge"', 1)[1].split("</section>", 1)[0]
    assert _chart(html, "venue-ratio-hedge")["y"] == [210.0, 210.0]
    assert _chart(html, "venue-latency-data")["y"] == [240.0]
    assert len(_chart(html, "venue-rtt-data")["x"]) >= 1


def test_the_venue_page_is_for_risk_viewers(console_as: Any) -> None:
    assert console_as(Role.SUPPORT).get("/venue/").status_code == 403
    assert console_as(Role.DATA_ANALYST).get("/venue/").status_code == 200
