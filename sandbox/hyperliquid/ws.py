"""``/ws``: HL's websocket protocol (subscribe/unsubscribe/ping/post) over aiohttp.

Message shapes follow HL so the SDK's ``websocket_manager.ws_msg_to_identifier`` routes them:
``userFills``/``userFundings`` carry ``data.user``; userEvents use channel ``"user"``; trades are a
non-empty list whose first element names the coin.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from sandbox.hyperliquid.candles import INTERVALS
from sandbox.hyperliquid.engine import SPOT_PAIRS, Engine
from sandbox.hyperliquid.numbers import fs, fs_usd, round_sz

log = logging.getLogger(__name__)

Key = tuple[Any, ...]
MAX_QUEUE = 20_000
SPOT_COINS = frozenset(p["name"] for p in SPOT_PAIRS)  # known, never traded: no trades, an empty book
WEB_DATA_EVERY_S = 1.0  # webData2 pushes per subscription at most this often (and after user events)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


class Conn:
    __slots__ = ("closed", "last_recv", "queue", "subs", "task", "ws")

    def __init__(self, ws: web.WebSocketResponse):
        self.ws = ws
        self.queue: asyncio.Queue[tuple[float, str]] = asyncio.Queue()  # (send at, monotonic; text)
        self.subs: dict[Key, dict[str, Any]] = {}
        self.last_recv = time.monotonic()
        self.task: asyncio.Task[None] | None = None
        self.closed = False


class Hub:
    def __init__(self, engine: Engine, idle_timeout_s: float):
        self.engine = engine
        self.idle_timeout_s = idle_timeout_s
        self.conns: set[Conn] = set()
        self.subs: dict[Key, set[Conn]] = {}
        self.paused = False
        self.delay_ms = 0.0  # injected network delay: every outgoing message leaves this much later
        self.reject_until = 0.0
        self.dropped_total = 0
        self.post_handler: Any = None  # set by the server: async (type, payload) -> response
        self.web_data_sent: dict[Key, float] = {}  # webData2 subscription -> last push (monotonic)

    # ---------------------------------------------------------------------------- connections
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if time.monotonic() < self.reject_until:
            return web.Response(status=503, text="websocket temporarily unavailable (sandbox control)")
        ws = web.WebSocketResponse(heartbeat=None, timeout=2.0, compress=False)
        await ws.prepare(request)
        conn = Conn(ws)
        self.conns.add(conn)
        conn.task = asyncio.create_task(self._writer(conn))
        self._send(conn, "Websocket connection established.", force=True)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    conn.last_recv = time.monotonic()
                    await self._on_message(conn, msg.data)
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self._forget(conn)
        return ws

    def _forget(self, conn: Conn) -> None:
        conn.closed = True
        self.conns.discard(conn)
        for key in conn.subs:
            s = self.subs.get(key)
            if s is not None:
                s.discard(conn)
                if not s:
                    del self.subs[key]
        conn.subs.clear()
        if conn.task is not None:
            conn.task.cancel()

    async def _writer(self, conn: Conn) -> None:
        try:
            while True:
                due, text = await conn.queue.get()
                wait = due - time.monotonic()
                if wait > 0:  # a delay on the wire, not a slower server: later messages are not held up more
                    await asyncio.sleep(wait)
                if conn.ws.closed:
                    return
                await conn.ws.send_str(text)
        except (asyncio.CancelledError, ConnectionResetError, RuntimeError):
            return
        except Exception:  # pragma: no cover - defensive
            log.exception("websocket writer failed")

    def _send(self, conn: Conn, text: str, force: bool = False) -> None:
        if conn.closed or (self.paused and not force):
            return
        if conn.queue.qsize() > MAX_QUEUE:
            asyncio.ensure_future(self._close(conn, 1008, b"slow consumer"))
            return
        conn.queue.put_nowait((time.monotonic() + self.delay_ms / 1000, text))

    async def _close(self, conn: Conn, code: int, message: bytes) -> None:
        self._forget(conn)
        with contextlib.suppress(Exception):
            await conn.ws.close(code=code, message=message)

    async def drop_all(self, reject_s: float = 0.0) -> int:
        if reject_s > 0:
            self.reject_until = time.monotonic() + reject_s
        conns = list(self.conns)
        self.dropped_total += len(conns)
        await asyncio.gather(*(self._close(c, 1012, b"sandbox: connection dropped") for c in conns))
        return len(conns)

    async def idle_watchdog(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, self.idle_timeout_s / 4))
            now = time.monotonic()
            for conn in list(self.conns):
                if now - conn.last_recv > self.idle_timeout_s:
                    await self._close(conn, 1000, b"idle timeout")

    # ---------------------------------------------------------------------------- protocol
    async def _on_message(self, conn: Conn, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            self._send(
                conn,
                _dumps(
                    {"channel": "error", "data": f"Error parsing JSON into valid websocket request: {text}"}
                ),
            )
            return
        method = msg.get("method") if isinstance(msg, dict) else None
        if method == "ping":
            self._send(conn, '{"channel":"pong"}', force=True)
        elif method in ("subscribe", "unsubscribe"):
            sub = msg.get("subscription")
            key = self._key(sub)
            if key is None:
                self._send(conn, _dumps({"channel": "error", "data": f"Invalid subscription {_dumps(sub)}"}))
                return
            if method == "subscribe":
                conn.subs[key] = sub
                self.subs.setdefault(key, set()).add(conn)
                self._send(conn, _dumps({"channel": "subscriptionResponse", "data": msg}))
                self.engine.sync()  # the snapshot carries the time it is sent at
                self._initial(conn, key, sub)
            else:
                conn.subs.pop(key, None)
                s = self.subs.get(key)
                if s is not None:
                    s.discard(conn)
                    if not s:
                        del self.subs[key]
                self._send(conn, _dumps({"channel": "subscriptionResponse", "data": msg}))
        elif method == "post" and self.post_handler is not None:
            req_id = msg.get("id")
            request = msg.get("request") or {}
            rtype = request.get("type")
            try:
                payload = await self.post_handler(rtype, request.get("payload"))
                data = {"id": req_id, "response": {"type": rtype, "payload": payload}}
            except Exception as exc:
                data = {"id": req_id, "response": {"type": "error", "payload": str(exc)}}
            self._send(conn, _dumps({"channel": "post", "data": data}))
        else:
            self._send(conn, _dumps({"channel": "error", "data": f"Unknown method: {text}"}))

    def _key(self, sub: Any) -> Key | None:
        if not isinstance(sub, dict):
            return None
        t = sub.get("type")
        coins = self.engine.spec
        if t == "allMids":
            return ("allMids",)
        if t in ("l2Book", "trades", "bbo", "activeAssetCtx"):
            coin = sub.get("coin")
            if coin not in coins and coin not in SPOT_COINS:
                return None
            if t == "l2Book":
                return ("l2Book", coin, sub.get("nSigFigs"))
            return (t, coin)
        if t == "candle":
            if sub.get("coin") not in coins or sub.get("interval") not in INTERVALS:
                return None
            return ("candle", sub["coin"], sub["interval"])
        if t in (
            "userFills",
            "orderUpdates",
            "userEvents",
            "userFundings",
            "userNonFundingLedgerUpdates",
            "webData2",
        ):
            user = sub.get("user")
            if not isinstance(user, str) or not user.startswith("0x"):
                return None
            return (t, user.lower())
        if t == "activeAssetData":
            user = sub.get("user")
            if sub.get("coin") not in coins or not isinstance(user, str):
                return None
            return (t, sub["coin"], user.lower())
        return None

    def _initial(self, conn: Conn, key: Key, sub: dict[str, Any]) -> None:
        e = self.engine
        t = key[0]
        if t in ("l2Book", "bbo", "activeAssetCtx") and key[1] in SPOT_COINS:
            self._send(conn, _dumps(self._spot_snapshot(t, key[1])))
        elif t == "allMids":
            self._send(conn, _dumps({"channel": "allMids", "data": {"mids": e.all_mids()}}))
        elif t == "webData2":
            self._send(conn, _dumps({"channel": "webData2", "data": e.web_data2(key[1])}))
            self.web_data_sent[key] = time.monotonic()
        elif t == "l2Book":
            self._send(conn, _dumps({"channel": "l2Book", "data": e.l2_book(key[1], key[2])}))
        elif t == "bbo":
            self._send(conn, _dumps({"channel": "bbo", "data": e.bbo(key[1])}))
        elif t == "activeAssetCtx":
            self._send(
                conn,
                _dumps({"channel": "activeAssetCtx", "data": {"coin": key[1], "ctx": e.asset_ctx(key[1])}}),
            )
        elif t == "candle":
            c = e.candles.latest(key[1], key[2])
            if c is not None:
                self._send(conn, _dumps({"channel": "candle", "data": c.wire(key[1], key[2])}))
        elif t == "userFills":
            fills = list(e.fills.get(key[1]) or [])[-2000:]
            self._send(
                conn,
                _dumps(
                    {"channel": "userFills", "data": {"user": key[1], "isSnapshot": True, "fills": fills}}
                ),
            )
        elif t == "userFundings":
            recs = [
                {**{k: v for k, v in r["delta"].items() if k != "type"}, "time": r["time"]}
                for r in (e.fundings.get(key[1]) or [])
            ]
            self._send(
                conn,
                _dumps(
                    {
                        "channel": "userFundings",
                        "data": {"user": key[1], "isSnapshot": True, "fundings": recs},
                    }
                ),
            )
        elif t == "userNonFundingLedgerUpdates":
            updates = list(e.ledger_updates.get(key[1]) or [])
            self._send(
                conn,
                _dumps(
                    {
                        "channel": "userNonFundingLedgerUpdates",
                        "data": {"user": key[1], "isSnapshot": True, "nonFundingLedgerUpdates": updates},
                    }
                ),
            )
        elif t == "activeAssetData":
            self._send(conn, _dumps({"channel": "activeAssetData", "data": self._asset_data(key[1], key[2])}))

    def _spot_snapshot(self, t: str, coin: str) -> dict[str, Any]:
        """A spot pair's only message: it never trades here (no book levels, a standing context)."""
        e = self.engine
        if t == "activeAssetCtx":
            ctx = next(c for c in e.spot_ctxs() if c["coin"] == coin)
            return {"channel": "activeSpotAssetCtx", "data": {"coin": coin, "ctx": ctx}}
        if t == "bbo":
            return {"channel": "bbo", "data": {"coin": coin, "time": e.now_ms, "bbo": [None, None]}}
        return {"channel": "l2Book", "data": {"coin": coin, "time": e.now_ms, "levels": [[], []]}}

    def _push_web_data(self, users: set[str] | None = None) -> None:
        """webData2 subscribers: at once for ``users`` (they had account events), else at most every
        ``WEB_DATA_EVERY_S``."""
        now = time.monotonic()
        for key in [k for k in self.subs if k[0] == "webData2"]:
            due = now - self.web_data_sent.get(key, 0.0) >= WEB_DATA_EVERY_S
            if (users is not None and key[1] in users) or (users is None and due):
                self.web_data_sent[key] = now
                self._broadcast(key, {"channel": "webData2", "data": self.engine.web_data2(key[1])})

    def _asset_data(self, coin: str, user: str) -> dict[str, Any]:
        e = self.engine
        acct = e.accounts.get(user)
        spec = e.spec[coin]
        mark = e.mark[coin]
        if acct is None:
            is_cross, lev = True, min(20, spec.max_leverage)
            avail = "0.0"
            max_sz = "0.0"
        else:
            is_cross, lev = acct.lev_setting(coin, spec.max_leverage)
            a = max(e.summary(acct).available, Decimal(0))
            avail = fs_usd(a)
            max_sz = fs(round_sz(a * lev / mark, spec.sz_decimals))
        leverage: dict[str, Any] = {"type": "cross" if is_cross else "isolated", "value": lev}
        return {
            "user": user,
            "coin": coin,
            "leverage": leverage,
            "maxTradeSzs": [max_sz, max_sz],
            "availableToTrade": [avail, avail],
            "markPx": fs(mark),
        }

    # ---------------------------------------------------------------------------- publishing
    def has(self, key: Key) -> bool:
        return key in self.subs

    def _broadcast(self, key: Key, obj: Any) -> None:
        conns = self.subs.get(key)
        if not conns:
            return
        text = _dumps(obj)
        for c in list(conns):
            self._send(c, text)

    def flush_events(self) -> None:
        """Immediate streams: trades and user events produced by the last engine operation."""
        e = self.engine
        if not e.events:
            return
        events = e.events
        e.events = []
        if not self.subs:
            return
        trades: dict[str, list[Any]] = {}
        fills: dict[str, list[Any]] = {}
        updates: dict[str, list[Any]] = {}
        fundings: dict[str, list[Any]] = {}
        ledger: dict[str, list[Any]] = {}
        user_events: list[tuple[str, Any]] = []
        for kind, who, data in events:
            if kind == "trades":
                trades.setdefault(who, []).append(data)
            elif kind == "userFills":
                fills.setdefault(who, []).append(data)
            elif kind == "orderUpdates":
                updates.setdefault(who, []).append(data)
            elif kind == "userFundings":
                fundings.setdefault(who, []).append(data)
            elif kind == "userNonFundingLedgerUpdates":
                ledger.setdefault(who, []).append(data)
            elif kind == "user":
                user_events.append((who, data))
        for coin, lst in trades.items():
            self._broadcast(("trades", coin), {"channel": "trades", "data": lst})
        for user, lst in fills.items():
            self._broadcast(
                ("userFills", user), {"channel": "userFills", "data": {"user": user, "fills": lst}}
            )
            self._broadcast(("userEvents", user), {"channel": "user", "data": {"fills": lst}})
            for key in [k for k in self.subs if k[0] == "activeAssetData" and k[2] == user]:
                self._broadcast(key, {"channel": "activeAssetData", "data": self._asset_data(key[1], user)})
        for user, lst in updates.items():
            self._broadcast(("orderUpdates", user), {"channel": "orderUpdates", "data": lst})
        for user, lst in fundings.items():
            self._broadcast(
                ("userFundings", user), {"channel": "userFundings", "data": {"user": user, "fundings": lst}}
            )
        for user, data in user_events:
            self._broadcast(("userEvents", user), {"channel": "user", "data": data})
        for user, lst in ledger.items():
            self._broadcast(
                ("userNonFundingLedgerUpdates", user),
                {
                    "channel": "userNonFundingLedgerUpdates",
                    "data": {"user": user, "nonFundingLedgerUpdates": lst},
                },
            )
        touched = set(fills) | set(updates) | set(fundings) | set(ledger) | {u for u, _d in user_events}
        if touched:
            self._push_web_data(touched)

    def publish_market(self) -> None:
        """Throttled market streams (allMids, l2Book, bbo, activeAssetCtx, candle) for what changed."""
        e = self.engine
        dirty = e.dirty_coins
        mids = e.dirty_mids
        e.dirty_coins = set()
        e.dirty_mids = False
        if not self.subs:
            return
        if (mids or dirty) and self.has(("allMids",)):
            self._broadcast(("allMids",), {"channel": "allMids", "data": {"mids": e.all_mids()}})
        if not dirty:
            return
        self._push_web_data()
        for key in list(self.subs):
            t = key[0]
            if t not in ("l2Book", "bbo", "activeAssetCtx", "candle") or key[1] not in dirty:
                continue
            coin = key[1]
            if t == "l2Book":
                self._broadcast(key, {"channel": "l2Book", "data": e.l2_book(coin, key[2])})
            elif t == "bbo":
                self._broadcast(key, {"channel": "bbo", "data": e.bbo(coin)})
            elif t == "activeAssetCtx":
                self._broadcast(
                    key, {"channel": "activeAssetCtx", "data": {"coin": coin, "ctx": e.asset_ctx(coin)}}
                )
            else:
                c = e.candles.latest(coin, key[2])
                if c is not None:
                    self._broadcast(key, {"channel": "candle", "data": c.wire(coin, key[2])})
