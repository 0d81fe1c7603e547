"""Hyperliquid simulator websocket: SDK subscriptions, HL message shapes, drops, pauses, idle timeout."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import websocket
from hyperliquid.info import Info


class Collector:
    def __init__(self) -> None:
        self.msgs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.cond = threading.Condition()

    def cb(self, name: str) -> Callable[[Any], None]:
        def _cb(msg: Any) -> None:
            with self.cond:
                self.msgs[name].append(msg)
                self.cond.notify_all()

        return _cb

    def wait(
        self, name: str, pred: Callable[[dict[str, Any]], bool] = lambda m: True, timeout: float = 8
    ) -> Any:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for m in self.msgs[name]:
                    if pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {name} message matched; got {self.msgs[name][-3:]}")
                self.cond.wait(left)


@pytest.fixture
def ws_info(hl: Any) -> Iterator[Info]:
    info = Info(hl.url, skip_ws=False, meta=hl.meta, spot_meta=hl.spot_meta, timeout=10)
    try:
        yield info
    finally:
        info.disconnect_websocket()


def ws_url(hl: Any) -> str:
    return "ws" + hl.url[len("http") :] + "/ws"


def test_sdk_subscriptions_deliver_market_and_user_streams(hl: Any, ws_info: Info) -> None:
    w = hl.wallet()
    c = Collector()
    user = w.address
    subs: list[tuple[str, Any]] = [
        ("allMids", {"type": "allMids"}),
        ("l2Book", {"type": "l2Book", "coin": "BTC"}),
        ("trades", {"type": "trades", "coin": "BTC"}),
        ("bbo", {"type": "bbo", "coin": "BTC"}),
        ("ctx", {"type": "activeAssetCtx", "coin": "BTC"}),
        ("candle", {"type": "candle", "coin": "BTC", "interval": "1m"}),
        ("userFills", {"type": "userFills", "user": user}),
        ("orderUpdates", {"type": "orderUpdates", "user": user}),
        ("userEvents", {"type": "userEvents", "user": user}),
        ("userFundings", {"type": "userFundings", "user": user}),
    ]
    for name, sub in subs:
        ws_info.subscribe(sub, c.cb(name))
    mids = c.wait("allMids")
    assert mids["channel"] == "allMids" and float(mids["data"]["mids"]["BTC"]) > 0
    book = c.wait("l2Book")["data"]
    assert (
        book["coin"] == "BTC"
        and len(book["levels"][0]) == 20
        and {"px", "sz", "n"} <= set(book["levels"][0][0])
    )
    bbo = c.wait("bbo")["data"]
    assert float(bbo["bbo"][0]["px"]) < float(bbo["bbo"][1]["px"])
    assert "markPx" in c.wait("ctx")["data"]["ctx"]
    assert c.wait("candle")["data"]["i"] == "1m"
    snap = c.wait("userFills")["data"]
    assert snap == {"user": user.lower(), "isSnapshot": True, "fills": []}
    assert c.wait("userFundings")["data"]["isSnapshot"] is True

    resp = hl.exchange(w).market_open("BTC", True, 0.01)
    oid = resp["response"]["data"]["statuses"][0]["filled"]["oid"]
    trades = c.wait("trades", lambda m: any(t["tid"] for t in m["data"] if user.lower() in t["users"]))[
        "data"
    ]
    assert trades[0]["coin"] == "BTC" and trades[0]["side"] == "B"
    fills = c.wait("userFills", lambda m: not m["data"].get("isSnapshot"))["data"]
    assert fills["user"] == user.lower() and fills["fills"][0]["oid"] == oid
    upd = c.wait("orderUpdates", lambda m: m["data"][0]["status"] == "filled")["data"][0]
    assert upd["order"]["oid"] == oid and upd["order"]["coin"] == "BTC"
    ev = c.wait("userEvents", lambda m: "fills" in m["data"])
    assert ev["channel"] == "user" and ev["data"]["fills"][0]["oid"] == oid
    n = len(c.msgs["allMids"])
    c.wait("allMids", lambda m: len(c.msgs["allMids"]) > n)  # mids keep streaming as the price moves


def test_dropped_connection_is_visible_to_the_sdk(hl: Any, ws_info: Info) -> None:
    c = Collector()
    ws_info.subscribe({"type": "allMids"}, c.cb("allMids"))
    c.wait("allMids")
    manager = ws_info.ws_manager
    assert manager is not None and manager.is_alive()
    assert hl.control("ws/drop")["dropped"] >= 1
    manager.join(timeout=5)
    assert not manager.is_alive()  # run_forever returned: the SDK never reconnects by itself


def test_raw_protocol_ping_ack_and_errors(hl: Any) -> None:
    ws = websocket.create_connection(ws_url(hl), timeout=5)
    try:
        assert ws.recv() == "Websocket connection established."
        ws.send(json.dumps({"method": "ping"}))
        assert json.loads(ws.recv()) == {"channel": "pong"}
        sub = {"method": "subscribe", "subscription": {"type": "trades", "coin": "ETH"}}
        ws.send(json.dumps(sub))
        assert json.loads(ws.recv()) == {"channel": "subscriptionResponse", "data": sub}
        ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "l2Book", "coin": "NOPE"}}))
        err = json.loads(ws.recv())
        assert err["channel"] == "error" and "Invalid subscription" in err["data"]
        ws.send(json.dumps({"method": "unsubscribe", "subscription": sub["subscription"]}))
        assert json.loads(ws.recv())["data"]["method"] == "unsubscribe"
        user = hl.get("accounts")[0]["address"]
        ws.send(
            json.dumps(
                {
                    "method": "subscribe",
                    "subscription": {"type": "activeAssetData", "coin": "ETH", "user": user},
                }
            )
        )
        assert json.loads(ws.recv())["channel"] == "subscriptionResponse"
        data = json.loads(ws.recv())["data"]
        assert (
            data["user"] == user
            and data["coin"] == "ETH"
            and data["leverage"] == {"type": "cross", "value": 20}
        )
        assert float(data["availableToTrade"][0]) > 0 and float(data["markPx"]) > 0
    finally:
        ws.close()


def _next_channel(ws: websocket.WebSocket, channel: str, timeout: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ws.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            msg = json.loads(ws.recv())
        except websocket.WebSocketTimeoutException:
            return None
        if msg.get("channel") == channel:
            return msg
    return None


def test_pause_stops_sending_and_resume_restarts(hl: Any) -> None:
    ws = websocket.create_connection(ws_url(hl), timeout=5)
    try:
        ws.recv()
        ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "allMids"}}))
        assert _next_channel(ws, "allMids", 5) is not None
        hl.control("ws/pause")
        time.sleep(0.3)  # let already-queued frames drain
        while _next_channel(ws, "allMids", 0.2) is not None:
            pass
        assert _next_channel(ws, "allMids", 1.5) is None
        hl.control("ws/resume")
        assert _next_channel(ws, "allMids", 5) is not None
    finally:
        hl.control("ws/resume")
        ws.close()


def test_drop_with_reject_window_refuses_reconnects(hl: Any) -> None:
    ws = websocket.create_connection(ws_url(hl), timeout=5)
    ws.recv()
    hl.control("ws/drop", {"reject_s": 1.0})
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError)):
        ws.settimeout(3)
        for _ in range(100):
            ws.recv()
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(ws_url(hl), timeout=5)
    time.sleep(1.1)
    again = websocket.create_connection(ws_url(hl), timeout=5)
    assert again.recv() == "Websocket connection established."
    again.close()


def test_idle_connection_dropped(hl_manual: Any) -> None:
    """The manual sandbox drops connections idle for 2 s (HL: 60 s; the SDK pings every 50 s)."""
    ws = websocket.create_connection(ws_url(hl_manual), timeout=6)
    ws.recv()
    t0 = time.monotonic()
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError)):
        for _ in range(100):
            ws.recv()
    assert 1.5 < time.monotonic() - t0 < 5
