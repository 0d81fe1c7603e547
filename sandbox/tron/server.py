"""The TRON stand-in over HTTP: the full node's ``/wallet/*`` and ``/walletsolidity/*`` API that tronpy
calls, TronGrid's ``/v1/accounts/{address}/transactions/trc20``, and a loopback control API.

Answers have the node's shapes: ``{}`` for an unknown account, block or transaction; broadcast errors
``{"result": false, "code": "SIGERROR", "txid": …, "message": <hex of the text>}``; ``visible: true``
switches addresses to base58check. Control (tests, ``make run``): ``POST /control/mine {"blocks": n}``,
``/control/fund {"address", "amount" (sun), "asset": "TRX"|"USDT"}``, ``/control/deposit {"to",
"amount"}`` (an outside holder's signed USDT transfer), ``/control/time {"advance_seconds"}``,
``/control/interval {"interval"}|{"manual": true}``, ``/control/fail {"count", "target": "broadcast",
"mode": "error"|"timeout"}``, ``GET /control/state``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from eth_utils import keccak

from sandbox import persist
from sandbox.tron import proto
from sandbox.tron.addresses import BadAddress, to_base58, to_raw
from sandbox.tron.chain import SUN, USDT, Block, TronChain, TronError

ADDRESS_FIELDS = ("owner_address", "to_address", "contract_address")
USDT_ABI = [
    {
        "outputs": [{"type": "bool"}],
        "inputs": [{"name": "_to", "type": "address"}, {"name": "_value", "type": "uint256"}],
        "name": "transfer",
        "stateMutability": "Nonpayable",
        "type": "Function",
    },
    {
        "outputs": [{"type": "uint256"}],
        "constant": True,
        "inputs": [{"name": "who", "type": "address"}],
        "name": "balanceOf",
        "stateMutability": "View",
        "type": "Function",
    },
    {
        "outputs": [{"type": "uint8"}],
        "constant": True,
        "name": "decimals",
        "stateMutability": "View",
        "type": "Function",
    },
    {
        "inputs": [
            {"indexed": True, "name": "from", "type": "address"},
            {"indexed": True, "name": "to", "type": "address"},
            {"name": "value", "type": "uint256"},
        ],
        "name": "Transfer",
        "type": "Event",
    },
]


def _visible(raw: dict[str, Any], visible: bool) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    for contract in out["contract"]:
        value = contract["parameter"]["value"]
        for key in ADDRESS_FIELDS:
            if key in value:
                value[key] = to_base58(value[key]) if visible else to_raw(value[key]).hex()
    return out


def _normalize(raw: dict[str, Any]) -> dict[str, Any]:
    """Raw data as stored and hashed: hex addresses (a ``visible`` client sends base58)."""
    return _visible(raw, False)


class TronService:
    def __init__(self, *, seed: int, config: dict[str, Any]):
        self.seed, self.config = seed, config
        self.chain = TronChain(seed=seed, config=config)
        self.failures: list[dict[str, Any]] = []
        self._ticker: asyncio.Task[None] | None = None

    # ---- helpers ----
    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        text = await request.text()
        body: dict[str, Any] = dict(request.query)
        if text.strip():
            with contextlib.suppress(ValueError):
                parsed = json.loads(text)
                if isinstance(parsed, dict):
                    body.update(parsed)
        return body

    @staticmethod
    def _flag(body: dict[str, Any], key: str) -> bool:
        return str(body.get(key, "")).lower() in ("true", "1")

    def _tx_json(self, txid: str, visible: bool) -> dict[str, Any]:
        record = self.chain.txs[txid]
        out: dict[str, Any] = {
            "visible": visible,
            "txID": txid,
            "raw_data": _visible(record.tx["raw_data"], visible),
        }
        if record.block is not None:
            out["ret"] = [{"contractRet": record.contract_ret}]
        out["signature"] = list(record.tx["signature"])
        return out

    def _block_json(self, blk: Block | None, visible: bool) -> dict[str, Any]:
        if blk is None:
            return {}
        witness = to_base58(self.chain.faucet) if visible else self.chain.faucet.hex()
        out: dict[str, Any] = {
            "blockID": blk.id,
            "block_header": {
                "raw_data": {
                    "number": blk.num,
                    "txTrieRoot": "0" * 64,
                    "witness_address": witness,
                    "parentHash": blk.parent,
                    "version": 30,
                    "timestamp": blk.timestamp,
                },
                "witness_signature": "00" * 65,
            },
        }
        if blk.txids:
            out["transactions"] = [self._tx_json(t, visible) for t in blk.txids]
        return out

    # ---- full node ----
    async def getnowblock(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        solid = request.path.startswith("/walletsolidity")
        return web.json_response(
            self._block_json(self.chain.solid if solid else self.chain.head, self._flag(body, "visible"))
        )

    async def getblockbynum(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        return web.json_response(
            self._block_json(self.chain.block(int(body.get("num", -1))), self._flag(body, "visible"))
        )

    async def getblockbyid(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        value = str(body.get("value", ""))
        blk = self.chain.block(int(value[:16], 16)) if len(value) == 64 else None
        return web.json_response(
            self._block_json(blk if blk and blk.id == value else None, self._flag(body, "visible"))
        )

    async def getnodeinfo(self, request: web.Request) -> web.Response:
        head, solid = self.chain.head, self.chain.solid
        return web.json_response(
            {
                "block": f"Num:{head.num},ID:{head.id}",
                "solidityBlock": f"Num:{solid.num},ID:{solid.id}",
                "beginSyncNum": self.chain.blocks[0].num,
                "activeConnectCount": 0,
                "currentConnectCount": 0,
                "configNodeInfo": {"codeVersion": "4.7.6", "p2pVersion": "11111", "versionNum": "18306"},
                "machineInfo": {},
                "cheatWitnessInfoMap": {},
                "peerList": [],
                "passiveConnectCount": 0,
            }
        )

    async def getchainparameters(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "chainParameter": [
                    {"key": "getTransactionFee", "value": self.chain.cfg["bandwidth_price"]},
                    {"key": "getEnergyFee", "value": self.chain.cfg["energy_price"]},
                    {"key": "getCreateAccountFee", "value": 100_000},
                    {
                        "key": "getCreateNewAccountFeeInSystemContract",
                        "value": self.chain.cfg["create_account_fee"],
                    },
                    {"key": "getMaxFeeLimit", "value": 15_000 * SUN},
                ]
            }
        )

    async def getaccount(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            raw = to_raw(str(body.get("address", "")))
        except BadAddress:
            return web.json_response({})
        account = self.chain.accounts.get(raw)
        if account is None:
            return web.json_response({})
        visible = self._flag(body, "visible")
        out: dict[str, Any] = {
            "address": to_base58(raw) if visible else raw.hex(),
            "create_time": account.create_time,
            "account_resource": {},
        }
        if account.balance:
            out["balance"] = account.balance
        if account.free_net_used:
            out["free_net_usage"] = account.free_net_used
            out["latest_consume_free_time"] = self.chain.head.timestamp
        return web.json_response(out)

    async def getaccountnet(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            raw = to_raw(str(body.get("address", "")))
        except BadAddress:
            return web.json_response({})
        if raw not in self.chain.accounts:
            return web.json_response({})
        limit = int(self.chain.cfg["free_net_limit"])
        return web.json_response(
            {
                "freeNetUsed": limit - self.chain.free_net_left(raw),
                "freeNetLimit": limit,
                "TotalNetLimit": 43_200_000_000,
                "TotalNetWeight": 26_000_000_000,
            }
        )

    async def getaccountresource(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            raw = to_raw(str(body.get("address", "")))
        except BadAddress:
            return web.json_response({})
        if raw not in self.chain.accounts:
            return web.json_response({})
        limit = int(self.chain.cfg["free_net_limit"])
        return web.json_response(
            {
                "freeNetUsed": limit - self.chain.free_net_left(raw),
                "freeNetLimit": limit,
                "TotalEnergyLimit": 180_000_000_000,
                "TotalEnergyWeight": 19_000_000_000,
            }
        )

    async def getcontract(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            raw = to_raw(str(body.get("value", "")))
        except BadAddress:
            return web.json_response({})
        if raw != USDT:
            return web.json_response({})
        visible = self._flag(body, "visible")
        return web.json_response(
            {
                "bytecode": "6080",
                "name": "TetherToken",
                "consume_user_resource_percent": 30,
                "origin_address": to_base58(self.chain.faucet) if visible else self.chain.faucet.hex(),
                "contract_address": to_base58(USDT) if visible else USDT.hex(),
                "abi": {"entrys": USDT_ABI},
                "origin_energy_limit": 10_000_000,
                "code_hash": "0" * 64,
            }
        )

    async def getcontractinfo(self, request: web.Request) -> web.Response:
        contract = json.loads((await self.getcontract(request)).text or "{}")
        if not contract:
            return web.json_response({})
        return web.json_response({"smart_contract": contract, "runtimecode": "6080", "contract_state": {}})

    def _call_data(self, body: dict[str, Any]) -> bytes:
        if body.get("data"):
            return bytes.fromhex(str(body["data"]))
        selector = keccak(text=str(body.get("function_selector", "")))[:4]
        return selector + bytes.fromhex(str(body.get("parameter", "")))

    async def triggerconstantcontract(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            if to_raw(str(body.get("contract_address", ""))) != USDT:
                raise TronError("CONTRACT_VALIDATE_ERROR", "No contract or not a smart contract")
            result = self.chain.constant_call(self._call_data(body))
        except (TronError, BadAddress) as exc:
            message = exc.message if isinstance(exc, TronError) else str(exc)
            return web.json_response(
                {"result": {"code": "CONTRACT_VALIDATE_ERROR", "message": message.encode().hex()}}
            )
        return web.json_response(
            {
                "result": {"result": True},
                "energy_used": 536,
                "constant_result": [result.hex()],
                "transaction": {"ret": [{}], "visible": self._flag(body, "visible")},
            }
        )

    async def triggersmartcontract(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            owner = to_raw(str(body.get("owner_address", "")))
            if to_raw(str(body.get("contract_address", ""))) != USDT:
                raise TronError("CONTRACT_VALIDATE_ERROR", "No contract or not a smart contract")
            tx = self.chain.build_trigger(
                owner, self._call_data(body), int(body.get("fee_limit", 0)), int(body.get("call_value", 0))
            )
        except (TronError, BadAddress) as exc:
            message = exc.message if isinstance(exc, TronError) else str(exc)
            return web.json_response(
                {"result": {"code": "CONTRACT_VALIDATE_ERROR", "message": message.encode().hex()}}
            )
        visible = self._flag(body, "visible")
        tx["raw_data"] = _visible(tx["raw_data"], visible)
        tx["visible"] = visible
        return web.json_response({"result": {"result": True}, "transaction": tx})

    async def getsignweight(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            raw = _normalize(body["raw_data"])
            txid = proto.txid(raw)
            owner = to_raw(raw["contract"][0]["parameter"]["value"]["owner_address"])
        except (KeyError, TypeError, ValueError, BadAddress) as exc:
            return web.json_response({"Error": f"class java.lang.IllegalArgumentException : {exc}"})
        if owner not in self.chain.accounts:
            return web.json_response(
                {
                    "result": {"code": "PERMISSION_ERROR", "message": "owner account is not exist"},
                    "transaction": {
                        "result": {"result": True},
                        "txid": txid,
                        "transaction": {"txID": txid, "raw_data": body["raw_data"]},
                    },
                }
            )
        return web.json_response(
            {
                "result": {"code": "NOT_ENOUGH_PERMISSION"},
                "permission": {
                    "type": "Active",
                    "id": 2,
                    "permission_name": "active",
                    "threshold": 1,
                    "operations": "7fff1fc0033e0000000000000000000000000000000000000000000000000000",
                    "keys": [{"address": owner.hex(), "weight": 1}],
                },
                "current_weight": 0,
                "transaction": {
                    "result": {"result": True},
                    "txid": txid,
                    "transaction": {
                        "txID": txid,
                        "raw_data": body["raw_data"],
                        "signature": body.get("signature") or [],
                    },
                },
            }
        )

    async def broadcasttransaction(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        rule = self._take_failure("broadcast")
        if rule and rule.get("mode") == "error":
            return web.json_response({"Error": "injected failure"}, status=int(rule.get("status", 503)))
        try:
            tx = {"raw_data": _normalize(body["raw_data"]), "signature": body.get("signature") or []}
            txid = self.chain.push(tx)
        except TronError as exc:
            txid = body.get("txID", "")
            return web.json_response(
                {"result": False, "code": exc.code, "txid": txid, "message": exc.message.encode().hex()}
            )
        except (KeyError, TypeError, ValueError, BadAddress) as exc:
            return web.json_response({"Error": f"class org.tron.core.exception.BadItemException : {exc}"})
        if rule and rule.get("mode") == "timeout":
            await asyncio.sleep(float(rule.get("hang_seconds", 30)))
        return web.json_response({"result": True, "txid": txid})

    async def gettransactionbyid(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        record = self.chain.txs.get(str(body.get("value", "")))
        if record is None or record.block is None:
            return web.json_response({})
        return web.json_response(self._tx_json(record.tx["txID"], self._flag(body, "visible")))

    async def gettransactionfrompending(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        txid = str(body.get("value", ""))
        if txid not in self.chain.mempool:
            return web.json_response({})
        return web.json_response(self._tx_json(txid, self._flag(body, "visible")))

    async def gettransactioninfobyid(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        record = self.chain.txs.get(str(body.get("value", "")))
        if record is None or record.block is None:
            return web.json_response({})
        if request.path.startswith("/walletsolidity") and record.block > self.chain.solid.num:
            return web.json_response({})
        return web.json_response(record.info)

    # ---- TronGrid ----
    async def trc20_transactions(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            address = to_raw(request.match_info["address"])
            contract = to_raw(q["contract_address"]) if q.get("contract_address") else None
        except BadAddress as exc:
            return web.json_response({"success": False, "error": str(exc), "statusCode": 400}, status=400)
        if contract is not None and contract != USDT:
            return web.json_response(
                {"data": [], "success": True, "meta": {"at": self.chain.now_ms(), "page_size": 0}}
            )
        solid = self.chain.solid.num
        items = []
        for event in self.chain.events:
            if q.get("only_to") == "true" and event["to"] != address:
                continue
            if q.get("only_from") == "true" and event["from"] != address:
                continue
            if address not in (event["to"], event["from"]):
                continue
            if q.get("only_confirmed") == "true" and event["block"] > solid:
                continue
            if q.get("only_unconfirmed") == "true" and event["block"] <= solid:
                continue
            if event["timestamp"] < int(q.get("min_timestamp", 0) or 0):
                continue
            if q.get("max_timestamp") and event["timestamp"] > int(q["max_timestamp"]):
                continue
            items.append(event)
        if q.get("order_by", "block_timestamp,desc") != "block_timestamp,asc":
            items.reverse()
        limit = max(1, min(200, int(q.get("limit", 20) or 20)))
        start = int(q.get("fingerprint", 0) or 0)
        page = items[start : start + limit]
        meta: dict[str, Any] = {"at": self.chain.now_ms(), "page_size": len(page)}
        if start + limit < len(items):
            meta["fingerprint"] = str(start + limit)
            meta["links"] = {
                "next": f"{request.url.with_query({})}?{urlencode({**q, 'fingerprint': start + limit})}"
            }
        data = [
            {
                "transaction_id": e["txid"],
                "token_info": {
                    "symbol": "USDT",
                    "address": to_base58(USDT),
                    "decimals": 6,
                    "name": "Tether USD",
                },
                "block_timestamp": e["timestamp"],
                "from": to_base58(e["from"]),
                "to": to_base58(e["to"]),
                "type": "Transfer",
                "value": str(e["value"]),
            }
            for e in page
        ]
        return web.json_response({"data": data, "success": True, "meta": meta})

    # ---- control ----
    def _take_failure(self, target: str) -> dict[str, Any] | None:
        for rule in self.failures:
            if rule.get("target", "broadcast") == target and rule.get("count", 1) > 0:
                rule["count"] = rule.get("count", 1) - 1
                if rule["count"] <= 0:
                    self.failures.remove(rule)
                return rule
        return None

    async def c_mine(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        made = self.chain.mine(int(body.get("blocks", 1)))
        return web.json_response({"height": self.chain.head.num, "mined": made})

    async def c_fund(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        self.chain.fund(str(body["address"]), int(body["amount"]), str(body.get("asset", "TRX")))
        return web.json_response({"ok": True})

    async def c_deposit(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        try:
            txid = self.chain.faucet_transfer(str(body["to"]), int(body["amount"]))
        except (TronError, BadAddress) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"txid": txid, "from": to_base58(self.chain.faucet)})

    async def c_time(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        self.chain.clock_offset_ms += int(float(body.get("advance_seconds", 0)) * 1000)
        return web.json_response({"now": self.chain.now_ms()})

    async def c_interval(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if self._flag(body, "manual"):
            self.chain.cfg["manual"] = True
        else:
            self.chain.cfg.update(manual=False, block_interval=float(body.get("interval", 3.0)))
        return web.json_response(
            {"manual": self.chain.cfg["manual"], "block_interval": self.chain.cfg["block_interval"]}
        )

    async def c_fail(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if body.get("clear"):
            self.failures.clear()
        else:
            self.failures.append(dict(body))
        return web.json_response({"failures": self.failures})

    async def c_state(self, request: web.Request) -> web.Response:
        chain = self.chain
        return web.json_response(
            {
                "height": chain.head.num,
                "solid": chain.solid.num,
                "mempool": list(chain.mempool),
                "faucet": to_base58(chain.faucet),
                "accounts": {to_base58(a): acc.balance for a, acc in chain.accounts.items()},
                "usdt": {to_base58(a): v for a, v in chain.usdt.items() if v},
                "txs": {t: {"block": r.block, "ret": r.contract_ret} for t, r in chain.txs.items()},
            }
        )

    async def c_reset(self, request: web.Request) -> web.Response:
        self.chain = TronChain(seed=self.seed, config=self.config)
        self.failures.clear()
        return web.json_response({"ok": True})

    # ---- lifecycle ----
    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(
                float(self.chain.cfg["block_interval"]) if not self.chain.cfg["manual"] else 0.2
            )
            if not self.chain.cfg["manual"]:
                self.chain.mine(1)

    async def on_startup(self, app: web.Application) -> None:
        self._ticker = asyncio.create_task(self._tick())

    async def on_cleanup(self, app: web.Application) -> None:
        if self._ticker:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker


def build_app(*, seed: int, config: dict[str, Any]) -> web.Application:
    """The TRON service. ``config`` is the "tron" section of the sandbox config (``{}`` = defaults)."""
    config = dict(config or {})
    state_file = config.pop("state_file", None)
    service = TronService(seed=seed, config=config)
    if state_file:
        saved = persist.load(Path(state_file))
        if isinstance(saved, TronChain):
            service.chain = saved
    app = web.Application()
    if state_file:
        persist.attach(app, Path(state_file), lambda: service.chain)
    app.on_startup.append(service.on_startup)
    app.on_cleanup.append(service.on_cleanup)
    r = app.router
    node = {
        "getnowblock": service.getnowblock,
        "getblockbynum": service.getblockbynum,
        "getblockbyid": service.getblockbyid,
        "getnodeinfo": service.getnodeinfo,
        "getchainparameters": service.getchainparameters,
        "getaccount": service.getaccount,
        "getaccountnet": service.getaccountnet,
        "getaccountresource": service.getaccountresource,
        "getcontract": service.getcontract,
        "getcontractinfo": service.getcontractinfo,
        "triggersmartcontract": service.triggersmartcontract,
        "triggerconstantcontract": service.triggerconstantcontract,
        "getsignweight": service.getsignweight,
        "broadcasttransaction": service.broadcasttransaction,
        "gettransactionbyid": service.gettransactionbyid,
        "gettransactioninfobyid": service.gettransactioninfobyid,
        "gettransactionfrompending": service.gettransactionfrompending,
    }
    for name, handler in node.items():
        r.add_route("*", f"/wallet/{name}", handler)
    for name in (
        "getnowblock",
        "getblockbynum",
        "getaccount",
        "gettransactionbyid",
        "gettransactioninfobyid",
        "getnodeinfo",
    ):
        r.add_route("*", f"/walletsolidity/{name}", node[name])
    r.add_get("/v1/accounts/{address}/transactions/trc20", service.trc20_transactions)
    r.add_post("/control/mine", service.c_mine)
    r.add_post("/control/fund", service.c_fund)
    r.add_post("/control/deposit", service.c_deposit)
    r.add_post("/control/time", service.c_time)
    r.add_post("/control/interval", service.c_interval)
    r.add_post("/control/fail", service.c_fail)
    r.add_post("/control/reset", service.c_reset)
    r.add_get("/control/state", service.c_state)
    return app
