"""The simulated Hyperliquid for the HL execution tests: the sandbox process, a ``venue`` fixture
pointing the gateways at it, and helpers reading HL's side (positions, trades) and ours (cash, holds)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests

from sandbox.testing import SandboxProcess
from trading.account import user_balances
from trading.hl_accounts import hl_sandbox_accounts_setup
from trading.marketdata import quote_update
from trading.markets import hl_info, markets_sync
from trading.venues.hl import HLFill, gateway, reset_gateways
from wallets.ledger import AccountRef, account_balance
from wallets.models import AccountKind

D = Decimal


class Venue:
    def __init__(self, url: str) -> None:
        self.url = url

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = requests.post(f"{self.url}/control/{path}", json=body or {}, timeout=10)
        response.raise_for_status()
        return response.json()

    def refresh_quote(self, asset: str) -> tuple[Decimal, Decimal, Decimal]:
        """Our quote cache from HL's own book, as the feed would write it."""
        book = requests.post(f"{self.url}/info", json={"type": "l2Book", "coin": asset}, timeout=10).json()
        bid, ask = D(book["levels"][0][0]["px"]), D(book["levels"][1][0]["px"])
        mid = (bid + ask) / 2
        quote_update(asset, mark=mid, oracle=mid, mid=mid, bid=bid, ask=ask, bid_size=D(1), ask_size=D(1))
        return bid, ask, mid


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with SandboxProcess(seed=21, config={"hyperliquid": {"clock": "real"}}) as sb:
        yield sb.urls["hyperliquid"]


@pytest.fixture
def venue(sandbox_url: str, settings: Any, internalization_on: None) -> Iterator[Venue]:
    settings.HL_API_URL = sandbox_url
    settings.HL_TIMEOUT_SECONDS = 2.0
    reset_gateways()
    markets_sync(info=hl_info(base_url=sandbox_url))
    hl_sandbox_accounts_setup(base_url=sandbox_url)
    v = Venue(sandbox_url)
    v.control("faults/clear")
    yield v
    v.control("faults/clear")
    reset_gateways()


def hl_position(asset: str) -> Decimal:
    gw = gateway("trading")
    assert gw is not None
    for p in gw.user_state()["assetPositions"]:
        if p["position"]["coin"] == asset:
            return D(p["position"]["szi"])
    return D(0)


def hl_trades(oid: int | None) -> list[HLFill]:
    """HL's own trades of one of our orders (the trading account's fill history)."""
    gw = gateway("trading")
    assert gw is not None and oid is not None
    return gw.fills_for_order(oid, 0)


def cash(user: Any) -> Decimal:
    return account_balance(AccountRef.user(user.pk, AccountKind.CASH))


def holds(user: Any) -> Decimal:
    return user_balances(user.pk).get("order_hold", D(0))
