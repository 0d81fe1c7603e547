"""The TRON stand-in's state: blocks, accounts (TRX in sun), the USDT TRC-20 contract, transactions and
their receipts. Plain objects (pickled by ``--state-dir``); the HTTP layer is ``sandbox.tron.server``.

As on the chain: the transaction id is ``sha256`` of the protobuf ``raw_data``; one secp256k1
signature over the id must recover the owner; ``ref_block_bytes``/``ref_block_hash`` must name one of
the recent blocks (TAPoS) and ``expiration`` must lie after the head block's time (and at most 24 h
ahead), both at broadcast and when the block is made. Bandwidth comes from the daily free allowance or
is burnt at ``bandwidth_price`` sun a byte; a TRC-20 transfer burns ``energy * energy_price`` up to
the transaction's ``fee_limit`` (``OUT_OF_ENERGY`` otherwise) and reverts (``REVERT``, fee kept) when
the sender's token balance is short. Errors carry TRON's codes (``SIGERROR``, ``TAPOS_ERROR``,
``TRANSACTION_EXPIRATION_ERROR``, ``DUP_TRANSACTION_ERROR``, ``CONTRACT_VALIDATE_ERROR``,
``BANDWITH_ERROR``).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from eth_keys import keys as eth_keys
from eth_utils import keccak

from sandbox.tron import proto
from sandbox.tron.addresses import BadAddress, to_base58, to_raw

USDT = to_raw("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t")
TRANSFER_SELECTOR = keccak(text="transfer(address,uint256)")[:4]
BALANCE_OF_SELECTOR = keccak(text="balanceOf(address)")[:4]
DECIMALS_SELECTOR = keccak(text="decimals()")[:4]
TRANSFER_TOPIC = keccak(text="Transfer(address,address,uint256)").hex()
SUN = 1_000_000
TAPOS_WINDOW = 65_536
MAX_EXPIRATION_MS = 24 * 3600 * 1000
MAX_FEE_LIMIT = 15_000 * SUN
DEFAULTS: dict[str, Any] = {
    "block_interval": 3.0,
    "manual": False,
    "start_height": 60_000_000,
    "energy_price": 420,  # sun per energy unit
    "bandwidth_price": 1_000,  # sun per byte
    "free_net_limit": 600,  # bytes a day per account
    "create_account_fee": SUN,
    "energy_transfer": 14_650,  # TRC-20 transfer to a holder
    "energy_transfer_new_holder": 29_650,  # … to an address whose balance slot is empty
    "energy_revert": 1_200,
    "solid_depth": 19,
    "genesis": [],
}


class TronError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass
class Block:
    num: int
    id: str
    timestamp: int
    parent: str
    txids: list[str] = field(default_factory=list)


@dataclass
class Account:
    balance: int = 0
    create_time: int = 0
    free_net_used: int = 0
    free_net_day: int = 0


@dataclass
class TxRecord:
    tx: dict[str, Any]  # txID, raw_data (hex addresses), signature
    size: int
    block: int | None = None
    info: dict[str, Any] = field(default_factory=dict)
    contract_ret: str = ""


def block_id(num: int, digest: bytes) -> str:
    return num.to_bytes(8, "big").hex() + digest[8:].hex()


def owner_of(tx: dict[str, Any]) -> bytes:
    return to_raw(tx["raw_data"]["contract"][0]["parameter"]["value"]["owner_address"])


def recover(txid: str, signature_hex: str) -> bytes:
    sig = bytes.fromhex(signature_hex)
    if len(sig) != 65:
        raise ValueError("signature must be 65 bytes")
    v = sig[64] - 27 if sig[64] >= 27 else sig[64]
    public = eth_keys.Signature(sig[:64] + bytes([v])).recover_public_key_from_msg_hash(bytes.fromhex(txid))
    return b"\x41" + keccak(public.to_bytes())[-20:]


class TronChain:
    def __init__(self, *, seed: int, config: dict[str, Any]):
        unknown = set(config) - set(DEFAULTS) - {"faucet_key"}
        if unknown:
            raise ValueError(f"unknown tron config keys: {sorted(unknown)}")
        self.seed = seed
        self.cfg = {**DEFAULTS, **config}
        self.clock_offset_ms = 0
        self.faucet_key = bytes.fromhex(
            config.get("faucet_key") or hashlib.sha256(f"tron-faucet-{seed}".encode()).hexdigest()
        )
        self.faucet = b"\x41" + eth_keys.PrivateKey(self.faucet_key).public_key.to_canonical_address()
        self.accounts: dict[bytes, Account] = {}
        self.usdt: dict[bytes, int] = {}
        self.txs: dict[str, TxRecord] = {}
        self.mempool: list[str] = []
        self.events: list[dict[str, Any]] = []  # TRC-20 Transfer events, in chain order
        start = int(self.cfg["start_height"])
        genesis_ts = self.now_ms()
        self.blocks: list[Block] = [
            Block(
                start, block_id(start, hashlib.sha256(f"tron-{seed}".encode()).digest()), genesis_ts, "0" * 64
            )
        ]
        self._account(self.faucet).balance = 10**9 * SUN
        self.usdt[self.faucet] = 10**12 * SUN
        for entry in self.cfg["genesis"]:
            self.fund(entry["address"], int(entry["amount"]) * SUN, entry.get("asset", "TRX"))

    # ---- clock, blocks ----
    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    @property
    def head(self) -> Block:
        return self.blocks[-1]

    @property
    def solid(self) -> Block:
        return self.block(max(self.blocks[0].num, self.head.num - int(self.cfg["solid_depth"]))) or self.head

    def block(self, num: int) -> Block | None:
        index = num - self.blocks[0].num
        return self.blocks[index] if 0 <= index < len(self.blocks) else None

    def mine(self, count: int = 1) -> list[int]:
        made = []
        for _ in range(count):
            parent = self.head
            timestamp = max(self.now_ms(), parent.timestamp + 1)
            num = parent.num + 1
            included: list[str] = []
            pending, self.mempool = self.mempool, []
            for txid in pending:
                record = self.txs[txid]
                if record.tx["raw_data"]["expiration"] <= timestamp:
                    del self.txs[txid]  # expired before it could be packed: gone, as on TRON
                    continue
                included.append(txid)
            digest = hashlib.sha256(f"{parent.id}|{num}|{timestamp}|{','.join(included)}".encode()).digest()
            blk = Block(num, block_id(num, digest), timestamp, parent.id, included)
            self.blocks.append(blk)
            for txid in included:
                self._execute(self.txs[txid], blk)
            made.append(num)
        return made

    # ---- accounts ----
    def _account(self, address: bytes) -> Account:
        account = self.accounts.get(address)
        if account is None:
            account = self.accounts[address] = Account(create_time=self.now_ms())
        return account

    def fund(self, address: str, amount: int, asset: str = "TRX") -> None:
        raw = to_raw(address)
        if asset.upper() == "USDT":
            self.usdt[raw] = self.usdt.get(raw, 0) + amount
        else:
            self._account(raw).balance += amount

    def free_net_left(self, address: bytes) -> int:
        account = self.accounts.get(address)
        if account is None:
            return 0
        day = self.head.timestamp // 86_400_000
        used = account.free_net_used if account.free_net_day == day else 0
        return max(0, int(self.cfg["free_net_limit"]) - used)

    # ---- transactions ----
    def tx_size(self, tx: dict[str, Any]) -> int:
        return len(proto.raw_bytes(tx["raw_data"])) + 67 * len(tx.get("signature") or []) + 64

    def push(self, tx: dict[str, Any]) -> str:
        """Validate a signed transaction as ``broadcasttransaction`` does and queue it for the next block."""
        raw = tx.get("raw_data")
        if not isinstance(raw, dict) or not raw.get("contract"):
            raise TronError("OTHER_ERROR", "transaction has no raw_data or contract")
        try:
            txid = proto.txid(raw)
            owner = owner_of(tx)
        except (BadAddress, ValueError, KeyError) as exc:
            raise TronError("OTHER_ERROR", f"invalid transaction: {exc}") from exc
        self._check_tapos(raw)
        head_ts = self.head.timestamp
        if raw["expiration"] <= head_ts or raw["expiration"] > head_ts + MAX_EXPIRATION_MS:
            raise TronError(
                "TRANSACTION_EXPIRATION_ERROR",
                f"Transaction expiration, transaction expiration time is {raw['expiration']}, but headBlockTime is {head_ts}",
            )
        if txid in self.txs:
            raise TronError("DUP_TRANSACTION_ERROR", "dup trans")
        signatures = tx.get("signature") or []
        if len(signatures) != 1:
            raise TronError("SIGERROR", "Validate signature error: exactly one signature is required")
        try:
            signer = recover(txid, signatures[0])
        except Exception as exc:
            raise TronError("SIGERROR", f"Validate signature error: {exc}") from exc
        if signer != owner:
            raise TronError(
                "SIGERROR",
                f"Validate signature error: {signer.hex()} is signed by {to_base58(signer)} but it is not contained of permission.",
            )
        size = self.tx_size(tx)
        self._validate_contract(raw, owner, size)
        self.txs[txid] = TxRecord({"txID": txid, "raw_data": raw, "signature": signatures}, size)
        self.mempool.append(txid)
        return txid

    def _check_tapos(self, raw: dict[str, Any]) -> None:
        ref_bytes = raw.get("ref_block_bytes", "")
        for blk in reversed(self.blocks[-TAPOS_WINDOW:]):
            if blk.id[12:16] == ref_bytes:
                if blk.id[16:32] == raw.get("ref_block_hash"):
                    return
                break
        raise TronError(
            "TAPOS_ERROR",
            f"Tapos check error: ref_block_bytes {ref_bytes} ref_block_hash {raw.get('ref_block_hash')} not found",
        )

    def _pending_spend(self, owner: bytes) -> int:
        total = 0
        for txid in self.mempool:
            record = self.txs[txid]
            if owner_of(record.tx) == owner:
                value = record.tx["raw_data"]["contract"][0]["parameter"]["value"]
                total += int(value.get("amount", 0)) + int(record.tx["raw_data"].get("fee_limit", 0))
        return total

    def _validate_contract(self, raw: dict[str, Any], owner: bytes, size: int) -> None:
        contract = raw["contract"][0]
        kind = contract["type"]
        value = contract["parameter"]["value"]
        account = self.accounts.get(owner)
        if account is None:
            raise TronError(
                "CONTRACT_VALIDATE_ERROR",
                f"Contract validate error : Validate {kind} error, no OwnerAccount.",
            )
        available = account.balance - self._pending_spend(owner)
        net_fee = 0 if self.free_net_left(owner) >= size else size * int(self.cfg["bandwidth_price"])
        if kind == "TransferContract":
            to = to_raw(value["to_address"])
            amount = int(value["amount"])
            if amount <= 0:
                raise TronError(
                    "CONTRACT_VALIDATE_ERROR", "Contract validate error : Amount must be greater than 0."
                )
            if to == owner:
                raise TronError(
                    "CONTRACT_VALIDATE_ERROR", "Contract validate error : Cannot transfer TRX to yourself."
                )
            fee = int(self.cfg["create_account_fee"]) if to not in self.accounts else 0
            if available < amount + fee:
                raise TronError(
                    "CONTRACT_VALIDATE_ERROR",
                    "Contract validate error : Validate TransferContract error, balance is not sufficient.",
                )
        elif kind == "TriggerSmartContract":
            if to_raw(value["contract_address"]) != USDT:
                raise TronError(
                    "CONTRACT_VALIDATE_ERROR", "Contract validate error : No contract or not a smart contract"
                )
            fee_limit = int(raw.get("fee_limit", 0))
            if not 0 <= fee_limit <= MAX_FEE_LIMIT:
                raise TronError(
                    "CONTRACT_VALIDATE_ERROR",
                    "Contract validate error : feeLimit must be >= 0 and <= 15000000000",
                )
        else:
            raise TronError(
                "CONTRACT_VALIDATE_ERROR", f"Contract validate error : {kind} is not supported here"
            )
        if available < net_fee:
            raise TronError("BANDWITH_ERROR", "Account resource insufficient error.")

    def _charge_bandwidth(self, owner: bytes, size: int, receipt: dict[str, Any]) -> None:
        account = self._account(owner)
        day = self.head.timestamp // 86_400_000
        if account.free_net_day != day:
            account.free_net_day, account.free_net_used = day, 0
        if self.free_net_left(owner) >= size:
            account.free_net_used += size
            receipt["net_usage"] = size
        else:
            fee = size * int(self.cfg["bandwidth_price"])
            account.balance -= fee
            receipt["net_fee"] = fee

    def _execute(self, record: TxRecord, blk: Block) -> None:
        raw = record.tx["raw_data"]
        contract = raw["contract"][0]
        value = contract["parameter"]["value"]
        owner = owner_of(record.tx)
        receipt: dict[str, Any] = {}
        info: dict[str, Any] = {
            "id": record.tx["txID"],
            "blockNumber": blk.num,
            "blockTimeStamp": blk.timestamp,
        }
        self._charge_bandwidth(owner, record.size, receipt)
        account = self._account(owner)
        fee = 0
        if contract["type"] == "TransferContract":
            to = to_raw(value["to_address"])
            if to not in self.accounts:
                fee = int(self.cfg["create_account_fee"])
            account.balance -= int(value["amount"]) + fee
            self._account(to).balance += int(value["amount"])
            record.contract_ret = "SUCCESS"
            info["contractResult"] = [""]
        else:
            record.contract_ret, fee = self._trigger(owner, raw, value, info, receipt)
        info["fee"] = fee + int(receipt.get("net_fee", 0))
        if not info["fee"]:
            del info["fee"]
        info["receipt"] = receipt
        record.block = blk.num
        record.info = info

    def _trigger(
        self,
        owner: bytes,
        raw: dict[str, Any],
        value: dict[str, Any],
        info: dict[str, Any],
        receipt: dict[str, Any],
    ) -> tuple[str, int]:
        account = self._account(owner)
        data = bytes.fromhex(value.get("data", ""))
        price = int(self.cfg["energy_price"])
        limit = min(int(raw.get("fee_limit", 0)), max(0, account.balance))
        info["contract_address"] = to_raw(value["contract_address"]).hex()
        ok = data[:4] == TRANSFER_SELECTOR and len(data) == 68
        to = b"\x41" + data[16:36] if ok else b""
        amount = int.from_bytes(data[36:68], "big") if ok else 0
        if ok and self.usdt.get(owner, 0) >= amount:
            energy = int(
                self.cfg["energy_transfer" if self.usdt.get(to, 0) else "energy_transfer_new_holder"]
            )
            result = "SUCCESS"
        else:
            energy, result = int(self.cfg["energy_revert"]), "REVERT"
        fee = energy * price
        if fee > limit:
            fee, energy, result = limit, limit // price, "OUT_OF_ENERGY"
        account.balance -= fee
        receipt.update({"energy_fee": fee, "energy_usage_total": energy, "result": result})
        if result != "SUCCESS":
            info["result"] = "FAILED"
            info["resMessage"] = (
                (
                    "REVERT opcode executed"
                    if result == "REVERT"
                    else "Not enough energy for 'SSTORE' operation executing"
                )
                .encode()
                .hex()
            )
            info["contractResult"] = [""]
            return result, fee
        self.usdt[owner] -= amount
        self.usdt[to] = self.usdt.get(to, 0) + amount
        info["contractResult"] = [(1).to_bytes(32, "big").hex()]
        info["log"] = [
            {
                "address": USDT[1:].hex(),
                "topics": [TRANSFER_TOPIC, owner[1:].rjust(32, b"\0").hex(), to[1:].rjust(32, b"\0").hex()],
                "data": amount.to_bytes(32, "big").hex(),
            }
        ]
        self.events.append(
            {
                "txid": info["id"],
                "block": info["blockNumber"],
                "timestamp": info["blockTimeStamp"],
                "from": owner,
                "to": to,
                "value": amount,
            }
        )
        return result, fee

    def constant_call(self, data: bytes) -> bytes:
        if data[:4] == BALANCE_OF_SELECTOR and len(data) == 36:
            return self.usdt.get(b"\x41" + data[16:36], 0).to_bytes(32, "big")
        if data[:4] == DECIMALS_SELECTOR:
            return (6).to_bytes(32, "big")
        raise TronError("CONTRACT_VALIDATE_ERROR", "REVERT opcode executed")

    def build_trigger(self, owner: bytes, data: bytes, fee_limit: int, call_value: int = 0) -> dict[str, Any]:
        """``triggersmartcontract``: an unsigned transaction referencing the head block, 60 s to live."""
        head = self.head
        raw: dict[str, Any] = {
            "contract": [
                {
                    "parameter": {
                        "value": {
                            "data": data.hex(),
                            "owner_address": owner.hex(),
                            "contract_address": USDT.hex(),
                        },
                        "type_url": "type.googleapis.com/protocol.TriggerSmartContract",
                    },
                    "type": "TriggerSmartContract",
                }
            ],
            "ref_block_bytes": head.id[12:16],
            "ref_block_hash": head.id[16:32],
            "expiration": head.timestamp + 60_000,
            "fee_limit": fee_limit,
            "timestamp": self.now_ms(),
        }
        if call_value:
            raw["contract"][0]["parameter"]["value"]["call_value"] = call_value
        return {"txID": proto.txid(raw), "raw_data": raw, "raw_data_hex": proto.raw_bytes(raw).hex()}

    def faucet_transfer(self, to: str, amount: int) -> str:
        """An outside holder pays USDT to ``to``: a real signed TRC-20 transfer, queued for the next block."""
        data = TRANSFER_SELECTOR + to_raw(to)[1:].rjust(32, b"\0") + amount.to_bytes(32, "big")
        tx = self.build_trigger(self.faucet, data, 100 * SUN)
        self.faucet_nonce = getattr(self, "faucet_nonce", 0) + 1
        tx["raw_data"]["timestamp"] += (
            self.faucet_nonce
        )  # distinct ids for equal transfers in one millisecond
        tx["txID"] = proto.txid(tx["raw_data"])
        signature = eth_keys.PrivateKey(self.faucet_key).sign_msg_hash(bytes.fromhex(tx["txID"])).to_bytes()
        tx["signature"] = [signature.hex()]
        return self.push(tx)
