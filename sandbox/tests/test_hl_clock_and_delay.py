"""Hyperliquid simulator clock and delays: real-time timestamps are the wall clock (over HTTP and on the
websocket, also after a restore), the manual clock moves only when advanced, an injected websocket delay
holds back pongs and market data alike, and a shocked price is the new level the walk continues from."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

from sandbox import persist
from sandbox.hyperliquid.config import parse_config
from sandbox.hyperliquid.engine import Engine, wall_ms
from sandbox.hyperliquid.server import ENGINE_KEY, build_app
from sandbox.testing import SandboxProcess


@pytest.fixture(scope="module")
def real_hl() -> Iterator[str]:
    """A real-time sandbox of this module's own: nothing else advances its clock or injects delays."""
    with SandboxProcess(seed=7, config={"hyperliquid": {"ws_publish_ms": 100}}) as sb:
        yield sb.urls["hyperliquid"]


def control(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    resp = requests.post(f"{url}/control/{path}", json=body or {}, timeout=10)
    resp.raise_for_status()
    return resp.json()


def clock_offset_ms(url: str, samples: int = 8) -> tuple[float, float]:
    """NTP-style: HL's l2Book time minus the midpoint of our send and receipt, from the round trip with
    the smallest delay. Returns (offset, that round trip), ms."""
    best: tuple[float, float] | None = None
    with requests.Session() as http:
        for _ in range(samples):
            t0 = time.time()
            hl_time = http.post(f"{url}/info", json={"type": "l2Book", "coin": "BTC"}, timeout=5).json()[
                "time"
            ]
            t1 = time.time()
            rtt = (t1 - t0) * 1000
            if best is None or rtt < best[1]:
                best = (hl_time - (t0 + t1) / 2 * 1000, rtt)
    assert best is not None
    return best


def open_ws(url: str) -> websocket.WebSocket:
    ws = websocket.create_connection("ws" + url[len("http") :] + "/ws", timeout=5)
    assert ws.recv() == "Websocket connection established."
    return ws


def ping_ms(ws: websocket.WebSocket) -> float:
    t0 = time.monotonic()
    ws.send(json.dumps({"method": "ping"}))
    while json.loads(ws.recv()).get("channel") != "pong":
        pass
    return (time.monotonic() - t0) * 1000


def book_lags_ms(ws: websocket.WebSocket, n: int) -> list[float]:
    """Receipt time minus the l2Book message's own time for the next ``n`` books."""
    lags: list[float] = []
    while len(lags) < n:
        msg = json.loads(ws.recv())
        if msg.get("channel") == "l2Book":
            lags.append(time.time() * 1000 - msg["data"]["time"])
    return lags


def test_the_real_time_clock_is_the_wall_clock(real_hl: str) -> None:
    offset, rtt = clock_offset_ms(real_hl)
    print(f"\nHL clock minus ours: {offset:+.1f} ms (± {rtt / 2:.1f} ms)")
    assert abs(offset) <= rtt / 2 + 25


def test_an_engine_started_late_in_a_second_is_not_behind_the_wall_clock() -> None:
    """Started at x.9 s: the clock used to start at x.0 s and stay 900 ms behind for good."""
    while wall_ms() % 1000 < 900:
        time.sleep(0.01)
    engine = Engine(parse_config(7, {}))
    time.sleep(0.05)
    engine.sync()
    assert engine.offset_ms == 0 and abs(engine.now_ms - wall_ms()) < 20
    assert engine.l2_book("BTC")["time"] == engine.now_ms


def test_websocket_books_carry_the_time_they_are_sent_at(real_hl: str) -> None:
    ws = open_ws(real_hl)
    try:
        ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "l2Book", "coin": "ETH"}}))
        lags = book_lags_ms(ws, 4)  # the snapshot, then books published after steps
    finally:
        ws.close()
    print(f"\nl2Book receipt minus its time: {[round(v, 1) for v in lags]} ms")
    assert all(-5 <= lag < 100 for lag in lags), lags


def test_a_websocket_delay_holds_back_pongs_and_market_data(real_hl: str) -> None:
    ws = open_ws(real_hl)
    try:
        ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "l2Book", "coin": "BTC"}}))
        assert ping_ms(ws) < 100
        answer = control(real_hl, "latency", {"ws_ms": 300})
        assert answer["ws_delay_ms"] == 300 and answer["faults"]["latency_ms"] == 0
        assert requests.get(f"{real_hl}/control/state", timeout=5).json()["ws"]["delay_ms"] == 300
        delayed = ping_ms(ws)
        lags = book_lags_ms(ws, 3)
        assert 300 <= delayed < 450, delayed
        assert all(lag >= 295 for lag in lags), lags  # the data is late, its timestamps are not
        t0 = time.perf_counter()
        requests.post(f"{real_hl}/info", json={"type": "allMids"}, timeout=5)
        assert time.perf_counter() - t0 < 0.25  # HTTP is not delayed by a websocket delay
        control(real_hl, "faults/clear")
        ping_ms(ws)  # drains what was sent while delayed
        assert ping_ms(ws) < 100
    finally:
        control(real_hl, "faults/clear")
        ws.close()


def test_a_negative_delay_is_refused(real_hl: str) -> None:
    resp = requests.post(f"{real_hl}/control/latency", json={"ws_ms": -5}, timeout=5)
    assert resp.status_code == 400
    state = requests.get(f"{real_hl}/control/state", timeout=5).json()
    assert state["ws"]["delay_ms"] == 0


def test_the_manual_clock_moves_only_when_advanced(hl_manual: Any) -> None:
    before = hl_manual.get("time")["time"]
    time.sleep(0.3)
    assert hl_manual.get("time")["time"] == before
    assert hl_manual.control("advance", {"seconds": 2})["time"] == before + 2000


def test_a_restored_engine_that_ran_behind_the_wall_clock_catches_up(tmp_path: Path) -> None:
    """Saved by an engine that started its clock up to a second behind (the old whole-second start) and
    with livelier price dynamics than today's defaults: restored on the wall clock, with today's
    dynamics, at the same prices."""
    engine = Engine(parse_config(7, {"assets": {"AVAX": {"volatility": 3.0, "jump_intensity_per_hour": 5}}}))
    engine.offset_ms = -816
    engine.sync()
    avax = engine.prices["AVAX"]
    del avax.anchor  # as saved before mean reversion existed
    price = avax.fair
    path = tmp_path / "hyperliquid.pickle"
    persist.save(path, engine)

    restored = build_app(seed=7, config={"state_file": str(path)})[ENGINE_KEY]
    restored.sync()
    assert restored.offset_ms == 0 and abs(restored.now_ms - wall_ms()) < 50
    defaults = {spec.name: spec for spec in parse_config(7, {}).assets}
    process = restored.prices["AVAX"]
    assert process.spec.volatility == defaults["AVAX"].volatility
    assert process.spec.jump_intensity_per_hour == 0
    assert math.isclose(process.fair, price) and math.isclose(process.anchor, math.log(price))


def test_a_shocked_price_is_the_new_level_the_walk_continues_from() -> None:
    engine = Engine(parse_config(7, {"clock": "manual"}))
    before = engine.prices["SOL"].fair
    engine.shock("SOL", -15)
    shocked = engine.prices["SOL"].fair
    assert math.isclose(shocked, before * 0.85)
    engine.advance(3600)
    after = engine.prices["SOL"].fair
    # an hour of a calm market around the new level, not a drift back towards the old one
    assert abs(after / shocked - 1) < 0.03, (before, shocked, after)
