"""The programs the Solana stand-in executes, on a copy-on-write view of the accounts: System
``Transfer``, SPL Token ``Transfer``/``TransferChecked``, Associated Token Account ``Create``/
``CreateIdempotent`` (the new token account's rent is paid by the payer) and Compute Budget (accepted).
Errors are Solana's ``TransactionError`` values in their RPC JSON form (``{"InstructionError": [i,
{"Custom": 1}]}`` for the token program's ``InsufficientFunds`` …)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import Any

from solders.pubkey import Pubkey

SYSTEM = "11111111111111111111111111111111"
TOKEN = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"  # noqa: S105 - the SPL Token program id
ATA = "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"
COMPUTE_BUDGET = "ComputeBudget111111111111111111111111111111"
MEMO = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"
TOKEN_ACCOUNT_SIZE = 165
MINT_SIZE = 82
# token program errors (spl_token::error::TokenError)
INSUFFICIENT_FUNDS, MINT_MISMATCH, OWNER_MISMATCH, DECIMALS_MISMATCH = 1, 3, 4, 18


def rent_exempt(size: int) -> int:
    return (128 + size) * 3480 * 2


@dataclass(frozen=True)
class Account:
    lamports: int = 0
    owner: str = SYSTEM
    mint: str = ""  # token accounts: mint, token owner, amount
    token_owner: str = ""
    amount: int = 0
    decimals: int = -1  # mint accounts: decimals (>= 0)

    @property
    def is_token_account(self) -> bool:
        return bool(self.mint)

    def data(self) -> bytes:
        if self.is_token_account:
            return (
                bytes(Pubkey.from_string(self.mint))
                + bytes(Pubkey.from_string(self.token_owner))
                + struct.pack("<Q", self.amount)
                + b"\0" * 36  # delegate: None
                + b"\x01"  # state: Initialized
                + b"\0" * 12  # is_native: None
                + b"\0" * 8  # delegated_amount
                + b"\0" * 36  # close_authority: None
            )
        if self.decimals >= 0:
            return b"\0" * 36 + struct.pack("<Q", 10**15) + bytes([self.decimals, 1]) + b"\0" * 36
        return b""


def ata_address(owner: str, mint: str) -> str:
    address, _ = Pubkey.find_program_address(
        [bytes(Pubkey.from_string(owner)), bytes(Pubkey.from_string(TOKEN)), bytes(Pubkey.from_string(mint))],
        Pubkey.from_string(ATA),
    )
    return str(address)


class InstructionFailed(Exception):
    def __init__(self, index: int, error: Any, log: str):
        super().__init__(log)
        self.error = {"InstructionError": [index, error]}
        self.log = log


class Bank:
    """A copy-on-write view: ``read(key)`` from the base, ``write`` into ``changes``."""

    def __init__(self, read: Any):
        self._read = read
        self.changes: dict[str, Account | None] = {}

    def get(self, key: str) -> Account | None:
        return self.changes[key] if key in self.changes else self._read(key)

    def put(self, key: str, account: Account | None) -> None:
        self.changes[key] = account


def execute(
    bank: Bank, index: int, program: str, accounts: list[str], data: bytes, signers: set[str], logs: list[str]
) -> int:
    """Run one instruction; returns compute units. Raises ``InstructionFailed``."""
    logs.append(f"Program {program} invoke [1]")
    if program in (COMPUTE_BUDGET, MEMO):
        logs.append(f"Program {program} success")
        return 150
    if program == SYSTEM:
        units = _system(bank, index, accounts, data, signers)
    elif program == TOKEN:
        units = _token(bank, index, accounts, data, signers, logs)
    elif program == ATA:
        units = _ata(bank, index, accounts, data, signers, logs)
    else:
        raise InstructionFailed(index, "UnsupportedProgramId", f"Program {program} is not supported")
    logs.append(f"Program {program} consumed {units} of 200000 compute units")
    logs.append(f"Program {program} success")
    return units


def _system(bank: Bank, index: int, accounts: list[str], data: bytes, signers: set[str]) -> int:
    if len(data) != 12 or struct.unpack_from("<I", data)[0] != 2 or len(accounts) < 2:
        raise InstructionFailed(index, "InvalidInstructionData", "system: only Transfer is supported")
    lamports = struct.unpack_from("<Q", data, 4)[0]
    source, dest = accounts[0], accounts[1]
    if source not in signers:
        raise InstructionFailed(index, "MissingRequiredSignature", "system: the sender must sign")
    src = bank.get(source) or Account()
    if src.owner != SYSTEM or src.mint:
        raise InstructionFailed(index, {"Custom": 3}, "Transfer: `from` must not carry data")
    if src.lamports < lamports:
        raise InstructionFailed(
            index, {"Custom": 1}, f"Transfer: insufficient lamports {src.lamports}, need {lamports}"
        )
    bank.put(source, replace(src, lamports=src.lamports - lamports))
    dst = bank.get(dest) or Account()
    bank.put(dest, replace(dst, lamports=dst.lamports + lamports))
    return 150


def _token(
    bank: Bank, index: int, accounts: list[str], data: bytes, signers: set[str], logs: list[str]
) -> int:
    if data[:1] == b"\x03" and len(data) == 9 and len(accounts) >= 3:
        logs.append("Program log: Instruction: Transfer")
        source, dest, authority = accounts[0], accounts[1], accounts[2]
        mint, decimals = None, None
    elif data[:1] == b"\x0c" and len(data) == 10 and len(accounts) >= 4:
        logs.append("Program log: Instruction: TransferChecked")
        source, mint, dest, authority = accounts[0], accounts[1], accounts[2], accounts[3]
        decimals = data[9]
    else:
        raise InstructionFailed(index, "InvalidInstructionData", "token: only Transfer and TransferChecked")
    amount = struct.unpack_from("<Q", data, 1)[0]
    src, dst = bank.get(source), bank.get(dest)
    if src is None or dst is None or src.owner != TOKEN or dst.owner != TOKEN or not (src.mint and dst.mint):
        raise InstructionFailed(index, "InvalidAccountData", "Program log: Error: InvalidAccountData")
    if src.mint != dst.mint or (mint is not None and mint != src.mint):
        raise InstructionFailed(
            index, {"Custom": MINT_MISMATCH}, "Program log: Error: Account not associated with this Mint"
        )
    if mint is not None:
        mint_account = bank.get(mint)
        if mint_account is None or mint_account.decimals != decimals:
            raise InstructionFailed(
                index, {"Custom": DECIMALS_MISMATCH}, "Program log: Error: decimals mismatch"
            )
    if authority != src.token_owner:
        raise InstructionFailed(index, {"Custom": OWNER_MISMATCH}, "Program log: Error: owner does not match")
    if authority not in signers:
        raise InstructionFailed(index, "MissingRequiredSignature", "Program log: Error: owner did not sign")
    if src.amount < amount:
        raise InstructionFailed(
            index, {"Custom": INSUFFICIENT_FUNDS}, "Program log: Error: insufficient funds"
        )
    bank.put(source, replace(src, amount=src.amount - amount))
    dst = bank.get(dest) or dst
    bank.put(dest, replace(dst, amount=dst.amount + amount))
    return 4_644 if mint is None else 6_199


def _ata(bank: Bank, index: int, accounts: list[str], data: bytes, signers: set[str], logs: list[str]) -> int:
    if data not in (b"", b"\x00", b"\x01") or len(accounts) < 6:
        raise InstructionFailed(
            index, "InvalidInstructionData", "associated token: only Create/CreateIdempotent"
        )
    payer, address, wallet, mint = accounts[0], accounts[1], accounts[2], accounts[3]
    logs.append("Program log: Create" if data != b"\x01" else "Program log: CreateIdempotent")
    if address != ata_address(wallet, mint):
        raise InstructionFailed(
            index, "InvalidSeeds", "Program log: Error: Associated address does not match seed derivation"
        )
    existing = bank.get(address)
    if existing is not None and existing.is_token_account:
        if data == b"\x01" and existing.mint == mint and existing.token_owner == wallet:
            return 3_000
        raise InstructionFailed(index, "IllegalOwner", "Program log: Error: account already in use")
    mint_account = bank.get(mint)
    if mint_account is None or mint_account.decimals < 0:
        raise InstructionFailed(index, "InvalidAccountData", "Program log: Error: not a mint")
    if payer not in signers:
        raise InstructionFailed(index, "MissingRequiredSignature", "associated token: the payer must sign")
    rent = rent_exempt(TOKEN_ACCOUNT_SIZE)
    payer_account = bank.get(payer) or Account()
    have = existing.lamports if existing else 0
    need = max(0, rent - have)
    if payer_account.lamports < need:
        raise InstructionFailed(
            index, {"Custom": 1}, f"Transfer: insufficient lamports {payer_account.lamports}, need {need}"
        )
    bank.put(payer, replace(payer_account, lamports=payer_account.lamports - need))
    bank.put(address, Account(lamports=have + need, owner=TOKEN, mint=mint, token_owner=wallet))
    return 21_990
