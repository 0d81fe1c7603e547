"""TRON over its own HTTP API with ``tronpy``: the full node's ``/wallet/*`` (blocks, accounts, USDT's
``balanceOf``, ``broadcasttransaction``, receipts) and TronGrid's ``/v1/accounts/{address}/transactions/trc20``
for deposits, at ``settings.TRON_RPC_URL`` (TronGrid, a provider, or our own node: one base URL serves
both), ``settings.TRON_API_KEY`` sent as ``TRON-PRO-API-KEY`` when set.

* Deposits: per deposit address, TronGrid's TRC-20 transfers *to* it of the USDT contract since the
  first block of the range; each one's block from ``gettransactioninfobyid`` (a reverted call never
  emits the event, so only successful transfers are listed). Keyed by (txID, index of the Transfer
  log); confirmations = tip − block + 1 (credited at 19).
* Sending: tronpy builds the transaction (``TriggerSmartContract`` ``transfer(address,uint256)`` for
  USDT, ``TransferContract`` for TRX top-ups), referencing the node's latest solid block and expiring
  ``expiration_seconds`` after the head block's time, a USDT call burning at most ``fee_limit_trx``
  (both the caller's, from the audited ``ChainConfig``: ``tx_expiration_seconds``, ``fee_limit_native``); ``sign`` signs the txID (secp256k1, tronpy's
  ``Transaction.sign``); ``broadcast`` sends the stored JSON — the same transaction every time.
  ``DUP_TRANSACTION_ERROR`` is success (already known). A transaction whose expiration has passed
  and that is in no block can never land: ``ChainRejected("expired")`` — the caller re-signs
  (``wallets.services.expiring_txs``), which cannot spend twice.
* ``tx``: in a block → ``confirmed`` or ``failed`` (``REVERT``/``OUT_OF_ENERGY``: the fee was burnt,
  no token moved); in the node's pending pool → ``pending``; else ``unknown``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from functools import lru_cache
from typing import Any

import requests
from django.conf import settings
from tronpy import Tron
from tronpy.keys import PrivateKey, to_hex_address
from tronpy.providers import HTTPProvider
from tronpy.tron import Transaction

from wallets.chains.base import (
    BroadcastResult,
    ChainRejected,
    ChainUnavailable,
    IncomingTransfer,
    ScanResult,
    SignedTx,
    TxInfo,
    UnsignedTx,
)
from wallets.chains.watched import deposit_addresses

USDT_CONTRACT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
SUN = Decimal(1_000_000)
ENERGY_TOKEN_TRANSFER = 29_650  # a transfer to an address without USDT (the dearer case)
BANDWIDTH_TOKEN_TRANSFER = 350
TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
_REJECTIONS = {
    "SIGERROR": "bad_signature",
    "BANDWITH_ERROR": "insufficient_gas",
    "TOO_BIG_TRANSACTION_ERROR": "invalid_transaction",
    "TAPOS_ERROR": "tapos",
    "TRANSACTION_EXPIRATION_ERROR": "expired",
}


def to_sun(amount: Decimal) -> int:
    sun = amount * SUN
    if sun != sun.to_integral_value() or sun <= 0:
        raise ChainRejected("invalid_amount", f"{amount} is not a positive multiple of 0.000001")
    return int(sun)


class TronAdapter:
    uses_account_nonces = False
    expiring = True  # transactions carry an expiration; an expired one is re-signed

    def __init__(
        self,
        url: str,
        *,
        api_key: str = "",
        timeout: float = 10.0,
        watched: Callable[[str], Iterable[str]] = deposit_addresses,
    ):
        self.url = url.rstrip("/") + "/"
        provider = HTTPProvider(self.url, timeout=timeout, api_key=api_key or None)
        if api_key:
            provider.sess.headers["TRON-PRO-API-KEY"] = api_key
        self.client = Tron(provider)
        self.http = provider.sess
        self.timeout = timeout
        self.watched = watched
        self._contract: Any = None

    # ---- plumbing ----
    def _node(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            answer = self.client.provider.make_request(method, params or {})
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status >= 500 or status in (403, 429):
                raise ChainUnavailable(f"TRON {method}: HTTP {status}") from exc
            raise ChainRejected("rejected", f"TRON {method}: HTTP {status}") from exc
        except (requests.RequestException, ValueError) as exc:
            raise ChainUnavailable(f"TRON {method}: {type(exc).__name__}") from exc
        if not isinstance(answer, dict):
            raise ChainUnavailable(f"TRON {method}: unexpected answer")
        return answer

    def _grid(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.http.get(self.url + path.lstrip("/"), params=params, timeout=self.timeout)
            if response.status_code >= 400:
                raise ChainUnavailable(f"TronGrid {path}: HTTP {response.status_code}")
            body = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ChainUnavailable(f"TronGrid {path}: {type(exc).__name__}") from exc
        if not body.get("success", False):
            raise ChainUnavailable(f"TronGrid {path}: {body.get('error', 'not successful')}")
        return dict(body)

    def _head(self) -> dict[str, Any]:
        block = self._node("wallet/getnowblock", {"visible": True})
        if "block_header" not in block:
            raise ChainUnavailable("TRON getnowblock: no block")
        return block

    def _block_id(self, number: int, cache: dict[int, str] | None = None) -> str:
        if cache is not None and number in cache:
            return cache[number]
        block = self._node("wallet/getblockbynum", {"num": number, "visible": True})
        block_id = str(block.get("blockID", ""))
        if cache is not None:
            cache[number] = block_id
        return block_id

    # ---- ChainAdapter ----
    def height(self, chain: str) -> int:
        return int(self._head()["block_header"]["raw_data"]["number"])

    def block_hash(self, chain: str, height: int) -> str | None:
        return self._block_id(height) or None

    def token_transfer_fee(self, chain: str) -> Decimal:
        params = self._node("wallet/getchainparameters", {"visible": True}).get("chainParameter", [])
        values = {p.get("key"): int(p.get("value", 0)) for p in params}
        energy_price = values.get("getEnergyFee", 420)
        byte_price = values.get("getTransactionFee", 1_000)
        sun = ENERGY_TOKEN_TRANSFER * energy_price + BANDWIDTH_TOKEN_TRANSFER * byte_price
        return Decimal(sun) / SUN

    def balance(self, chain: str, address: str, asset: str) -> Decimal:
        if asset == "TRX":
            account = self._node("wallet/getaccount", {"address": address, "visible": True})
            return Decimal(int(account.get("balance", 0))) / SUN
        if asset != "USDT":
            raise ChainRejected("unknown_asset", f"TRON has no {asset}")
        parameter = to_hex_address(address)[2:].rjust(64, "0")
        answer = self._node(
            "wallet/triggerconstantcontract",
            {
                "owner_address": address,
                "contract_address": USDT_CONTRACT,
                "function_selector": "balanceOf(address)",
                "parameter": parameter,
                "visible": True,
            },
        )
        result = answer.get("constant_result") or []
        if not result:
            raise ChainUnavailable(f"TRON balanceOf: {answer.get('result', answer)}")
        return Decimal(int(result[0] or "0", 16)) / SUN

    def scan(self, chain: str, *, from_height: int, to_height: int | None = None) -> ScanResult:
        tip = self.height(chain)
        end = tip if to_height is None else min(to_height, tip)
        if end < from_height:
            return ScanResult([], end, tip)
        first = self._node("wallet/getblockbynum", {"num": from_height, "visible": True})
        since = int(first.get("block_header", {}).get("raw_data", {}).get("timestamp", 0))
        blocks: dict[int, str] = {}
        infos: dict[str, dict[str, Any]] = {}
        transfers: list[IncomingTransfer] = []
        for address in self.watched(chain):
            for item in self._incoming(address, since):
                txid = item["transaction_id"]
                info = infos.get(txid) or self._node("wallet/gettransactioninfobyid", {"value": txid})
                infos[txid] = info
                block = info.get("blockNumber")
                if block is None or not from_height <= int(block) <= end or info.get("result") == "FAILED":
                    continue
                transfers.append(
                    IncomingTransfer(
                        tx_hash=txid,
                        log_index=self._log_index(info, address, int(item["value"])),
                        block=int(block),
                        confirmations=tip - int(block) + 1,
                        sender=item["from"],
                        to=item["to"],
                        asset="USDT",
                        amount=Decimal(int(item["value"])) / SUN,
                        block_hash=self._block_id(int(block), blocks),
                    )
                )
        return ScanResult(transfers, end, tip)

    def _incoming(self, address: str, since: int) -> Iterable[dict[str, Any]]:
        params: dict[str, Any] = {
            "only_to": "true",
            "contract_address": USDT_CONTRACT,
            "min_timestamp": since,
            "order_by": "block_timestamp,asc",
            "limit": 200,
        }
        while True:
            page = self._grid(f"v1/accounts/{address}/transactions/trc20", params)
            for item in page.get("data", []):
                if item.get("to") == address and item.get("type") == "Transfer":
                    yield item
            fingerprint = page.get("meta", {}).get("fingerprint")
            if not fingerprint:
                return
            params = {**params, "fingerprint": fingerprint}

    @staticmethod
    def _log_index(info: dict[str, Any], to: str, value: int) -> int:
        target = to_hex_address(to)[2:].rjust(64, "0")
        for index, log in enumerate(info.get("log", [])):
            topics = log.get("topics", [])
            if (
                len(topics) == 3
                and topics[0] == TRANSFER_TOPIC
                and topics[2] == target
                and int(log.get("data") or "0", 16) == value
            ):
                return index
        return 0

    def tx(self, chain: str, tx_hash: str) -> TxInfo:
        info = self._node("wallet/gettransactioninfobyid", {"value": tx_hash})
        if info.get("blockNumber") is not None:
            block = int(info["blockNumber"])
            failed = info.get("result") == "FAILED"
            return TxInfo(
                tx_hash,
                "failed" if failed else "confirmed",
                self.height(chain) - block + 1,
                block,
                Decimal(int(info.get("fee", 0))) / SUN,
                "TRX",
                block_hash=self._block_id(block),
            )
        pending = self._node("wallet/gettransactionfrompending", {"value": tx_hash})
        status = "pending" if pending.get("txID") == tx_hash else "unknown"
        return TxInfo(tx_hash, status, 0, None, Decimal(0), "TRX")

    # ---- sending ----
    def prepare_transfer(
        self,
        chain: str,
        *,
        sender: str,
        asset: str,
        to: str,
        amount: Decimal,
        fee_limit_trx: Decimal = Decimal(50),
        expiration_seconds: int = 60,
        **_: Any,
    ) -> UnsignedTx:
        """An unsigned transfer built by tronpy (the node gives the reference block and the txID): a USDT
        call may burn up to ``fee_limit_trx`` for its energy; it expires ``expiration_seconds`` after the
        head block's time."""
        head_ts = int(self._head()["block_header"]["raw_data"]["timestamp"])
        try:
            if asset == "USDT":
                contract = self._usdt()
                builder = contract.functions.transfer(to, to_sun(amount)).with_owner(sender)
                builder = builder.fee_limit(to_sun(fee_limit_trx))
            elif asset == "TRX":
                builder = self.client.trx.transfer(sender, to, to_sun(amount))
            else:
                raise ChainRejected("unknown_asset", f"TRON has no {asset}")
            # expire relative to the chain's clock, not ours: a skewed local clock cannot shorten it
            builder = builder.expiration(head_ts + expiration_seconds * 1000 - _now_ms())
            txn = builder.build()
        except ChainRejected:
            raise
        except requests.RequestException as exc:
            raise ChainUnavailable(f"TRON build: {type(exc).__name__}") from exc
        fields = txn.to_json()
        return UnsignedTx(chain=chain, sender=sender, nonce=0, fields=fields)

    def _usdt(self) -> Any:
        if self._contract is None:
            try:
                self._contract = self.client.get_contract(USDT_CONTRACT)
            except requests.RequestException as exc:
                raise ChainUnavailable(f"TRON getcontract: {type(exc).__name__}") from exc
        return self._contract

    def broadcast(self, chain: str, payload: dict[str, Any]) -> BroadcastResult:
        if "raw" not in payload:  # signed for the retired simulated chains (a local database from before)
            raise ChainRejected("invalid_payload", "not a signed transaction of this chain")
        tx = json.loads(payload["raw"])
        txid = str(tx["txID"])
        answer = self._node("wallet/broadcasttransaction", tx)
        if answer.get("result") is True:
            return BroadcastResult(txid, "pending", False)
        code = str(answer.get("code", "")) or "rejected"
        message = _text(answer.get("message", answer.get("Error", "")))
        if code == "DUP_TRANSACTION_ERROR":
            return BroadcastResult(txid, "pending", True)
        known = self.tx(chain, txid)
        if known.status != "unknown":
            return BroadcastResult(txid, known.status, True)  # already in a block or the pool
        expiration = int(tx["raw_data"]["expiration"])
        if expiration <= int(self._head()["block_header"]["raw_data"]["timestamp"]):
            raise ChainRejected("expired", message or "transaction expired")
        if code == "CONTRACT_VALIDATE_ERROR":
            lowered = message.lower()
            if "balance is not sufficient" in lowered or "no owneraccount" in lowered:
                raise ChainRejected(
                    "insufficient_gas" if "owner" in lowered else "insufficient_balance", message
                )
            raise ChainRejected("contract_validate", message)
        if code in ("TAPOS_ERROR", "SERVER_BUSY", "NO_CONNECTION", "NOT_ENOUGH_EFFECTIVE_CONNECTION"):
            raise ChainUnavailable(f"TRON broadcast: {code} {message}")  # retry the same transaction
        raise ChainRejected(_REJECTIONS.get(code, code.lower()), message)


def sign(tx: UnsignedTx, private_key: bytes) -> SignedTx:
    """Sign with tronpy's ``Transaction.sign`` (secp256k1 over the txID); the signer calls this."""
    key = PrivateKey(private_key)
    if key.public_key.to_base58check_address() != tx.sender:
        raise ValueError("the transaction's sender is not this key's address")
    fields = tx.fields
    txn = Transaction(dict(fields["raw_data"]), txid=str(fields["txID"]), permission=None)
    signed = txn.sign(key).to_json()
    signed.pop("permission", None)
    return SignedTx(
        raw=json.dumps(signed, separators=(",", ":"), sort_keys=True), tx_hash=str(fields["txID"])
    )


def _text(message: Any) -> str:
    try:
        return bytes.fromhex(str(message)).decode()
    except ValueError:
        return str(message)


def _now_ms() -> int:
    return int(time.time() * 1000)


@lru_cache(maxsize=4)
def _cached(url: str, api_key: str, timeout: float) -> TronAdapter:
    return TronAdapter(url, api_key=api_key, timeout=timeout)


def tron_adapter(chain: str) -> TronAdapter:
    """The TRON node/TronGrid at ``settings.TRON_RPC_URL``."""
    return _cached(
        settings.TRON_RPC_URL,
        getattr(settings, "TRON_API_KEY", ""),
        float(getattr(settings, "TRON_RPC_TIMEOUT", 10.0)),
    )
