"""EVM chains (ETH, ARBITRUM) over JSON-RPC with ``web3``: one adapter per chain, configured by
``settings.EVM_CHAINS[chain]`` (``rpc_url``, ``chain_id``, ``tokens``: asset -> ERC-20 contract address).

* Deposits: ERC-20 ``Transfer`` logs of our token contracts via ``eth_getLogs`` over a bounded block
  range (the caller's ``to_height``: ``ChainConfig.scan_range_blocks``, audited run-time config, as
  providers cap ranges; ``max_range`` bounds a call without one), each keyed by (tx hash, log index) and carrying its
  block hash; native-coin transfers (``value`` > 0) come from the same blocks' transactions with
  ``log_index = NATIVE_LOG_INDEX`` (the service holds them for review; they are never credited).
* Sending: EIP-1559 (type 2) transactions. ``prepare_transfer`` sets the gas from ``eth_estimateGas``
  and the fees from ``eth_feeHistory`` (maxFeePerGas = 2 × next base fee + tip); the signer signs;
  ``broadcast`` sends ``payload["raw"]`` — the same bytes every time, so a repeat is harmless.
* ``tx``: receipt ``status`` 0 is ``failed``; confirmations count the transaction's block as the first.

Network trouble is ``ChainUnavailable``; a node's refusal ``ChainRejected`` with a stable code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal
from functools import lru_cache
from typing import Any

import requests
from django.conf import settings
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.exceptions import Web3Exception, Web3RPCError

from wallets.chains import spec
from wallets.chains.base import (
    BroadcastResult,
    ChainRejected,
    ChainUnavailable,
    IncomingTransfer,
    ScanResult,
    TxInfo,
    UnsignedTx,
)

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
TRANSFER_SELECTOR = keccak(text="transfer(address,uint256)")[:4]
BALANCE_OF_SELECTOR = keccak(text="balanceOf(address)")[:4]
NATIVE_LOG_INDEX = 2_147_483_647  # (tx hash, this index) keys a native-coin transfer
NATIVE_GAS = 21_000
TOKEN_TRANSFER_GAS = 65_000  # what a sweep's gas top-up budgets for one ERC-20 transfer
GAS_MARGIN = Decimal("1.2")
MIN_TIP = 100_000_000  # 0.1 gwei
REPLACEMENT_BUMP = Decimal("1.125")  # nodes want ≥ 10 % more on both fee fields
WEI = Decimal(10**18)

_REJECTIONS = (
    ("already known", "already_known"),
    ("already imported", "already_known"),  # anvil's word for a transaction already in its pool
    ("nonce too low", "nonce_too_low"),
    ("replacement transaction underpriced", "underpriced"),
    ("underpriced", "underpriced"),
    ("insufficient funds", "insufficient_gas"),
    ("max fee per gas less than block base fee", "fee_too_low"),
    ("execution reverted", "reverted"),
)


def _rejection(exc: Exception) -> ChainRejected:
    message = str(exc)
    lowered = message.lower()
    for needle, code in _REJECTIONS:
        if needle in lowered:
            return ChainRejected(code, message[:200])
    return ChainRejected("rejected", message[:200])


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _address_word(address: str) -> bytes:
    return bytes(12) + bytes.fromhex(address[2:])


class EvmAdapter:
    uses_account_nonces = True

    def __init__(
        self,
        chain: str,
        rpc_url: str,
        *,
        chain_id: int,
        tokens: dict[str, str],
        timeout: float = 5.0,
        max_range: int = 2_000,
        scan_native: bool = True,
    ):
        self.chain = chain
        self.chain_id = chain_id
        self.tokens = {asset: to_checksum_address(address) for asset, address in tokens.items() if address}
        self.assets_by_contract = {address.lower(): asset for asset, address in self.tokens.items()}
        self.max_range = max_range
        self.scan_native = scan_native
        self.native = spec.NATIVE[chain]
        # no silent retries inside web3: a dead node is ChainUnavailable at once, the beat retries
        self.w3 = Web3(
            Web3.HTTPProvider(
                rpc_url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None
            )
        )

    # --- plumbing ---------------------------------------------------------------------------------

    def _rpc(self, method: str, *params: Any) -> Any:
        """One raw JSON-RPC call (results as the node sends them: hex strings)."""
        try:
            response = self.w3.provider.make_request(method, list(params))  # type: ignore[arg-type]
        except (requests.RequestException, OSError) as exc:
            raise ChainUnavailable(f"{self.chain} {method}: {type(exc).__name__}") from exc
        except Web3RPCError as exc:
            raise _rejection(exc) from exc
        except Web3Exception as exc:
            raise ChainUnavailable(f"{self.chain} {method}: {exc}") from exc
        error = response.get("error")
        if error:
            message = error.get("message", "") if isinstance(error, dict) else str(error)
            if isinstance(error, dict) and error.get("code") in (-32000, -32003, -32010, 3):
                raise _rejection(Exception(message))
            if "rate" in message.lower() or "timeout" in message.lower():
                raise ChainUnavailable(f"{self.chain} {method}: {message}")
            raise _rejection(Exception(message))
        return response.get("result")

    def _batch(self, calls: Iterable[tuple[str, list[Any]]]) -> list[Any]:
        payload = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(calls)]
        if not payload:
            return []
        try:
            answer = requests.post(self.w3.provider.endpoint_uri, json=payload, timeout=30)  # type: ignore[attr-defined]
            answer.raise_for_status()
            items = answer.json()
        except (requests.RequestException, ValueError) as exc:
            raise ChainUnavailable(f"{self.chain} batch: {type(exc).__name__}") from exc
        by_id = {item["id"]: item for item in items}
        results = []
        for i in range(len(payload)):
            item = by_id.get(i, {})
            if "error" in item:
                raise ChainUnavailable(f"{self.chain} batch: {item['error']}")
            results.append(item.get("result"))
        return results

    def _contract(self, asset: str) -> str:
        address = self.tokens.get(asset)
        if address is None:
            raise ChainRejected("unknown_asset", f"{self.chain} has no contract for {asset}")
        return address

    def _units(self, asset: str, amount: Decimal) -> int:
        decimals = spec.NATIVE_DECIMALS[self.chain] if asset == self.native else spec.TOKEN_DECIMALS
        units = amount * (Decimal(10) ** decimals)
        if units != units.to_integral_value() or units <= 0:
            raise ChainRejected("bad_amount", f"{amount} {asset} is not a positive whole number of units")
        return int(units)

    # --- reading ----------------------------------------------------------------------------------

    def height(self, chain: str) -> int:
        return int(self._rpc("eth_blockNumber"), 16)

    def block_hash(self, chain: str, height: int) -> str | None:
        block = self._rpc("eth_getBlockByNumber", hex(height), False)
        return block["hash"] if block else None

    def balance(self, chain: str, address: str, asset: str) -> Decimal:
        if asset == self.native:
            return Decimal(int(self._rpc("eth_getBalance", address, "latest"), 16)) / WEI
        data = "0x" + (BALANCE_OF_SELECTOR + _address_word(to_checksum_address(address))).hex()
        result = self._rpc("eth_call", {"to": self._contract(asset), "data": data}, "latest")
        return Decimal(int(result or "0x0", 16)) / (Decimal(10) ** spec.TOKEN_DECIMALS)

    def fees(self) -> tuple[int, int]:
        """(next block's base fee, tip) from ``eth_feeHistory`` (median reward of the last 5 blocks)."""
        history = self._rpc("eth_feeHistory", hex(5), "latest", [50])
        base = int(history["baseFeePerGas"][-1], 16)
        rewards = [int(r[0], 16) for r in history.get("reward") or [] if r]
        tip = max(sorted(rewards)[len(rewards) // 2] if rewards else 0, MIN_TIP)
        return base, tip

    def token_transfer_fee(self, chain: str) -> Decimal:
        base, tip = self.fees()
        return Decimal(TOKEN_TRANSFER_GAS * (2 * base + tip)) / WEI

    def scan(self, chain: str, *, from_height: int, to_height: int | None = None) -> ScanResult:
        tip = self.height(chain)
        # the caller bounds the range (ChainConfig.scan_range_blocks); max_range bounds a call that does not
        end = min(tip, from_height + self.max_range - 1 if to_height is None else to_height)
        if end < from_height:
            return ScanResult([], from_height - 1, tip)
        logs = self._rpc(
            "eth_getLogs",
            {
                "fromBlock": hex(from_height),
                "toBlock": hex(end),
                "address": list(self.tokens.values()),
                "topics": [TRANSFER_TOPIC],
            },
        )
        transfers = []
        for log in logs or []:
            asset = self.assets_by_contract.get(log["address"].lower())
            topics = log["topics"]
            if asset is None or len(topics) != 3 or log.get("removed"):
                continue
            block = int(log["blockNumber"], 16)
            transfers.append(
                IncomingTransfer(
                    tx_hash=log["transactionHash"],
                    log_index=int(log["logIndex"], 16),
                    block=block,
                    confirmations=tip - block + 1,
                    sender=to_checksum_address("0x" + topics[1][-40:]),
                    to=to_checksum_address("0x" + topics[2][-40:]),
                    asset=asset,
                    amount=Decimal(int(log["data"], 16)) / (Decimal(10) ** spec.TOKEN_DECIMALS),
                    block_hash=log["blockHash"],
                )
            )
        if self.scan_native:
            transfers += self._native_transfers(from_height, end, tip)
        return ScanResult(transfers, end, tip)

    def _native_transfers(self, start: int, end: int, tip: int) -> list[IncomingTransfer]:
        found = []
        for first in range(start, end + 1, 100):
            heights = range(first, min(end, first + 99) + 1)
            for block in self._batch(("eth_getBlockByNumber", [hex(h), True]) for h in heights):
                for tx in (block or {}).get("transactions", []):
                    value = int(tx.get("value") or "0x0", 16)
                    if value <= 0 or not tx.get("to"):
                        continue
                    height = int(block["number"], 16)
                    found.append(
                        IncomingTransfer(
                            tx_hash=tx["hash"],
                            log_index=NATIVE_LOG_INDEX,
                            block=height,
                            confirmations=tip - height + 1,
                            sender=to_checksum_address(tx["from"]),
                            to=to_checksum_address(tx["to"]),
                            asset=self.native,
                            amount=Decimal(value) / WEI,
                            block_hash=block["hash"],
                        )
                    )
        return found

    def tx(self, chain: str, tx_hash: str) -> TxInfo:
        found = self._rpc("eth_getTransactionByHash", tx_hash)
        if not found:
            return TxInfo(tx_hash, "unknown", 0, None, Decimal(0), self.native)
        nonce = int(found["nonce"], 16)
        if found.get("blockNumber") is None:
            return TxInfo(tx_hash, "pending", 0, None, Decimal(0), self.native, nonce=nonce)
        receipt = self._rpc("eth_getTransactionReceipt", tx_hash)
        if not receipt:
            return TxInfo(tx_hash, "pending", 0, None, Decimal(0), self.native, nonce=nonce)
        block = int(receipt["blockNumber"], 16)
        fee = Decimal(int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)) / WEI
        status = "confirmed" if int(receipt["status"], 16) == 1 else "failed"
        return TxInfo(
            tx_hash,
            status,
            self.height(chain) - block + 1,
            block,
            fee,
            self.native,
            block_hash=receipt["blockHash"],
            nonce=nonce,
        )

    # --- sending ----------------------------------------------------------------------------------

    def next_nonce(self, chain: str, address: str) -> int:
        return int(self._rpc("eth_getTransactionCount", to_checksum_address(address), "pending"), 16)

    def prepare_transfer(
        self,
        chain: str,
        *,
        sender: str,
        asset: str,
        to: str,
        amount: Decimal,
        nonce: int,
        min_fees: tuple[int, int] | None = None,
        max_fee_cap: int | None = None,
    ) -> UnsignedTx:
        sender, to = to_checksum_address(sender), to_checksum_address(to)
        units = self._units(asset, amount)
        if asset == self.native:
            target, value, data, gas = to, units, b"", NATIVE_GAS
        else:
            target, value = self._contract(asset), 0
            data = TRANSFER_SELECTOR + _address_word(to) + _word(units)
            call = {"from": sender, "to": target, "data": "0x" + data.hex()}
            try:
                estimate = int(self._rpc("eth_estimateGas", call), 16)
            except ChainRejected as exc:
                raise ChainRejected(
                    "insufficient_balance", f"{sender} cannot send {amount} {asset}: {exc.message}"
                ) from exc
            gas = math.ceil(estimate * GAS_MARGIN)
        base, tip = self.fees()
        max_fee = 2 * base + tip
        if min_fees is not None:
            max_fee = max(max_fee, math.ceil(min_fees[0] * REPLACEMENT_BUMP) + 1)
            tip = max(tip, math.ceil(min_fees[1] * REPLACEMENT_BUMP) + 1)
        if max_fee_cap is not None and max_fee > max_fee_cap:
            raise ChainRejected("fee_cap", f"maxFeePerGas {max_fee} wei is above the cap {max_fee_cap} wei")
        fields = {
            "type": 2,
            "chainId": self.chain_id,
            "nonce": nonce,
            "to": target,
            "value": value,
            "data": "0x" + data.hex(),
            "gas": gas,
            "maxFeePerGas": max_fee,
            "maxPriorityFeePerGas": min(tip, max_fee),
        }
        return UnsignedTx(chain=chain, sender=sender, nonce=nonce, fields=fields)

    def broadcast(self, chain: str, payload: dict[str, Any]) -> BroadcastResult:
        raw, tx_hash = payload["raw"], payload["tx_hash"]
        try:
            sent = self._rpc("eth_sendRawTransaction", raw)
        except ChainRejected as exc:
            if exc.code in ("already_known", "nonce_too_low"):
                known = self._rpc("eth_getTransactionByHash", tx_hash)
                if known:
                    return BroadcastResult(
                        tx_hash, "pending" if known.get("blockNumber") is None else "confirmed", True
                    )
                if exc.code == "nonce_too_low":
                    raise ChainRejected("nonce_used", "another transaction took this nonce") from exc
            raise
        return BroadcastResult(sent or tx_hash, "pending", False)


@lru_cache(maxsize=16)
def _cached(
    chain: str,
    rpc_url: str,
    chain_id: int,
    tokens: tuple[tuple[str, str], ...],
    timeout: float,
) -> EvmAdapter:
    return EvmAdapter(chain, rpc_url, chain_id=chain_id, tokens=dict(tokens), timeout=timeout)


def evm_adapter(chain: str) -> EvmAdapter:
    """The adapter of ``chain`` from ``settings.EVM_CHAINS`` (rebuilt when those settings change)."""
    conf: dict[str, Any] = settings.EVM_CHAINS[chain]
    return _cached(
        chain,
        conf["rpc_url"],
        int(conf["chain_id"]),
        tuple(sorted(conf.get("tokens", {}).items())),
        float(conf.get("timeout", 5.0)),
    )
