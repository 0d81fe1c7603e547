"""End to end: a resting INTERNAL limit order fills at its limit price within a second or two of HL's
book touching it — sandbox price move → SDK websocket → feed → trigger → fill."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests

from sandbox.testing import SandboxProcess
from trading import margin
from trading.feed.hooks import FEED_HOOKS
from trading.feed.state import FeedOptions
from trading.feed.supervisor import Feed
from trading.limit_trigger import TRIGGER
from trading.marketdata import get_quote
from trading.markets import hl_info, markets_sync
from trading.models import Fill, Order
from trading.orders.input import order_input
from trading.orders.place import order_place
from trading.orders.triggers import TPSL_TRIGGER

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def live_market(internalization_on: None) -> Iterator[str]:
    with SandboxProcess(seed=11, config={"hyperliquid": {"ws_publish_ms": 100}}) as sb:
        url = sb.urls["hyperliquid"]
        markets_sync(info=hl_info(base_url=url))
        feed = Feed(
            FeedOptions(base_url=url, assets=["BTC"], leader_lock=False, push_console=False), hooks=FEED_HOOKS
        )
        thread = threading.Thread(target=feed.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (get_quote("BTC") is None or not get_quote("BTC").ask):
            time.sleep(0.05)
        try:
            yield url
        finally:
            feed.stop()
            thread.join(10)
            TRIGGER.stop()
            TPSL_TRIGGER.stop(wait=5)  # the TP/SL checker the marks started, with its connection


def test_a_resting_internal_limit_fills_when_hl_touches_it(live_market: str, trader: Any) -> None:
    quote = get_quote("BTC")
    assert quote is not None and quote.ask
    limit = margin.round_price(quote.ask * Decimal("0.99"), 5)
    size = margin.floor_size(Decimal(5000) / limit, 5)
    order = order_place(
        user=trader,
        inp=order_input(
            asset="BTC", side="BUY", order_type="LIMIT", size=str(size), limit_price=str(limit), leverage=10
        ),
    )
    assert order.status == "OPEN" and order.route == "INTERNAL"
    requests.post(
        f"{live_market}/control/shock", json={"coin": "BTC", "pct": -3}, timeout=10
    ).raise_for_status()
    moved_at = time.monotonic()
    while time.monotonic() - moved_at < 10:
        order.refresh_from_db()
        if order.status == "FILLED":
            break
        time.sleep(0.05)
    latency = time.monotonic() - moved_at
    assert order.status == "FILLED", f"not filled after {latency:.1f}s (ask now {get_quote('BTC').ask})"
    assert order.avg_fill_price == limit and Fill.objects.get(order=order).liquidity == "MAKER"
    assert latency < 3.0
    assert Order.objects.filter(status="FILLED").count() == 1
