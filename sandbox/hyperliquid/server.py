"""aiohttp application: HL's ``/info``, ``/exchange`` and ``/ws`` plus the loopback-only ``/control`` API.

``build_app(seed=..., config=...)`` is called by ``python -m sandbox`` with the ``"hyperliquid"``
section of the sandbox config. No Django, no project imports: this is a standalone simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from sandbox import persist
from sandbox.hyperliquid.config import SimConfig, parse_config
from sandbox.hyperliquid.engine import Engine, UnknownInfoType
from sandbox.hyperliquid.numbers import D, parse_decimal
from sandbox.hyperliquid.ws import Hub

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ENGINE_KEY = web.AppKey("engine", Engine)
STATE_KEY = web.AppKey("state", object)
BAD_BODY = "Failed to deserialize the JSON body into the target type"


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(obj, separators=(",", ":")), status=status, content_type="application/json"
    )


class Faults:
    """Injected latency and failures for ``/info`` and ``/exchange`` (set through ``/control``)."""

    def __init__(self, seed: int, hang_s: float):
        self.latency_ms = 0.0
        self.jitter_ms = 0.0
        self.pending: list[dict[str, Any]] = []
        self.rng = random.Random(f"{seed}:faults")
        self.default_hang_s = hang_s
        self.release = asyncio.Event()
        self.injected = 0

    def take(self, path: str) -> dict[str, Any] | None:
        for f in self.pending:
            if f["path"] in ("any", path):
                f["count"] -= 1
                if f["count"] <= 0:
                    self.pending.remove(f)
                self.injected += 1
                return f
        return None

    def clear(self) -> None:
        self.latency_ms = 0.0
        self.jitter_ms = 0.0
        self.pending.clear()

    def view(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "jitter_ms": self.jitter_ms,
            "pending": [dict(f) for f in self.pending],
            "injected_total": self.injected,
        }


def _restore(st: State, path: Path) -> None:
    """Continue from a saved engine (``--state-dir``). In real-time mode the clock jumps to now instead
    of replaying the downtime step by step (HL timestamps must stay close to the wall clock). Prices
    continue where they were; how they move (volatility, jumps, reversion) comes from the current
    config."""
    engine = persist.load(path)
    if not isinstance(engine, Engine):
        return
    if not engine.manual:
        if engine.cfg.start_time_ms is None and engine.offset_ms < 0:
            # saved by an engine that started its clock behind the wall clock: HL's clock never lags
            # (only a configured start time or /control/advance moves it away from the wall, and
            # advance only moves it ahead)
            engine.offset_ms = 0
        now = int(time.time() * 1000) + engine.offset_ms
        aligned = now - now % engine.step_ms
        if aligned > engine.now_ms:
            engine.now_ms = aligned
            engine.next_step_ms = aligned + engine.step_ms
    fresh = {spec.name: spec for spec in st.cfg.assets}
    for coin, process in engine.prices.items():
        process.retune(fresh.get(coin, process.spec))
    st.engine = engine
    st.hub.engine = engine


class State:
    def __init__(self, cfg: SimConfig):
        self.cfg = cfg
        self.engine = Engine(cfg)
        self.hub = Hub(self.engine, cfg.ws_idle_timeout_s)
        self.faults = Faults(cfg.seed, cfg.timeout_hang_s)
        self.tasks: list[asyncio.Task[None]] = []
        self.hub.post_handler = self.ws_post
        self.signer_hints: OrderedDict[Any, str] = OrderedDict()  # peer (host, port) -> last signer

    def hint_for(self, peer: Any) -> str | None:
        return self.signer_hints.get(peer) if peer is not None else None

    def remember_signer(self, peer: Any) -> None:
        signer = self.engine.last_signer
        if peer is None or signer is None:
            return
        self.signer_hints[peer] = signer
        self.signer_hints.move_to_end(peer)
        if len(self.signer_hints) > 4096:
            self.signer_hints.popitem(last=False)

    async def ws_post(self, rtype: str, payload: Any) -> Any:
        e = self.engine
        e.sync()
        if rtype == "info":
            return {"type": payload.get("type"), "data": e.info(payload)}
        if rtype == "action":
            result = e.exchange(payload)
            self.hub.flush_events()
            return result
        raise ValueError(f"unknown post type {rtype}")


# ==================================================================================== HL endpoints
async def info_handler(request: web.Request) -> web.StreamResponse:
    st: State = request.app[STATE_KEY]  # type: ignore[assignment]
    try:
        req = await request.json()
    except ValueError:
        return web.Response(status=422, text=BAD_BODY)
    if not isinstance(req, dict):
        return web.Response(status=422, text=BAD_BODY)
    st.engine.sync()
    try:
        result = st.engine.info(req)
    except UnknownInfoType as exc:
        # as HL answers a type it does not know: the body did not deserialize (unknown variant)
        return web.Response(status=422, text=f"{BAD_BODY}: {exc}")
    except (KeyError, TypeError, ValueError):
        return web.Response(status=422, text=BAD_BODY)
    st.hub.flush_events()
    return _json(result)


async def exchange_handler(request: web.Request) -> web.StreamResponse:
    st: State = request.app[STATE_KEY]  # type: ignore[assignment]
    try:
        payload = await request.json()
    except ValueError:
        return web.Response(status=422, text=BAD_BODY)
    if not isinstance(payload, dict):
        return web.Response(status=422, text=BAD_BODY)
    st.engine.sync()
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    result = st.engine.exchange(payload, st.hint_for(peer))
    st.remember_signer(peer)
    st.hub.flush_events()
    return _json(result)


async def ws_handler(request: web.Request) -> web.StreamResponse:
    st: State = request.app[STATE_KEY]  # type: ignore[assignment]
    return await st.hub.handle(request)


@web.middleware
async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if path not in ("/info", "/exchange"):
        return await handler(request)
    st: State = request.app[STATE_KEY]  # type: ignore[assignment]
    f = st.faults
    if f.latency_ms or f.jitter_ms:
        delay = f.latency_ms + (f.rng.uniform(0, f.jitter_ms) if f.jitter_ms else 0.0)
        await asyncio.sleep(delay / 1000)
    fault = f.take(path.lstrip("/"))
    if fault is None:
        return await handler(request)
    mode = fault["mode"]
    if mode == "5xx":
        if fault.get("apply"):
            await handler(request)
        return web.Response(status=int(fault.get("status") or 502), text="sandbox: injected server error")
    if mode == "err":
        return _json({"status": "err", "response": str(fault.get("message") or "Sandbox: injected failure")})
    # timeout: accept, (apply for /exchange unless apply=false), then hang past the client's timeout
    resp: web.StreamResponse | None = None
    if fault.get("apply", path == "/exchange"):
        resp = await handler(request)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(f.release.wait(), timeout=float(fault.get("hang_s") or f.default_hang_s))
    return resp if resp is not None else web.Response(status=504, text="sandbox: injected timeout")


# ==================================================================================== control API
@web.middleware
async def loopback_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/control"):
        remote = request.remote or ""
        if not (remote.startswith("127.") or remote in ("::1", "localhost")):
            return web.Response(status=403, text="control API is loopback-only")
        try:
            resp = await handler(request)
        except web.HTTPException:
            raise
        except (KeyError, ValueError, TypeError) as exc:
            return _json({"ok": False, "error": f"{type(exc).__name__}: {exc}"}, status=400)
        st: State = request.app[STATE_KEY]  # type: ignore[assignment]
        st.hub.flush_events()
        return resp
    return await handler(request)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    data = await request.json()
    if not isinstance(data, dict):
        raise ValueError("JSON object expected")
    return data


def _st(request: web.Request) -> State:
    st: State = request.app[STATE_KEY]  # type: ignore[assignment]
    st.engine.sync()
    return st


def _coin(st: State, body: dict[str, Any]) -> str:
    coin = body.get("coin")
    if coin not in st.engine.spec:
        raise KeyError(f"unknown coin {coin!r}")
    return str(coin)


def _coins(st: State, body: dict[str, Any]) -> list[str]:
    coins = body.get("coins")
    if coins is None and body.get("coin"):
        coins = [body["coin"]]
    if coins is None:
        return list(st.engine.coins)
    for c in coins:
        if c not in st.engine.spec:
            raise KeyError(f"unknown coin {c!r}")
    return list(coins)


def _prices(st: State) -> dict[str, Any]:
    e = st.engine
    return {
        c: {"oracle": str(e.oracle[c]), "mark": str(e.mark[c]), "mid": e.all_mids().get(c)} for c in e.coins
    }


async def c_state(request: web.Request) -> web.StreamResponse:
    st = _st(request)
    out = st.engine.dump()
    out["faults"] = st.faults.view()
    out["ws"] = {
        "connections": len(st.hub.conns),
        "paused": st.hub.paused,
        "delay_ms": st.hub.delay_ms,
        "dropped_total": st.hub.dropped_total,
        "subscriptions": sorted("|".join(str(x) for x in k) for k in st.hub.subs),
    }
    return _json(out)


async def c_accounts(request: web.Request) -> web.StreamResponse:
    st = _st(request)
    return _json(
        [{"address": a.address, "private_key": a.private_key, "usdc": str(a.usdc)} for a in st.cfg.accounts]
    )


async def c_account(request: web.Request) -> web.StreamResponse:
    st = _st(request)
    address = request.query.get("address", "")
    dump = st.engine.account_dump(address)
    if not dump:
        return _json({"ok": False, "error": f"no account {address}"}, status=404)
    return _json({"address": address.lower(), **dump})


async def c_price(request: web.Request) -> web.StreamResponse:
    st = _st(request)
    body = await _body(request)
    coin = _coin(st, body)
    st.engine.set_price(coin, float(D(body["px"])))
    return _json({"ok": True, "prices": _prices(st)})


async def c_shock(request: web.Request) -> web.StreamResponse:
    st = _st(request)
    body = await _body(request)
    coin = _coin(st, body)
    st.engine.shock(coin, float(body["pct"]))
    return _json({"ok": True, "prices": _prices(st)})


async def c_jump(request: web.Request) -> web.StreamResponse:
    st = _st(request)
    body = await _body(request)
    coin = _coin(st, body)
    pct = st.engine.jump(coin, float(body["pct"]) if body.get("pct") is not None else None)
    return _json({"ok": True, "pct": pct, "prices": _prices(st)})


async def c_prices_pause(request: web.Request) -> web.StreamResponse:
    st = _st(request)
    coins = _coins(st, await _body(request))
    for c in coins:
        st.engine.prices[c].paused = True
    return _json({"ok": True, "paused": coins})


async def c_prices_resume(request: web.Request) -> web.StreamResponse:
    st = _st(request)
    coins = _coins(st, await _body(request))
    for c in coins:
        st.engine.prices[c].paused = False
    return _json({"ok": True, "resumed": coins})


async def c_ws_pause(request: web.Request) -> web.StreamResponse:
    st = _st(request)
    st.hub.paused = True
    return _json({"ok": True, "paused": True})


async def c_ws_resume(request: web.Request) -> web.StreamResponse:
    st = _st(request)
    st.hub.paused = False
    return _json({"ok": True, "paused": False})


async def c_ws_drop(request: web.Request) -> web.StreamResponse:
    st = _st(request)
    body = await _body(request)
    n = await st.hub.drop_all(float(body.get("reject_s") or 0))
    return _json({"ok": True, "dropped": n})


async def c_latency(request: web.Request) -> web.StreamResponse:
    st = _st(request)
    body = await _body(request)
    http_ms, jitter_ms, ws_ms = (float(body.get(k) or 0) for k in ("ms", "jitter_ms", "ws_ms"))
    if min(http_ms, jitter_ms, ws_ms) < 0:
        raise ValueError("delays must be >= 0")
    st.faults.latency_ms, st.faults.jitter_ms = http_ms, jitter_ms
    st.hub.delay_ms = ws_ms  # websocket messages, pongs included, leave this much later
    return _json({"ok": True, "faults": st.faults.view(), "ws_delay_ms": st.hub.delay_ms})


async def c_fail(request: web.Request) -> web.StreamResponse:
    st = _st(request)
    body = await _body(request)
    mode = str(body.get("mode", "5xx"))
    if mode not in ("5xx", "timeout", "err"):
        raise ValueError("mode must be 5xx, timeout or err")
    path = str(body.get("path", "exchange")).lstrip("/")
    if path not in ("exchange", "info", "any"):
        raise ValueError("path must be exchange, info or any")
    fault: dict[str, Any] = {"mode": mode, "path": path, "count": int(body.get("count", 1))}
    for k in ("hang_s", "status", "apply", "message"):
        if k in body:
            fault[k] = body[k]
    if fault["count"] > 0:
        st.faults.pending.append(fault)
    return _json({"ok": True, "faults": st.faults.view()})


async def c_faults_clear(request: web.Request) -> web.StreamResponse:
    st = _st(request)
    st.faults.clear()
    st.hub.delay_ms = 0.0
    st.faults.release.set()
    st.faults.release = asyncio.Event()
    return _json({"ok": True, "faults": st.faults.view()})


def _amount(body: dict[str, Any]) -> Decimal:
    raw = body.get("usdc", body.get("amount"))
    amount = parse_decimal(raw)
    if amount is None:
        raise ValueError("usdc (amount) required")
    return amount


async def c_fund(request: web.Request) -> web.StreamResponse:
    st = _st(request)
    body = await _body(request)
    address = str(body["address"]).lower()
    st.engine.deposit(address, _amount(body))
    return _json({"ok": True, "account": st.engine.account_dump(address)})


async def c_debit(request: web.Request) -> web.StreamResponse:
    st = _st(request)
    body = await _body(request)
    address = str(body["address"]).lower()
    st.engine.fund(address, -_amount(body))
    return _json({"ok": True, "account": st.engine.account_dump(address)})


async def c_position(request: web.Request) -> web.StreamResponse:
    st = _st(request)
    body = await _body(request)
    address = str(body["address"]).lower()
    coin = _coin(st, body)
    szi = parse_decimal(body.get("szi", "0"))
    if szi is None:
        raise ValueError("szi must be a number")
    entry = parse_decimal(body["entryPx"]) if body.get("entryPx") is not None else None
    margin = parse_decimal(body["margin"]) if body.get("margin") is not None else None
    lev = int(body["leverage"]) if body.get("leverage") is not None else None
    iso = bool(body["isolated"]) if body.get("isolated") is not None else None
    st.engine.set_position(address, coin, szi, entry, lev, iso, margin)
    return _json({"ok": True, "account": st.engine.account_dump(address)})


async def c_advance(request: web.Request) -> web.StreamResponse:
    st = _st(request)
    body = await _body(request)
    seconds = float(body.get("seconds", 0))
    if seconds < 0:
        raise ValueError("seconds must be >= 0")
    t0 = time.perf_counter()
    st.engine.advance(seconds)
    st.hub.flush_events()
    st.hub.publish_market()
    return _json({"ok": True, "time": st.engine.now_ms, "elapsed_s": round(time.perf_counter() - t0, 3)})


async def c_reset(request: web.Request) -> web.StreamResponse:
    st: State = request.app[STATE_KEY]  # type: ignore[assignment]
    st.engine.reset()
    st.faults.clear()
    st.hub.delay_ms = 0.0
    st.hub.paused = False
    st.hub.reject_until = 0.0
    return _json({"ok": True, "time": st.engine.now_ms})


async def c_time(request: web.Request) -> web.StreamResponse:
    st = _st(request)
    e = st.engine
    return _json({"time": e.now_ms, "clock": e.cfg.clock, "nextFundingTime": e.next_funding_ms})


# ==================================================================================== lifecycle
async def _ticker(st: State) -> None:
    e = st.engine
    while True:
        delay = (e.next_step_ms - (int(time.time() * 1000) + e.offset_ms)) / 1000
        await asyncio.sleep(max(0.005, delay))
        e.sync()
        st.hub.flush_events()


async def _publisher(st: State) -> None:
    interval = max(0.01, st.cfg.ws_publish_ms / 1000)
    while True:
        await asyncio.sleep(interval)
        try:
            # Stamp what goes out now with the time it goes out: without a sync here the messages
            # carried the time of the last step or request, up to a step (1 s) old.
            st.engine.sync()
            st.hub.flush_events()
            st.hub.publish_market()
        except Exception:  # pragma: no cover - keep publishing whatever happens
            import logging

            logging.getLogger(__name__).exception("publish failed")


async def _on_startup(app: web.Application) -> None:
    st: State = app[STATE_KEY]  # type: ignore[assignment]
    st.faults.release = asyncio.Event()
    if not st.engine.manual:
        st.tasks.append(asyncio.create_task(_ticker(st)))
    st.tasks.append(asyncio.create_task(_publisher(st)))
    st.tasks.append(asyncio.create_task(st.hub.idle_watchdog()))


async def _on_shutdown(app: web.Application) -> None:
    st: State = app[STATE_KEY]  # type: ignore[assignment]
    st.faults.release.set()
    for t in st.tasks:
        t.cancel()
    await st.hub.drop_all()


# (method, path, what it does): the index at ``/`` and ``/control``
CONTROL_API: list[tuple[str, str, str]] = [
    ("POST", "/info", "HL's info endpoint ({type: ...}); unknown types answer 422 as HL does"),
    ("POST", "/exchange", "HL's signed actions (orders, cancels, transfers, agents, ...)"),
    ("GET", "/ws", "HL's websocket (subscribe / unsubscribe / ping / post)"),
    ("GET", "/control/state", "engine state: prices, accounts, agents, liquidations, faults, websocket"),
    ("GET", "/control/accounts", "the funded accounts of the config (address, private key, usdc)"),
    ("GET", "/control/account?address=0x..", "one account's state"),
    ("GET", "/control/time", "the simulated time, clock mode and next funding time"),
    ("POST", "/control/price", "set a coin's price {coin, px}"),
    ("POST", "/control/shock", "move a coin's price by pct {coin, pct}"),
    ("POST", "/control/jump", "a jump {coin, pct?} (random size without pct)"),
    ("POST", "/control/prices/pause", "stop price moves {coins?}"),
    ("POST", "/control/prices/resume", "resume price moves {coins?}"),
    ("POST", "/control/ws/pause", "stop sending websocket messages"),
    ("POST", "/control/ws/resume", "resume sending websocket messages"),
    ("POST", "/control/ws/drop", "drop every websocket connection {reject_s?}"),
    ("POST", "/control/latency", "delays {ms, jitter_ms, ws_ms}"),
    ("POST", "/control/fail", "fail the next requests {mode: 5xx|timeout|err, path, count, ...}"),
    ("POST", "/control/faults/clear", "clear injected faults and delays"),
    ("POST", "/control/fund", "deposit USDC to an address {address, usdc} (a ledger update)"),
    ("POST", "/control/debit", "take USDC from an address {address, usdc}"),
    (
        "POST",
        "/control/position",
        "set a position {address, coin, szi, entryPx?, leverage?, isolated?, margin?}",
    ),
    ("POST", "/control/advance", "advance the clock {seconds} (manual clock: the only way it moves)"),
    ("POST", "/control/reset", "back to the initial state"),
]


async def c_index(request: web.Request) -> web.StreamResponse:
    st: State = request.app[STATE_KEY]  # type: ignore[assignment]
    return _json(
        {
            "simulator": "Hyperliquid (XBIT sandbox)",
            "clock": st.engine.cfg.clock,
            "seed": st.engine.cfg.seed,
            "routes": [{"method": m, "path": p, "does": d} for m, p, d in CONTROL_API],
            "info_types": st.engine.info_types(),
        }
    )


def build_app(*, seed: int, config: dict[str, Any]) -> web.Application:
    config = dict(config or {})
    state_file = config.pop("state_file", None)
    cfg = parse_config(seed, config)
    st = State(cfg)
    if state_file:
        _restore(st, Path(state_file))
    app = web.Application(
        middlewares=[loopback_middleware, fault_middleware], client_max_size=8 * 1024 * 1024
    )
    app[STATE_KEY] = st
    app[ENGINE_KEY] = st.engine
    if state_file:
        persist.attach(app, Path(state_file), lambda: st.engine)
    app.router.add_post("/info", info_handler)
    app.router.add_post("/exchange", exchange_handler)
    app.router.add_get("/ws", ws_handler)
    r = app.router
    r.add_get("/", c_index)
    r.add_get("/control", c_index)
    r.add_get("/control/", c_index)
    r.add_get("/control/state", c_state)
    r.add_get("/control/accounts", c_accounts)
    r.add_get("/control/account", c_account)
    r.add_get("/control/time", c_time)
    r.add_post("/control/price", c_price)
    r.add_post("/control/shock", c_shock)
    r.add_post("/control/jump", c_jump)
    r.add_post("/control/prices/pause", c_prices_pause)
    r.add_post("/control/prices/resume", c_prices_resume)
    r.add_post("/control/ws/pause", c_ws_pause)
    r.add_post("/control/ws/resume", c_ws_resume)
    r.add_post("/control/ws/drop", c_ws_drop)
    r.add_post("/control/latency", c_latency)
    r.add_post("/control/fail", c_fail)
    r.add_post("/control/faults/clear", c_faults_clear)
    r.add_post("/control/fund", c_fund)
    r.add_post("/control/debit", c_debit)
    r.add_post("/control/position", c_position)
    r.add_post("/control/advance", c_advance)
    r.add_post("/control/reset", c_reset)
    app.on_startup.append(_on_startup)
    app.on_shutdown.append(_on_shutdown)
    return app
