"""The Solana stand-in over HTTP: the JSON-RPC 2.0 methods solana-py and solders call (``POST /``),
answered in the validator's shapes (``{"context": {"slot", "apiVersion"}, "value": …}``; errors
``{"code": -32002, "message": "Transaction simulation failed: …", "data": {"err": …, "logs": …}}``),
per commitment level. Control (tests, ``make run``): ``POST /control/mine {"slots": n}``,
``/control/fund {"address", "lamports"}`` or ``{"address", "mint", "amount"}`` (raw units),
``/control/deposit {"to", "mint", "amount"}`` (an outside holder's signed SPL transfer),
``/control/interval``, ``/control/fail``, ``/control/reset``, ``GET /control/state``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web
from solders.pubkey import Pubkey

from sandbox import persist
from sandbox.solana.chain import COMMITMENTS, USDC_MINT, USDT_MINT, RpcError, SolanaChain, TxRecord
from sandbox.solana.programs import TOKEN, Account
from sandbox.tron.addresses import b58decode, b58encode

API_VERSION = "2.1.21"
MAX_SIGNATURES_LIMIT = 1000


def _pubkey(value: Any) -> str:
    try:
        return str(Pubkey.from_string(str(value)))
    except Exception as exc:
        raise RpcError(-32602, f"Invalid param: Invalid {value!r}") from exc


def _ui_amount(amount: int, decimals: int) -> dict[str, Any]:
    text = format(Decimal(amount).scaleb(-decimals).normalize(), "f")
    return {"amount": str(amount), "decimals": decimals, "uiAmount": float(text), "uiAmountString": text}


class SolanaService:
    def __init__(self, *, seed: int, config: dict[str, Any]):
        self.seed, self.config = seed, config
        self.chain = SolanaChain(seed=seed, config=config)
        self.failures: list[dict[str, Any]] = []
        self._ticker: asyncio.Task[None] | None = None

    def _ctx(self, slot: int, value: Any) -> dict[str, Any]:
        return {"context": {"slot": slot, "apiVersion": API_VERSION}, "value": value}

    @staticmethod
    def _config(params: list[Any], index: int) -> dict[str, Any]:
        return params[index] if len(params) > index and isinstance(params[index], dict) else {}

    def _commitment(self, params: list[Any], index: int) -> int:
        return self.chain.slot_at(self._config(params, index).get("commitment"))

    # ---- methods ----
    def getSlot(self, params: list[Any]) -> Any:
        return self._commitment(params, 0)

    def getBlockHeight(self, params: list[Any]) -> Any:
        return self.chain.block_height(self._commitment(params, 0))

    def getHealth(self, params: list[Any]) -> Any:
        return "ok"

    def getVersion(self, params: list[Any]) -> Any:
        return {"solana-core": API_VERSION, "feature-set": 3271415109}

    def getGenesisHash(self, params: list[Any]) -> Any:
        return self.chain.slots[0].blockhash

    def getLatestBlockhash(self, params: list[Any]) -> Any:
        slot = self._commitment(params, 0)
        record = self.chain.slot_record(slot)
        assert record is not None
        return self._ctx(
            slot, {"blockhash": record.blockhash, "lastValidBlockHeight": self.chain.block_height(slot) + 150}
        )

    def isBlockhashValid(self, params: list[Any]) -> Any:
        slot = self._commitment(params, 1)
        return self._ctx(slot, str(params[0]) in self.chain.recent_blockhashes(slot))

    def getMinimumBalanceForRentExemption(self, params: list[Any]) -> Any:
        return (128 + int(params[0])) * 3480 * 2

    def getFeeForMessage(self, params: list[Any]) -> Any:
        slot = self._commitment(params, 1)
        message = base64.b64decode(str(params[0]))
        return self._ctx(slot, 5000 * message[0] if message[0] < 0x80 else 5000 * message[1])

    def getBalance(self, params: list[Any]) -> Any:
        slot = self._commitment(params, 1)
        account = self.chain.read(_pubkey(params[0]), slot)
        return self._ctx(slot, account.lamports if account else 0)

    def _account_json(self, key: str, account: Account, encoding: str) -> dict[str, Any]:
        data = account.data()
        out: dict[str, Any] = {
            "lamports": account.lamports,
            "owner": account.owner,
            "executable": False,
            "rentEpoch": 18446744073709551615,
            "space": len(data),
        }
        if encoding == "jsonParsed" and account.is_token_account:
            out["data"] = {
                "program": "spl-token",
                "space": len(data),
                "parsed": {
                    "type": "account",
                    "info": {
                        "isNative": False,
                        "mint": account.mint,
                        "owner": account.token_owner,
                        "state": "initialized",
                        "tokenAmount": _ui_amount(account.amount, 6),
                    },
                },
            }
        elif encoding == "jsonParsed" and account.decimals >= 0:
            out["data"] = {
                "program": "spl-token",
                "space": len(data),
                "parsed": {
                    "type": "mint",
                    "info": {
                        "decimals": account.decimals,
                        "freezeAuthority": None,
                        "isInitialized": True,
                        "mintAuthority": None,
                        "supply": str(10**15),
                    },
                },
            }
        elif encoding == "base58":
            out["data"] = [b58encode(data), "base58"]
        else:
            out["data"] = [base64.b64encode(data).decode(), "base64"]
        return out

    def getAccountInfo(self, params: list[Any]) -> Any:
        slot = self._commitment(params, 1)
        key = _pubkey(params[0])
        account = self.chain.read(key, slot)
        encoding = self._config(params, 1).get("encoding", "base64")
        if account is None or (account.lamports == 0 and not account.mint):
            return self._ctx(slot, None)
        return self._ctx(slot, self._account_json(key, account, encoding))

    def getTokenAccountBalance(self, params: list[Any]) -> Any:
        slot = self._commitment(params, 1)
        account = self.chain.read(_pubkey(params[0]), slot)
        if account is None or not account.is_token_account:
            raise RpcError(
                -32602,
                "Invalid param: could not find account"
                if account is None
                else "Invalid param: not a Token account",
            )
        return self._ctx(slot, _ui_amount(account.amount, 6))

    def sendTransaction(self, params: list[Any]) -> Any:
        config = self._config(params, 1)
        rule = self._take_failure("send")
        if rule and rule.get("mode") == "error":
            # as the cluster's RPC answers it: NodeUnhealthy carries {"numSlotsBehind": n | null}
            behind = rule.get("slots_behind")
            message = f"Node is behind by {behind} slots" if behind else "Node is unhealthy"
            # "bare": as a non-conforming proxy in front of a node might, the error without its data
            raise RpcError(-32005, message, None if rule.get("bare") else {"numSlotsBehind": behind})
        encoding = config.get("encoding", "base58")
        raw = base64.b64decode(str(params[0])) if encoding == "base64" else b58decode(str(params[0]))
        return self.chain.simulate_send(
            raw, preflight=config.get("preflightCommitment"), skip_preflight=bool(config.get("skipPreflight"))
        )

    def getSignatureStatuses(self, params: list[Any]) -> Any:
        tip = self.chain.tip.slot
        out: list[Any] = []
        for signature in params[0]:
            record = self.chain.txs.get(str(signature))
            if record is None:
                out.append(None)
                continue
            status = self.chain.status_of(record.slot)
            out.append(
                {
                    "slot": record.slot,
                    "confirmations": None if status == "finalized" else tip - record.slot,
                    "err": record.err,
                    "status": {"Ok": None} if record.err is None else {"Err": record.err},
                    "confirmationStatus": status,
                }
            )
        return self._ctx(tip, out)

    def _visible(self, record: TxRecord, commitment: str | None) -> bool:
        if commitment == "processed":
            raise RpcError(-32602, "Invalid params: Method does not support commitment below `confirmed`")
        return record.slot <= self.chain.slot_at(commitment or "finalized")

    def getTransaction(self, params: list[Any]) -> Any:
        config = self._config(params, 1)
        record = self.chain.txs.get(str(params[0]))
        if record is None or not self._visible(record, config.get("commitment")):
            return None
        tx, _, keys = self.chain.decode(record.raw)
        message = tx.message
        legacy = record.raw[1 + 64 * len(tx.signatures)] < 0x80
        if not legacy and config.get("maxSupportedTransactionVersion") is None:
            raise RpcError(
                -32015,
                "Transaction version (0) is not supported by the requesting client. "
                "Please try the request again with the following configuration parameter: "
                '"maxSupportedTransactionVersion": 0',
            )
        header = message.header
        tx_json: Any = {
            "signatures": [str(s) for s in tx.signatures],
            "message": {
                "accountKeys": keys,
                "header": {
                    "numRequiredSignatures": header.num_required_signatures,
                    "numReadonlySignedAccounts": header.num_readonly_signed_accounts,
                    "numReadonlyUnsignedAccounts": header.num_readonly_unsigned_accounts,
                },
                "recentBlockhash": str(message.recent_blockhash),
                "instructions": [
                    {
                        "programIdIndex": ix.program_id_index,
                        "accounts": list(bytes(ix.accounts)),
                        "data": b58encode(bytes(ix.data)),
                        "stackHeight": None,
                    }
                    for ix in message.instructions
                ],
            },
        }
        if not legacy:
            tx_json["message"]["addressTableLookups"] = []
        if config.get("encoding") == "base64":
            tx_json = [base64.b64encode(record.raw).decode(), "base64"]
        meta = {
            "err": record.err,
            "status": {"Ok": None} if record.err is None else {"Err": record.err},
            "fee": record.fee,
            "preBalances": [(record.pre[k].lamports if record.pre[k] else 0) for k in keys],
            "postBalances": [(record.post[k].lamports if record.post[k] else 0) for k in keys],
            "innerInstructions": [],
            "logMessages": record.logs,
            "preTokenBalances": self._token_balances(keys, record.pre),
            "postTokenBalances": self._token_balances(keys, record.post),
            "rewards": [],
            "loadedAddresses": {"writable": [], "readonly": []},
            "computeUnitsConsumed": record.units,
        }
        slot = self.chain.slot_record(record.slot)
        out = {
            "slot": record.slot,
            "transaction": tx_json,
            "meta": meta,
            "blockTime": slot.time if slot else None,
        }
        if config.get("maxSupportedTransactionVersion") is not None:
            out["version"] = "legacy" if legacy else 0
        return out

    @staticmethod
    def _token_balances(keys: list[str], accounts: dict[str, Account | None]) -> list[dict[str, Any]]:
        out = []
        for index, key in enumerate(keys):
            account = accounts.get(key)
            if account is not None and account.is_token_account:
                out.append(
                    {
                        "accountIndex": index,
                        "mint": account.mint,
                        "owner": account.token_owner,
                        "programId": TOKEN,
                        "uiTokenAmount": _ui_amount(account.amount, 6),
                    }
                )
        return out

    def getSignaturesForAddress(self, params: list[Any]) -> Any:
        config = self._config(params, 1)
        commitment = config.get("commitment") or "finalized"
        if commitment == "processed":
            raise RpcError(-32602, "Invalid params: Method does not support commitment below `confirmed`")
        limit = min(MAX_SIGNATURES_LIMIT, int(config.get("limit") or MAX_SIGNATURES_LIMIT))
        upto = self.chain.slot_at(commitment)
        signatures = [
            s
            for s in reversed(self.chain.by_address.get(_pubkey(params[0]), []))
            if self.chain.txs[s].slot <= upto
        ]
        if config.get("before"):
            before = str(config["before"])
            signatures = signatures[signatures.index(before) + 1 :] if before in signatures else []
        if config.get("until"):
            until = str(config["until"])
            signatures = signatures[: signatures.index(until)] if until in signatures else signatures
        out = []
        for signature in signatures[:limit]:
            record = self.chain.txs[signature]
            slot = self.chain.slot_record(record.slot)
            out.append(
                {
                    "signature": signature,
                    "slot": record.slot,
                    "err": record.err,
                    "memo": None,
                    "blockTime": slot.time if slot else None,
                    "confirmationStatus": self.chain.status_of(record.slot),
                }
            )
        return out

    # ---- transport ----
    def _take_failure(self, target: str) -> dict[str, Any] | None:
        for rule in self.failures:
            if rule.get("target", "send") == target and rule.get("count", 1) > 0:
                rule["count"] = rule.get("count", 1) - 1
                if rule["count"] <= 0:
                    self.failures.remove(rule)
                return rule
        return None

    def _dispatch(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict) or request.get("jsonrpc") != "2.0" or "method" not in request:
            return {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid request"}, "id": None}
        rid = request.get("id")
        method = getattr(self, str(request["method"]), None)
        if (
            method is None
            or str(request["method"]).startswith("_")
            or not str(request["method"])[:1].islower()
        ):
            return {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": rid}
        params = request.get("params") or []
        try:
            config = next((p for p in params if isinstance(p, dict)), {})
            if config.get("commitment") not in (None, *COMMITMENTS):
                raise RpcError(-32602, "Invalid params: unknown commitment")
            result = method(params)
        except RpcError as exc:
            error: dict[str, Any] = {"code": exc.code, "message": exc.message}
            if exc.code == -32005 and exc.data is not None:
                error["data"] = exc.data
            if exc.code == -32002:
                data = exc.data if isinstance(exc.data, dict) else {"err": exc.data, "logs": [], "units": 0}
                error["data"] = {
                    "accounts": None,
                    "err": data["err"],
                    "innerInstructions": None,
                    "logs": data.get("logs", []),
                    "replacementBlockhash": None,
                    "returnData": None,
                    "unitsConsumed": data.get("units", 0),
                }
            return {"jsonrpc": "2.0", "error": error, "id": rid}
        except (IndexError, KeyError, TypeError, ValueError) as exc:
            return {
                "jsonrpc": "2.0",
                "error": {"code": -32602, "message": f"Invalid params: {exc}"},
                "id": rid,
            }
        return {"jsonrpc": "2.0", "result": result, "id": rid}

    async def rpc(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.text())
        except ValueError:
            return web.json_response(
                {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}
            )
        if isinstance(body, list):
            return web.json_response([self._dispatch(item) for item in body])
        return web.json_response(self._dispatch(body))

    # ---- control ----
    async def c_mine(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        made = self.chain.mine(int(body.get("slots", body.get("blocks", 1))))
        return web.json_response({"slot": self.chain.tip.slot, "mined": made})

    async def c_fund(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("mint"):
            where = self.chain.fund(str(body["address"]), int(body["amount"]), str(body["mint"]))
        else:
            where = self.chain.fund(str(body["address"]), int(body.get("lamports", body.get("amount", 0))))
        return web.json_response({"account": where})

    async def c_deposit(self, request: web.Request) -> web.Response:
        body = await request.json()
        mint = {"USDT": USDT_MINT, "USDC": USDC_MINT}.get(str(body.get("mint")), str(body.get("mint")))
        try:
            signature = self.chain.faucet_transfer(str(body["to"]), mint, int(body["amount"]))
        except RpcError as exc:
            return web.json_response({"error": exc.message}, status=400)
        return web.json_response({"signature": signature})

    async def c_interval(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("manual"):
            self.chain.cfg["manual"] = True
        else:
            self.chain.cfg.update(manual=False, slot_interval=float(body.get("interval", 0.4)))
        return web.json_response(
            {"manual": self.chain.cfg["manual"], "slot_interval": self.chain.cfg["slot_interval"]}
        )

    async def c_fail(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("clear"):
            self.failures.clear()
        else:
            self.failures.append(dict(body))
        return web.json_response({"failures": self.failures})

    async def c_reset(self, request: web.Request) -> web.Response:
        self.chain = SolanaChain(seed=self.seed, config=self.config)
        self.failures.clear()
        return web.json_response({"ok": True})

    async def c_state(self, request: web.Request) -> web.Response:
        chain = self.chain
        return web.json_response(
            {
                "slot": chain.tip.slot,
                "finalized": chain.slot_at("finalized"),
                "mempool": [s for s, _ in chain.mempool],
                "txs": {s: {"slot": r.slot, "err": r.err} for s, r in chain.txs.items()},
            }
        )

    # ---- lifecycle ----
    async def _tick(self) -> None:
        while True:
            manual = self.chain.cfg["manual"]
            await asyncio.sleep(0.2 if manual else float(self.chain.cfg["slot_interval"]))
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
    """The Solana service. ``config`` is the "solana" section of the sandbox config (``{}`` = defaults)."""
    config = dict(config or {})
    state_file = config.pop("state_file", None)
    service = SolanaService(seed=seed, config=config)
    if state_file:
        saved = persist.load(Path(state_file))
        if isinstance(saved, SolanaChain):
            service.chain = saved
    app = web.Application()
    if state_file:
        persist.attach(app, Path(state_file), lambda: service.chain)
    app.on_startup.append(service.on_startup)
    app.on_cleanup.append(service.on_cleanup)
    app.router.add_post("/", service.rpc)
    app.router.add_post("/control/mine", service.c_mine)
    app.router.add_post("/control/fund", service.c_fund)
    app.router.add_post("/control/deposit", service.c_deposit)
    app.router.add_post("/control/interval", service.c_interval)
    app.router.add_post("/control/fail", service.c_fail)
    app.router.add_post("/control/reset", service.c_reset)
    app.router.add_get("/control/state", service.c_state)
    return app
