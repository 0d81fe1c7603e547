"""``simulate_traders`` (make run's and the soak's demo traffic) drives the platform through the
client, against the real server (uvicorn with the stream relay and fan-out): orders of both kinds reach
the database, traders follow their user streams with no gap, the summary line the soak reads is
printed, and a trader who cannot sign in is left out instead of stopping the demo."""

# ruff: noqa: F811 - the trading suite's fixtures are imported by name and requested as arguments
from __future__ import annotations

import io
import signal
from typing import Any

import pytest
from django.core.management import call_command

from core.accounts.models import User
from trading.demo import DEMO_TRADER_PASSWORD, demo_trader_emails
from trading.models import Order
from trading.stream.testing import StreamServer
from trading.tests.conftest import (  # noqa: F401 - the markets, quotes and funding of the trading suite
    fund,
    hl_meta,
    internalization_on,
    markets,
    set_quote,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("internalization_on")]


def test_the_demo_traffic_goes_through_the_client_and_survives_a_trader_who_cannot_sign_in(
    set_quote: Any, fund: Any
) -> None:
    for asset, mark in (("BTC", "80000"), ("ETH", "3000"), ("SOL", "150")):
        set_quote(asset, mark)
    emails = demo_trader_emails()[:3]
    for email in emails[:2]:  # the third is not seeded: it cannot sign in
        fund(User.objects.create_user(email, DEMO_TRADER_PASSWORD), "200000")
    out = io.StringIO()
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        with StreamServer() as server:
            call_command(
                "simulate_traders",
                base_url=f"http://127.0.0.1:{server.port}",
                duration=8,
                rate=6,
                traders=3,
                seed=3,
                stdout=out,
            )
    finally:
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
    line = out.getvalue().strip().splitlines()[-1]
    assert line.startswith("simulate_traders stopped: "), line
    stats = dict(part.split("=") for part in line.split(": ", 1)[1].split(", "))
    assert not [k for k in stats if k.startswith(("error:", "http-error"))], stats
    # without a Hyperliquid account here, a ticket the router sends to HL is refused (NO_ROUTE): counted
    placed = sum(int(v) for k, v in stats.items() if k.startswith("order-"))
    tried = placed + sum(int(v) for k, v in stats.items() if k.startswith("rejected-"))
    assert placed >= 3 and tried >= 10, stats
    # the two traders who signed in follow their streams: events arrived, in sequence
    assert int(stats["stream-events"]) > 0 and stats["stream-gaps"] == "0", stats
    orders = Order.objects.filter(user__email__in=emails)
    assert orders.filter(order_type="MARKET").exists() and orders.filter(order_type="LIMIT").exists()
    # every order outcome counted is an order of the two traders (closes add their own orders)
    assert orders.count() >= placed and not orders.filter(user__email=emails[2]).exists()
    assert all(
        o.client_order_id and o.client_order_id.startswith("xc-") for o in orders.exclude(reduce_only=True)
    )
