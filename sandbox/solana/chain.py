"""The Solana stand-in's ledger: slots (one block each), versioned accounts (so every commitment level
reads its own bank: ``processed`` = the tip, ``confirmed`` = ``confirm_depth`` behind, ``finalized`` =
``finalize_depth`` behind), the status cache of signatures, and transaction execution.

A transaction is accepted as the validator does: wire-format decoding (legacy or v0 without lookup
tables), every required ed25519 signature verified over the message bytes, the recent blockhash one of
the last 150 blocks, the signature not already processed, the fee payer able to pay 5,000 lamports a
signature; then its instructions run atomically (``sandbox.solana.programs``) — a failing one leaves
only the fee paid and the transaction recorded with its error.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from typing import Any

from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from sandbox.solana.programs import (
    ATA,
    MEMO,
    MINT_SIZE,
    SYSTEM,
    TOKEN,
    Account,
    Bank,
    InstructionFailed,
    ata_address,
    execute,
    rent_exempt,
)

USDT_MINT = "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB"
USDC_MINT = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
LAMPORTS_PER_SIGNATURE = 5_000
MAX_PROCESSING_AGE = 150
DEFAULTS: dict[str, Any] = {
    "slot_interval": 0.4,
    "manual": False,
    "start_slot": 300_000_000,
    "skipped_slots": 12_000_000,  # block height = slot - this (slots without a block before genesis)
    "confirm_depth": 1,
    "finalize_depth": 31,
    "genesis": [],
}
COMMITMENTS = ("processed", "confirmed", "finalized")


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


@dataclass
class Slot:
    slot: int
    blockhash: str
    parent: str
    time: int
    signatures: list[str] = field(default_factory=list)


@dataclass
class TxRecord:
    signature: str
    raw: bytes
    slot: int
    err: Any
    fee: int
    pre: dict[str, Account | None]
    post: dict[str, Account | None]
    logs: list[str]
    units: int


def shortvec(data: bytes, offset: int = 0) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7


def b58(data: bytes) -> str:
    return str(Pubkey.from_bytes(data))


class SolanaChain:
    def __init__(self, *, seed: int, config: dict[str, Any]):
        unknown = set(config) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown solana config keys: {sorted(unknown)}")
        self.seed = seed
        self.cfg = {**DEFAULTS, **config}
        start = int(self.cfg["start_slot"])
        genesis_hash = b58(hashlib.sha256(f"solana-{seed}".encode()).digest())
        self.slots: list[Slot] = [Slot(start, genesis_hash, genesis_hash, int(time.time()))]
        self.versions: dict[str, list[tuple[int, Account | None]]] = {}
        self.txs: dict[str, TxRecord] = {}
        self.by_address: dict[str, list[str]] = {}
        self.mempool: list[tuple[str, bytes]] = []
        self.faucet_seed = hashlib.sha256(f"solana-faucet-{seed}".encode()).digest()
        for mint in (USDT_MINT, USDC_MINT):
            self.write(mint, Account(lamports=rent_exempt(MINT_SIZE), owner=TOKEN, decimals=6), start)
        for entry in self.cfg["genesis"]:
            self.fund(entry["address"], int(entry["amount"]), entry.get("mint"))

    # ---- slots and commitment ----
    @property
    def tip(self) -> Slot:
        return self.slots[-1]

    def slot_at(self, commitment: str | None) -> int:
        depth = {
            "processed": 0,
            "confirmed": self.cfg["confirm_depth"],
            "finalized": self.cfg["finalize_depth"],
        }
        commitment = commitment or "finalized"
        if commitment not in depth:
            raise RpcError(-32602, f"Invalid params: unknown commitment {commitment!r}")
        return max(self.slots[0].slot, self.tip.slot - int(depth[commitment]))

    def block_height(self, slot: int) -> int:
        return slot - int(self.cfg["skipped_slots"])

    def slot_record(self, slot: int) -> Slot | None:
        index = slot - self.slots[0].slot
        return self.slots[index] if 0 <= index < len(self.slots) else None

    def status_of(self, slot: int) -> str:
        if slot <= self.slot_at("finalized"):
            return "finalized"
        return "confirmed" if slot <= self.slot_at("confirmed") else "processed"

    # ---- accounts ----
    def read(self, key: str, slot: int | None = None) -> Account | None:
        history = self.versions.get(key)
        if not history:
            return None
        at = self.tip.slot if slot is None else slot
        for version_slot, account in reversed(history):
            if version_slot <= at:
                return account
        return None

    def write(self, key: str, account: Account | None, slot: int) -> None:
        history = self.versions.setdefault(key, [])
        if history and history[-1][0] == slot:
            history[-1] = (slot, account)
        else:
            history.append((slot, account))

    def fund(self, address: str, amount: int, mint: str | None = None) -> str:
        """Faucet (genesis-like, no transaction): lamports, or tokens of ``mint`` into the owner's ATA."""
        slot = self.tip.slot
        if not mint:
            account = self.read(address) or Account()
            self.write(address, replace(account, lamports=account.lamports + amount), slot)
            return address
        ata = ata_address(address, mint)
        token = self.read(ata) or Account(
            lamports=rent_exempt(165), owner=TOKEN, mint=mint, token_owner=address
        )
        self.write(ata, replace(token, amount=token.amount + amount), slot)
        return ata

    # ---- transactions ----
    def decode(self, raw: bytes) -> tuple[VersionedTransaction, bytes, list[str]]:
        try:
            tx = VersionedTransaction.from_bytes(raw)
            count, offset = shortvec(raw)
            message = raw[offset + 64 * count :]
        except Exception as exc:
            raise RpcError(
                -32602, f"invalid transaction: failed to deserialize solana_transaction: {exc}"
            ) from exc
        if getattr(tx.message, "address_table_lookups", None):
            raise RpcError(-32602, "invalid transaction: address table lookups are not supported here")
        return tx, message, [str(k) for k in tx.message.account_keys]

    def verify(self, tx: VersionedTransaction, message: bytes, keys: list[str]) -> None:
        required = tx.message.header.num_required_signatures
        if len(tx.signatures) != required or required == 0:
            raise RpcError(-32003, "Transaction signature verification failure")
        for signature, key in zip(tx.signatures, keys[:required], strict=True):
            if not signature.verify(Pubkey.from_string(key), message):
                raise RpcError(-32003, "Transaction signature verification failure")

    def recent_blockhashes(self, slot: int) -> set[str]:
        end = slot - self.slots[0].slot + 1
        return {s.blockhash for s in self.slots[max(0, end - MAX_PROCESSING_AGE) : end]}

    def run(
        self, tx: VersionedTransaction, keys: list[str], slot: int
    ) -> tuple[Bank, Any, int, list[str], int]:
        """Execute against the bank at ``slot``: (bank, err, fee, logs, units). Raises ``RpcError`` for
        what keeps a transaction out of a block (blockhash, duplicate, fee payer)."""
        signature = str(tx.signatures[0])
        if str(tx.message.recent_blockhash) not in self.recent_blockhashes(slot):
            raise RpcError(-32002, "Transaction simulation failed: Blockhash not found", "BlockhashNotFound")
        if signature in self.txs:
            raise RpcError(
                -32002,
                "Transaction simulation failed: This transaction has already been processed",
                "AlreadyProcessed",
            )
        bank = Bank(lambda k: self.read(k, slot))
        fee = LAMPORTS_PER_SIGNATURE * len(tx.signatures)
        payer = bank.get(keys[0])
        if payer is None:
            raise RpcError(
                -32002,
                "Transaction simulation failed: Attempt to debit an account but found no record of a prior credit.",
                "AccountNotFound",
            )
        left = payer.lamports - fee
        if left < 0 or payer.owner != SYSTEM or 0 < left < rent_exempt(0) <= payer.lamports:
            raise RpcError(
                -32002, "Transaction simulation failed: Insufficient funds for fee", "InsufficientFundsForFee"
            )
        bank.put(keys[0], replace(payer, lamports=payer.lamports - fee))
        after_fee = dict(bank.changes)
        signers = set(keys[: tx.message.header.num_required_signatures])
        logs: list[str] = []
        units, err = 0, None
        try:
            for i, ix in enumerate(tx.message.instructions):
                accounts = [keys[a] for a in bytes(ix.accounts)]
                units += execute(bank, i, keys[ix.program_id_index], accounts, bytes(ix.data), signers, logs)
        except InstructionFailed as exc:
            logs.append(exc.log)
            logs.append(f"Program failed: {exc.error}")
            bank.changes = after_fee
            err = exc.error
        if err is None:
            err = self._rent_state_error(bank, keys, slot)
            if err is not None:
                bank.changes = after_fee
        return bank, err, fee, logs, units

    def _rent_state_error(self, bank: Bank, keys: list[str], slot: int) -> Any:
        """A system account may not end a transaction holding lamports below the rent-exempt minimum
        unless it already did (Solana's rent-state transition rule)."""
        minimum = rent_exempt(0)
        for key, account in bank.changes.items():
            if account is None or account.owner != SYSTEM or account.mint or account.decimals >= 0:
                continue
            before = self.read(key, slot)
            was = before.lamports if before else 0
            if 0 < account.lamports < minimum and not 0 < was < minimum:
                return {"InsufficientFundsForRent": {"account_index": keys.index(key)}}
        return None

    def simulate_send(self, raw: bytes, *, preflight: str | None, skip_preflight: bool) -> str:
        """``sendTransaction``: verify, (preflight at ``preflight``), queue for the next slot."""
        tx, message, keys = self.decode(raw)
        self.verify(tx, message, keys)
        signature = str(tx.signatures[0])
        if not skip_preflight:
            _, err, _, logs, units = self.run(tx, keys, self.slot_at(preflight or "finalized"))
            if err is not None:
                if "InstructionError" in err:
                    text = f"Error processing Instruction {err['InstructionError'][0]}"
                else:
                    index = err["InsufficientFundsForRent"]["account_index"]
                    text = f"Transaction results in an account ({index}) with insufficient funds for rent"
                raise RpcError(
                    -32002,
                    f"Transaction simulation failed: {text}",
                    {"err": err, "logs": logs, "units": units},
                )
        if signature not in self.txs and all(sig != signature for sig, _ in self.mempool):
            self.mempool.append((signature, raw))
        return signature

    def mine(self, count: int = 1) -> list[int]:
        made = []
        for _ in range(count):
            parent = self.tip
            slot = parent.slot + 1
            digest = hashlib.sha256(f"{parent.blockhash}|{slot}|{self.seed}".encode()).digest()
            record = Slot(slot, b58(digest), parent.blockhash, max(int(time.time()), parent.time))
            self.slots.append(record)
            pending, self.mempool = self.mempool, []
            for signature, raw in pending:
                self._include(signature, raw, record)
            made.append(slot)
        return made

    def _include(self, signature: str, raw: bytes, record: Slot) -> None:
        tx, _, keys = self.decode(raw)
        try:  # on the slot's bank as the transactions before it in this block left it
            bank, err, fee, logs, units = self.run(tx, keys, record.slot)
        except RpcError:
            return  # expired blockhash, duplicate, or a fee payer that cannot pay: never lands
        pre = {k: self.read(k, record.slot) for k in keys}
        for key, account in bank.changes.items():
            self.write(key, account, record.slot)
        post = {k: self.read(k, record.slot) for k in keys}
        self.txs[signature] = TxRecord(signature, raw, record.slot, err, fee, pre, post, logs, units)
        record.signatures.append(signature)
        for key in keys:
            self.by_address.setdefault(key, []).append(signature)

    def faucet_transfer(self, owner: str, mint: str, amount: int) -> str:
        """An outside holder pays ``amount`` of ``mint`` to ``owner``'s associated token account (created
        if missing): a real signed transaction, queued for the next slot."""
        payer = Keypair.from_seed(self.faucet_seed)
        me = str(payer.pubkey())
        if (self.read(me) or Account()).lamports < 10**12:
            self.fund(me, 10**15)
            self.fund(me, 10**15, mint)
        source, dest = ata_address(me, mint), ata_address(owner, mint)
        pk = Pubkey.from_string
        ixs = [
            Instruction(
                pk(ATA),
                b"\x01",
                [
                    AccountMeta(payer.pubkey(), True, True),
                    AccountMeta(pk(dest), False, True),
                    AccountMeta(pk(owner), False, False),
                    AccountMeta(pk(mint), False, False),
                    AccountMeta(pk(SYSTEM), False, False),
                    AccountMeta(pk(TOKEN), False, False),
                ],
            ),
            Instruction(
                pk(TOKEN),
                b"\x0c" + amount.to_bytes(8, "little") + bytes([6]),
                [
                    AccountMeta(pk(source), False, True),
                    AccountMeta(pk(mint), False, False),
                    AccountMeta(pk(dest), False, True),
                    AccountMeta(payer.pubkey(), True, False),
                ],
            ),
        ]
        self.faucet_nonce = getattr(self, "faucet_nonce", 0) + 1
        memo = Instruction(pk(MEMO), str(self.faucet_nonce).encode(), [])
        message = Message.new_with_blockhash(
            [*ixs, memo], payer.pubkey(), Hash.from_string(self.tip.blockhash)
        )
        tx = VersionedTransaction(message, [payer])
        return self.simulate_send(bytes(tx), preflight="processed", skip_preflight=False)
