"""aiohttp application of the simulated chains (TRON, ETH, SOL, ARBITRUM). API: ``README.md`` here."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from sandbox import persist
from sandbox.chains.addresses import check_address
from sandbox.chains.world import Chain, ChainError, FailureRule, World

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_MINE = 100_000
DEFAULT_LIMIT = 5_000


def _dumps(data: Any) -> str:
    return json.dumps(data, default=str)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=_dumps)


def _error(code: str, message: str, status: int = 400) -> web.Response:
    return _json({"error": code, "message": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    text = await request.text()
    if not text.strip():
        return {}
    try:
        data = json.loads(text, parse_float=Decimal)
    except ValueError as exc:
        raise ChainError("invalid_json", f"body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ChainError("invalid_request", "body must be a JSON object")
    return data


def _int(value: Any, what: str, default: int | None = None) -> int:
    if value is None or value == "":
        if default is None:
            raise ChainError("invalid_request", f"{what} is required")
        return default
    try:
        if isinstance(value, Decimal) and value != value.to_integral_value():
            raise ValueError
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ChainError("invalid_request", f"{what} must be an integer") from exc


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False


class ChainsService:
    def __init__(self, *, seed: int, config: dict[str, Any]):
        self.world = World(seed=seed, config=config, now=time.time())
        self.producers: dict[str, asyncio.Task[None]] = {}
        self.closing = asyncio.Event()

    # --- block production -----------------------------------------------------------------------

    def schedule(self, chain: Chain) -> None:
        task = self.producers.pop(chain.code, None)
        if task is not None:
            task.cancel()
        if chain.interval is not None:
            self.producers[chain.code] = asyncio.get_running_loop().create_task(self._produce(chain))

    async def _produce(self, chain: Chain) -> None:
        loop = asyncio.get_running_loop()
        interval = chain.interval
        assert interval is not None
        next_at = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            if self.world.chains.get(chain.code) is not chain:  # replaced by a reset
                return
            chain.mine(1, time.time())
            next_at += interval
            if next_at < loop.time():  # fell behind (busy loop): do not burst to catch up
                next_at = loop.time() + interval

    async def on_startup(self, app: web.Application) -> None:
        for chain in self.world.chains.values():
            self.schedule(chain)

    async def on_shutdown(self, app: web.Application) -> None:
        self.closing.set()  # releases handlers hanging on purpose

    async def on_cleanup(self, app: web.Application) -> None:
        for task in self.producers.values():
            task.cancel()
        for task in self.producers.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.producers.clear()

    async def hang(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closing.wait(), seconds)

    # --- middleware -----------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.path.startswith("/control"):
                if not _is_loopback(request.remote):
                    return _error("forbidden", "the control API answers loopback clients only", 403)
            elif request.method == "GET" and "chain" in request.match_info:
                rule = self.world.take_failure("read", self.world.chain(request.match_info["chain"]).code)
                if rule is not None:
                    if rule.mode == "error":
                        return _error("injected_failure", "injected failure", rule.status)
                    await self.hang(rule.hang_seconds)
            return await handler(request)
        except ChainError as exc:
            return _error(exc.code, exc.message, exc.status)

    # --- public chain API -----------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        now = time.time()
        return _json({"chains": [chain.status(now) for chain in self.world.chains.values()]})

    async def status(self, request: web.Request) -> web.Response:
        return _json(self.world.chain(request.match_info["chain"]).status(time.time()))

    async def transfers(self, request: web.Request) -> web.Response:
        chain = self.world.chain(request.match_info["chain"])
        q = request.query
        from_height = _int(q.get("from_height"), "from_height", chain.settings.start_height)
        to_height = min(_int(q.get("to_height"), "to_height", chain.height), chain.height)
        limit = max(1, _int(q.get("limit"), "limit", DEFAULT_LIMIT))
        raw_to = [part for value in q.getall("address", []) for part in value.split(",") if part]
        to = {chain.address(a) for a in raw_to} if raw_to else None
        sender = chain.address(q["from"], "from") if q.get("from") else None
        asset = chain.asset(q["asset"]) if q.get("asset") else None
        items, covered = chain.transfers(
            from_height=from_height, to_height=to_height, to=to, sender=sender, asset=asset, limit=limit
        )
        return _json(
            {
                "chain": chain.code,
                "height": chain.height,
                "from_height": from_height,
                "to_height": covered,
                "transfers": items,
            }
        )

    async def tx(self, request: web.Request) -> web.Response:
        chain = self.world.chain(request.match_info["chain"])
        tx = chain.txs.get(request.match_info["hash"])
        if tx is None:
            return _error("unknown_tx", f"no transaction {request.match_info['hash']} on {chain.code}", 404)
        return _json(chain.tx_view(tx))

    async def block(self, request: web.Request) -> web.Response:
        chain = self.world.chain(request.match_info["chain"])
        block = chain.block_at(_int(request.match_info["height"], "height"))
        if block is None:
            return _error("unknown_block", f"{chain.code} height is {chain.height}", 404)
        return _json(
            {
                "chain": chain.code,
                "height": block.height,
                "hash": block.hash,
                "parent_hash": block.parent_hash,
                "time": block.time,
                "confirmations": chain.height - block.height + 1,
                "txs": block.txs,
            }
        )

    async def balance(self, request: web.Request) -> web.Response:
        chain = self.world.chain(request.match_info["chain"])
        address = chain.address(request.match_info["address"])
        asset = chain.asset(request.query["asset"]) if request.query.get("asset") else None
        return _json(chain.balance_view(address, asset))

    async def validate(self, request: web.Request) -> web.Response:
        chain = self.world.chain(request.match_info["chain"])
        address = request.match_info["address"]
        result = check_address(chain.code, address)
        return _json(
            {
                "chain": chain.code,
                "address": address,
                "valid": result.valid,
                "normalized": result.normalized,
                "reason": result.reason,
            }
        )

    async def broadcast(self, request: web.Request) -> web.Response:
        chain = self.world.chain(request.match_info["chain"])
        rule = self.world.take_failure("broadcast", chain.code)
        if rule is not None and rule.mode == "error":
            return _error(
                "injected_failure", "injected failure; the transaction was not accepted", rule.status
            )
        try:
            tx, duplicate = chain.broadcast(
                await _body(request), doomed=rule is not None and rule.mode == "drop"
            )
            response = _json(
                {
                    "chain": chain.code,
                    "tx_hash": tx.hash,
                    "status": tx.status,
                    "duplicate": duplicate,
                    "block": tx.block,
                    "confirmations": chain.confirmations(tx),
                }
            )
        except ChainError as exc:
            response = _error(exc.code, exc.message, exc.status)
        if rule is not None and rule.mode == "timeout":
            await self.hang(rule.hang_seconds)
        return response

    # --- control API ----------------------------------------------------------------------------

    def _targets(self, name: str) -> list[Chain]:
        if name.lower() == "all":
            return list(self.world.chains.values())
        return [self.world.chain(name)]

    async def c_mine(self, request: web.Request) -> web.Response:
        body = await _body(request)
        count = _int(body.get("blocks"), "blocks", 1)
        if not 1 <= count <= MAX_MINE:
            raise ChainError("invalid_request", f"blocks must be between 1 and {MAX_MINE}")
        result = {}
        now = time.time()
        for chain in self._targets(request.match_info["chain"]):
            result[chain.code] = {"height": chain.height, "included": chain.mine(count, now)}
        return _json(result)

    async def c_deposit(self, request: web.Request) -> web.Response:
        chain = self.world.chain(request.match_info["chain"])
        body = await _body(request)
        legs = body.get("transfers")
        if legs is None:
            legs = [{"to": body.get("to"), "asset": body.get("asset"), "amount": body.get("amount")}]
        if not isinstance(legs, list):
            raise ChainError("invalid_request", "transfers must be a list")
        tx = chain.deposit(legs, body.get("from"))
        return _json(chain.tx_view(tx))

    async def c_fund(self, request: web.Request) -> web.Response:
        chain = self.world.chain(request.match_info["chain"])
        body = await _body(request)
        asset = body.get("asset", chain.spec.native)
        balance = chain.fund(body.get("address"), asset, body.get("amount"))
        address = chain.address(body["address"])
        return _json(
            {"chain": chain.code, "address": address, "asset": asset, "balance": chain.fmt(balance, asset)}
        )

    async def c_interval(self, request: web.Request) -> web.Response:
        body = await _body(request)
        interval: float | None
        if body.get("manual"):
            interval = None
        elif body.get("interval") is None:
            raise ChainError("invalid_request", 'give {"interval": seconds} or {"manual": true}')
        else:
            try:
                interval = float(body["interval"])
            except (TypeError, ValueError) as exc:
                raise ChainError("invalid_request", "interval must be a number of seconds") from exc
            if not 0.01 <= interval <= 3600:
                raise ChainError("invalid_request", "interval must be between 0.01 and 3600 seconds")
        result = {}
        for chain in self._targets(request.match_info["chain"]):
            chain.interval = interval
            self.schedule(chain)
            result[chain.code] = {"manual": interval is None, "block_interval": interval}
        return _json(result)

    async def c_reorg(self, request: web.Request) -> web.Response:
        chain = self.world.chain(request.match_info["chain"])
        body = await _body(request)
        reinclude = body.get("reinclude", False)
        if not isinstance(reinclude, bool) and not (
            isinstance(reinclude, list) and all(isinstance(h, str) for h in reinclude)
        ):
            raise ChainError("invalid_request", "reinclude must be true, false or a list of tx hashes")
        replace = body.get("replace", True)
        if not isinstance(replace, bool):
            raise ChainError("invalid_request", "replace must be a boolean")
        result = chain.reorg(_int(body.get("depth"), "depth", 1), reinclude, replace, time.time())
        return _json({"chain": chain.code, **result})

    async def c_fail(self, request: web.Request) -> web.Response:
        body = await _body(request)
        if body.get("clear"):
            self.world.failures.clear()
            return _json({"failures": []})
        target = body.get("target", "broadcast")
        mode = body.get("mode", "error")
        if target not in ("broadcast", "read"):
            raise ChainError("invalid_request", "target must be 'broadcast' or 'read'")
        allowed = ("error", "timeout", "drop") if target == "broadcast" else ("error", "timeout")
        if mode not in allowed:
            raise ChainError("invalid_request", f"mode must be one of {', '.join(allowed)}")
        chain = self.world.chain(body["chain"]).code if body.get("chain") else None
        try:
            hang = float(body.get("hang_seconds", 30))
        except (TypeError, ValueError) as exc:
            raise ChainError("invalid_request", "hang_seconds must be a number") from exc
        rule = FailureRule(
            target=target,
            mode=mode,
            remaining=_int(body.get("count"), "count", 1),
            chain=chain,
            status=_int(body.get("status"), "status", 503),
            hang_seconds=hang,
        )
        if rule.remaining > 0:
            self.world.failures.append(rule)
        return _json({"failures": [r.view() for r in self.world.failures]})

    async def c_state(self, request: web.Request) -> web.Response:
        names = [request.query["chain"]] if request.query.get("chain") else ["all"]
        chains = {c.code: c.dump() for name in names for c in self._targets(name)}
        return _json(
            {"seed": self.world.seed, "chains": chains, "failures": [r.view() for r in self.world.failures]}
        )

    async def c_reset(self, request: web.Request) -> web.Response:
        self.world.reset(time.time())
        for chain in self.world.chains.values():
            self.schedule(chain)
        return _json({"reset": True, "heights": {c.code: c.height for c in self.world.chains.values()}})


def build_app(*, seed: int, config: dict[str, Any]) -> web.Application:
    """The chains service. ``config`` is the "chains" section of the sandbox config (``{}`` = defaults)."""
    config = dict(config or {})
    state_file = config.pop("state_file", None)
    service = ChainsService(seed=seed, config=config)
    if state_file:
        saved = persist.load(Path(state_file))
        if isinstance(saved, type(service.world)):
            service.world = saved
    app = web.Application(middlewares=[service.middleware])
    if state_file:
        persist.attach(app, Path(state_file), lambda: service.world)
    app.on_startup.append(service.on_startup)
    app.on_shutdown.append(service.on_shutdown)
    app.on_cleanup.append(service.on_cleanup)
    r = app.router
    r.add_post("/control/reset", service.c_reset)
    r.add_post("/control/fail", service.c_fail)
    r.add_get("/control/state", service.c_state)
    r.add_post("/control/{chain}/mine", service.c_mine)
    r.add_post("/control/{chain}/deposit", service.c_deposit)
    r.add_post("/control/{chain}/fund", service.c_fund)
    r.add_post("/control/{chain}/interval", service.c_interval)
    r.add_post("/control/{chain}/reorg", service.c_reorg)
    r.add_get("/", service.index)
    r.add_get("/{chain}/status", service.status)
    r.add_get("/{chain}/transfers", service.transfers)
    r.add_get("/{chain}/tx/{hash}", service.tx)
    r.add_get("/{chain}/block/{height}", service.block)
    r.add_get("/{chain}/balance/{address}", service.balance)
    r.add_get("/{chain}/validate/{address}", service.validate)
    r.add_post("/{chain}/broadcast", service.broadcast)
    return app
