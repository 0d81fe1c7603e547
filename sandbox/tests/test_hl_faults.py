"""Hyperliquid simulator fault injection: latency, 5xx, err, timeouts that still apply the order."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from hyperliquid.utils.error import ServerError

GTC: Any = {"limit": {"tif": "Gtc"}}


@pytest.fixture(autouse=True)
def clear_faults(hl_manual: Any) -> Iterator[None]:
    yield
    hl_manual.control("faults/clear")


def test_latency_is_added_to_http(hl_manual: Any) -> None:
    info = hl_manual.info()
    hl_manual.control("latency", {"ms": 250})
    t0 = time.perf_counter()
    info.all_mids()
    assert time.perf_counter() - t0 >= 0.25
    hl_manual.control("latency", {"ms": 0})
    t0 = time.perf_counter()
    info.all_mids()
    assert time.perf_counter() - t0 < 0.25


def test_fail_next_requests_with_5xx(hl_manual: Any) -> None:
    w = hl_manual.wallet()
    ex, info = hl_manual.exchange(w), hl_manual.info()
    hl_manual.control("fail", {"mode": "5xx", "count": 2, "path": "exchange"})
    for _ in range(2):
        with pytest.raises(ServerError):
            ex.market_open("BTC", True, 0.01)
    assert info.user_state(w.address)["assetPositions"] == []  # not applied
    assert ex.market_open("BTC", True, 0.01)["status"] == "ok"
    hl_manual.control("fail", {"mode": "5xx", "count": 1, "path": "info", "status": 503})
    with pytest.raises(ServerError) as exc:
        info.all_mids()
    assert exc.value.status_code == 503


def test_fail_with_status_err(hl_manual: Any) -> None:
    w = hl_manual.wallet()
    ex = hl_manual.exchange(w)
    hl_manual.control("fail", {"mode": "err", "count": 1, "message": "Too many requests"})
    assert ex.market_open("ETH", True, 0.01) == {"status": "err", "response": "Too many requests"}
    assert ex.market_open("ETH", True, 0.01)["status"] == "ok"


def test_timeout_hangs_but_still_applies_the_order(hl_manual: Any) -> None:
    w = hl_manual.wallet()
    ex, info = hl_manual.exchange(w, timeout=0.5), hl_manual.info()
    px = round(float(info.all_mids()["ETH"]) * 0.9, 1)
    hl_manual.control("fail", {"mode": "timeout", "count": 1, "hang_s": 5})
    with pytest.raises(requests.exceptions.Timeout):
        ex.order("ETH", True, 0.1, px, GTC)
    (oo,) = info.open_orders(w.address)  # the exchange accepted it before hanging
    assert float(oo["limitPx"]) == px
