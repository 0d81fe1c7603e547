"""The Python client against the real server (Django's live server over HTTP, real PostgreSQL and
Redis): HMAC-signed trading with an API key, JWT login and refresh, typed answers, error codes."""

# ruff: noqa: F811 - the trading suite's fixtures are imported by name and requested as arguments
from __future__ import annotations

import asyncio
import socket
import time
from decimal import Decimal
from typing import Any

import pytest

from conftest import PASSWORD
from core.accounts.api_keys import api_key_create
from trading.models import Order
from trading.tests.conftest import (  # noqa: F401 - the markets, quotes and funded trader of the trading suite
    fund,
    hl_meta,
    internalization_on,
    markets,
    set_quote,
    trader,
)
from xbit_client import AsyncClient, Client, XbitApiError, XbitTransportError
from xbit_client import Order as ClientOrder

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("internalization_on")]
D = Decimal


@pytest.fixture
def signed(live_server: Any, trader: Any, set_quote: Any) -> Client:
    set_quote("BTC", "80000")
    key, secret = api_key_create(user=trader, label="client", permissions=["read", "trade"])
    with Client(live_server.url, api_key=key.key_id, api_secret=secret, max_retries=0) as client:
        yield client  # type: ignore[misc]


def test_an_api_key_signs_places_lists_and_cancels(signed: Client, trader: Any) -> None:
    resting = signed.place_order(
        "BTC", "BUY", "LIMIT", D("0.01"), limit_price=D("70000"), client_order_id="c-1"
    )
    assert isinstance(resting, ClientOrder) and resting.status == "OPEN"
    assert (
        resting.size == D("0.01") and resting.limit_price == D("70000") and isinstance(resting.size, Decimal)
    )
    assert resting.client_order_id == "c-1" and resting.created_at.tzinfo is not None
    # a signed GET with a query (canonical order differs from the sent one)
    page = signed.orders(status=["OPEN"], symbol="BTC")
    assert [o.id for o in page.results] == [resting.id]
    assert signed.order(resting.id).status == "OPEN"
    # the same client_order_id answers the same order: a retried placement cannot place twice
    again = signed.place_order("BTC", "BUY", "LIMIT", "0.01", limit_price="70000", client_order_id="c-1")
    assert again.id == resting.id and Order.objects.filter(user=trader).count() == 1
    cancelled = signed.cancel_order(resting.id)
    assert cancelled.status == "CANCELLED" and Order.objects.get(pk=resting.id).status == "CANCELLED"
    # cancelling again answers the cancelled order (so the client may retry a cancel)
    assert signed.cancel_order(resting.id).status == "CANCELLED"


def test_a_market_order_opens_a_position_the_client_reads_and_closes(signed: Client) -> None:
    order = signed.place_order("BTC", "BUY", "MARKET", "0.01", leverage=10, margin_mode="ISOLATED")
    assert order.status == "FILLED" and order.avg_fill_price is not None and order.avg_fill_price > 0
    (position,) = signed.positions()
    assert position.symbol == "BTC" and position.size == D("0.01") and position.direction == "LONG"
    assert isinstance(position.isolated_margin, Decimal) and position.liquidation_price is not None
    account = signed.account()
    assert account.positions[0].id == position.id and account.equity > 0
    fills = signed.fills(order_id=order.id)
    assert fills.results[0].size == D("0.01") and fills.results[0].price == order.avg_fill_price
    topped = signed.adjust_margin(position.id, "5")
    assert topped.isolated_margin == position.isolated_margin + D(5)
    close = signed.close_position(position.id)
    assert close.reduce_only and close.status == "FILLED"
    assert signed.positions() == []
    assert signed.market("BTC").quote is not None and signed.market("BTC").quote.mark == D("80000")  # type: ignore[union-attr]


def test_the_order_tools_batch_modify_cancel_all_dead_man_tpsl_and_funding(signed: Client) -> None:
    results = signed.place_orders(
        [
            {"symbol": "BTC", "side": "BUY", "type": "LIMIT", "size": D("0.01"), "limit_price": D("70000")},
            {"symbol": "BTC", "side": "BUY", "type": "LIMIT", "size": "0.01", "limit_price": "abc"},
            {"symbol": "BTC", "side": "BUY", "type": "LIMIT", "size": "0.01", "limit_price": "71000"},
        ]
    )
    assert [r.ok for r in results] == [True, False, True] and [r.index for r in results] == [0, 1, 2]
    assert results[1].error is not None and results[1].error.code in ("INVALID_PRICE", "VALIDATION_ERROR")
    first, third = results[0].order, results[2].order
    assert first is not None and third is not None and first.limit_price == D("70000")
    moved = signed.modify_order(first.id, limit_price="69000")
    assert moved.id == first.id and moved.limit_price == D("69000") and moved.status == "OPEN"
    (cancelled,) = signed.cancel_orders([third.id])
    assert cancelled.ok and cancelled.order is not None and cancelled.order.status == "CANCELLED"
    every = signed.cancel_all()
    assert [r.order_id for r in every.results if r.ok] == [first.id] and every.tpsl_cancelled == []
    assert signed.orders(status="OPEN").results == []

    at = int(time.time() * 1000) + 60_000
    scheduled = signed.schedule_cancel(at)
    assert scheduled.time == at and signed.scheduled_cancel().time_iso is not None
    assert signed.schedule_cancel(None).time is None

    signed.place_order("BTC", "BUY", "MARKET", "0.01", leverage=10)
    (position,) = signed.positions()
    tp = signed.add_tpsl(position.id, "TAKE_PROFIT", "90000")
    assert tp.trigger_price == D("90000") and tp.position_id == position.id and tp.trigger_above
    assert [t.id for t in signed.tpsl_list(position_id=position.id).results] == [tp.id]
    assert signed.cancel_tpsl(tp.id).status == "CANCELLED"
    assert signed.funding().results == []  # no funding instant passed yet


def test_refusals_raise_the_stable_code(signed: Client, live_server: Any) -> None:
    cases = [
        ({"type": "LIMIT", "size": "0.01", "limit_price": "abc"}, 400, "INVALID_PRICE"),
        ({"type": "MARKET", "size": "0.0000001"}, 400, "INVALID_SIZE"),
        ({"type": "MARKET", "size": "0.0001"}, 400, "MIN_NOTIONAL"),
        ({"type": "STOP", "size": "0.01"}, 400, "VALIDATION_ERROR"),
    ]
    for fields, status, code in cases:
        with pytest.raises(XbitApiError) as refused:
            signed.place_order("BTC", "BUY", **fields)
        assert (refused.value.status, refused.value.code) == (status, code), fields
        assert refused.value.message
    with pytest.raises(XbitApiError) as missing:
        signed.order(987654321)
    assert (missing.value.status, missing.value.code) == (404, "NOT_FOUND")
    with pytest.raises(XbitApiError) as invalid:
        signed.place_order("BTC", "HOLD", "MARKET", "0.01")
    assert "side" in invalid.value.details["fields"]
    key_id = signed.core.api_key.key_id  # type: ignore[union-attr]
    forged = Client(live_server.url, api_key=key_id, api_secret="not-the-secret")
    with pytest.raises(XbitApiError) as bad:
        forged.account()
    assert (bad.value.status, bad.value.code) == (401, "INVALID_SIGNATURE")
    assert not Order.objects.exists()


def test_jwt_login_refreshes_before_expiry_and_once_on_an_invalid_token(
    live_server: Any, trader: Any
) -> None:
    client = Client(live_server.url, email=trader.email, password=PASSWORD)
    assert client.me().id == trader.pk  # logged in on first use
    tokens = client.core.tokens
    assert tokens is not None and tokens.fresh()
    first_access, first_refresh = tokens.access, tokens.refresh
    tokens.expires_at = 0  # as if the access token were about to expire: rotated before the call
    assert client.account().cash == D("100000")
    assert tokens.refresh != first_refresh and tokens.access != first_access and tokens.fresh()
    # the server refuses the token (e.g. ended session): one refresh, then the call goes through
    second_refresh = tokens.refresh
    tokens.access = first_access[:-4] + "abcd"
    assert client.me().email == trader.email
    assert tokens.refresh != second_refresh
    # the rotated-away refresh token is dead: with no password the client says so with the code
    stale = Client(live_server.url, access_token="x.y.z", refresh_token=first_refresh)
    with pytest.raises(XbitApiError) as refused:
        stale.me()
    assert refused.value.status == 401 and refused.value.code in ("INVALID_TOKEN", "TOKEN_EXPIRED")
    client.close()


def test_the_async_client_places_and_cancels_with_the_same_rules(
    live_server: Any,
    trader: Any,
    set_quote: Any,
) -> None:
    set_quote("BTC", "80000")
    key, secret = api_key_create(user=trader, label="async", permissions=["read", "trade"])

    async def run() -> tuple[ClientOrder, ClientOrder, str]:
        async with AsyncClient(live_server.url, api_key=key.key_id, api_secret=secret) as client:
            placed = await asyncio.gather(
                *[
                    client.place_order("BTC", "SELL", "LIMIT", "0.01", limit_price=str(90000 + i))
                    for i in range(5)
                ]
            )
            cancelled = await client.cancel_order(placed[0].id)
            try:
                await client.place_order("BTC", "SELL", "LIMIT", "0.01", limit_price="-1")
            except XbitApiError as error:
                code = error.code
            return placed[-1], cancelled, code

    last, cancelled, code = asyncio.run(run())
    assert last.limit_price == D("90004") and cancelled.status == "CANCELLED" and code == "INVALID_PRICE"
    assert Order.objects.filter(user=trader, status="OPEN").count() == 4


def test_an_unreachable_server_is_a_transport_error_after_the_retries() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        client = Client(f"http://127.0.0.1:{port}", max_retries=2, backoff_s=0.01)
        with pytest.raises(XbitTransportError):
            client.markets()
