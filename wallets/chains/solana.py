"""Solana over its JSON-RPC with ``solana`` (solana-py's ``AsyncClient``, driven from one private event
loop thread so the services can call it synchronously) and ``solders`` (keys, messages,
transactions), at ``settings.SOLANA_RPC_URL``.

* Heights are slots. Deposits: per deposit address and mint (USDT, USDC), the signatures touching its
  associated token account (``getSignaturesForAddress`` at ``confirmed``), each transaction's
  ``preTokenBalances``/``postTokenBalances`` giving the amount that arrived (``getTransaction``);
  keyed by (signature, the token account's index in the message). Credited at **finalized**:
  ``confirmations`` counts slots past finality (0 until the slot is finalized, then finalized slot −
  slot + 1), so ``ChainConfig.confirmations`` = 1 means "finalized".
* Sending: a legacy message with the recipient's associated token account created if missing
  (``CreateIdempotent``; the payer pays its rent) and SPL Token ``TransferChecked`` — or a System
  ``Transfer`` for SOL top-ups, which leave a fresh deposit owner rent-exempt — on the latest
  ``confirmed`` blockhash; ``sign`` signs the message
  (ed25519, ``solders``); ``broadcast`` re-sends the stored bytes (preflight at ``confirmed``). A
  signature the cluster already has is success. ``BlockhashNotFound`` with the *finalized* block
  height past the message's ``lastValidBlockHeight`` and the signature unknown means it can never
  land: ``ChainRejected("expired")``, and the caller re-signs (``wallets.services.expiring_txs``).
* ``tx``: ``getSignatureStatuses`` (history searched): an ``err`` is ``failed`` (fee paid, no token
  moved), otherwise ``confirmed``; the fee is the fee payer's lamports spent (fee and any rent).
"""

from __future__ import annotations

import asyncio
import base64
import os
import threading
from collections.abc import Callable, Coroutine, Iterable
from decimal import Decimal
from functools import lru_cache
from typing import Any, TypeVar

import httpx2
from django.conf import settings
from solana.exceptions import SolanaRpcException
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed, Finalized
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

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

MINTS = {
    "USDT": Pubkey.from_string("Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB"),
    "USDC": Pubkey.from_string("EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"),
}
TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
ATA_PROGRAM = Pubkey.from_string("ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL")
SYSTEM_PROGRAM = Pubkey.from_string("11111111111111111111111111111111")
LAMPORTS = Decimal(10**9)
UNITS = Decimal(10**6)
TOKEN_DECIMALS = 6
FEE_PER_SIGNATURE = 5_000
PAGE = 1_000
T = TypeVar("T")


def ata(owner: Pubkey, mint: Pubkey) -> Pubkey:
    return Pubkey.find_program_address([bytes(owner), bytes(TOKEN_PROGRAM), bytes(mint)], ATA_PROGRAM)[0]


def units(amount: Decimal, scale: Decimal) -> int:
    raw = amount * scale
    if raw != raw.to_integral_value() or raw <= 0:
        raise ChainRejected("invalid_amount", f"{amount} does not fit the asset's decimals")
    return int(raw)


def transfer_instructions(sender: Pubkey, to: Pubkey, asset: str, amount: Decimal) -> list[Instruction]:
    if asset == "SOL":
        return [transfer(TransferParams(from_pubkey=sender, to_pubkey=to, lamports=units(amount, LAMPORTS)))]
    mint = MINTS.get(asset)
    if mint is None:
        raise ChainRejected("unknown_asset", f"SOL has no {asset}")
    create = Instruction(
        ATA_PROGRAM,
        bytes([1]),  # CreateIdempotent: a no-op when the account exists
        [
            AccountMeta(sender, True, True),
            AccountMeta(ata(to, mint), False, True),
            AccountMeta(to, False, False),
            AccountMeta(mint, False, False),
            AccountMeta(SYSTEM_PROGRAM, False, False),
            AccountMeta(TOKEN_PROGRAM, False, False),
        ],
    )
    data = bytes([12]) + units(amount, UNITS).to_bytes(8, "little") + bytes([TOKEN_DECIMALS])
    move = Instruction(
        TOKEN_PROGRAM,
        data,  # TransferChecked
        [
            AccountMeta(ata(sender, mint), False, True),
            AccountMeta(mint, False, False),
            AccountMeta(ata(to, mint), False, True),
            AccountMeta(sender, True, False),
        ],
    )
    return [create, move]


class SolanaAdapter:
    uses_account_nonces = False
    expiring = True  # a transaction lives until its blockhash expires; an expired one is re-signed

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        watched: Callable[[str], Iterable[str]] = deposit_addresses,
    ):
        self.url = url
        self.timeout = timeout
        self.watched = watched
        self._lock = threading.Lock()
        self._pid = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: AsyncClient | None = None

    # ---- plumbing: one event loop thread per process ----
    def _run(self, make: Callable[[AsyncClient], Coroutine[Any, Any, T]]) -> T:
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="solana-rpc", daemon=True).start()
                self._loop, self._pid = loop, os.getpid()
                self._client = AsyncClient(self.url, timeout=self.timeout)
        assert self._loop is not None and self._client is not None
        client = self._client
        future = asyncio.run_coroutine_threadsafe(make(client), self._loop)
        try:
            return future.result(self.timeout + 5)
        except RPCException:
            raise
        except (SolanaRpcException, httpx2.HTTPError, OSError, TimeoutError) as exc:
            raise ChainUnavailable(f"SOL RPC: {type(exc).__name__}: {exc}") from exc
        except BaseException as exc:
            # solders panics (pyo3's PanicException, a BaseException) on an answer it cannot parse, e.g. an
            # error object without the fields it expects: the node said nothing we can act on
            if type(exc).__name__ != "PanicException":
                raise
            raise ChainUnavailable(f"SOL RPC: unreadable answer: {exc}") from exc

    def _slots(self) -> tuple[int, int]:
        async def both(client: AsyncClient) -> tuple[int, int]:
            return (await client.get_slot(Confirmed)).value, (await client.get_slot(Finalized)).value

        return self._run(both)

    # ---- ChainAdapter ----
    def height(self, chain: str) -> int:
        return self._slots()[0]

    def block_hash(self, chain: str, height: int) -> str | None:
        return None  # a finalized slot is final: no deep-reorg check to make

    def token_transfer_fee(self, chain: str) -> Decimal:
        """The fee of one signature plus the rent-exempt minimum of a system account: a fresh deposit
        owner must end its top-up (and every sweep it pays for) rent-exempt, or the cluster refuses."""
        minimum = self._run(lambda c: c.get_minimum_balance_for_rent_exemption(0, Confirmed)).value
        return Decimal(FEE_PER_SIGNATURE + int(minimum)) / LAMPORTS

    def balance(self, chain: str, address: str, asset: str) -> Decimal:
        owner = Pubkey.from_string(address)
        if asset == "SOL":
            return Decimal(self._run(lambda c: c.get_balance(owner, Confirmed)).value) / LAMPORTS
        mint = MINTS.get(asset)
        if mint is None:
            raise ChainRejected("unknown_asset", f"SOL has no {asset}")
        try:
            answer = self._run(lambda c: c.get_token_account_balance(ata(owner, mint), Confirmed))
        except RPCException:
            return Decimal(0)  # no token account yet
        return Decimal(answer.value.amount) / UNITS

    def _confirmations(self, slot: int, finalized: int) -> int:
        return finalized - slot + 1 if slot <= finalized else 0

    def scan(self, chain: str, *, from_height: int, to_height: int | None = None) -> ScanResult:
        tip, finalized = self._slots()
        end = tip if to_height is None else min(to_height, tip)
        transfers: list[IncomingTransfer] = []
        if end < from_height:
            return ScanResult(transfers, end, tip)
        for address in self.watched(chain):
            owner = Pubkey.from_string(address)
            for asset, mint in MINTS.items():
                account = ata(owner, mint)
                for signature, slot in self._signatures(account, from_height, end):
                    transfers += self._arrivals(signature, slot, account, address, asset, finalized)
        return ScanResult(transfers, end, tip)

    def _signatures(self, account: Pubkey, low: int, high: int) -> list[tuple[Signature, int]]:
        found: list[tuple[Signature, int]] = []
        before: Signature | None = None
        while True:
            page = self._run(
                lambda c, before=before: c.get_signatures_for_address(
                    account, before=before, limit=PAGE, commitment=Confirmed
                )
            ).value
            for item in page:
                if item.err is None and low <= item.slot <= high:
                    found.append((item.signature, item.slot))
            if len(page) < PAGE or page[-1].slot < low:
                return found
            before = page[-1].signature

    def _arrivals(
        self, signature: Signature, slot: int, account: Pubkey, owner: str, asset: str, finalized: int
    ) -> list[IncomingTransfer]:
        got = self._run(lambda c: c.get_transaction(signature, "json", Confirmed, 0)).value
        if got is None or got.transaction.meta is None or got.transaction.meta.err is not None:
            return []
        meta = got.transaction.meta
        keys = [str(k) for k in got.transaction.transaction.message.account_keys]
        if str(account) not in keys:
            return []
        index = keys.index(str(account))
        before = {b.account_index: int(b.ui_token_amount.amount) for b in meta.pre_token_balances or []}
        after = {b.account_index: int(b.ui_token_amount.amount) for b in meta.post_token_balances or []}
        owners = {b.account_index: str(b.owner) for b in meta.post_token_balances or []}
        received = after.get(index, 0) - before.get(index, 0)
        if received <= 0:
            return []
        spent = [i for i in before if after.get(i, 0) < before[i]]
        sender = owners.get(spent[0], keys[0]) if spent else keys[0]
        return [
            IncomingTransfer(
                tx_hash=str(signature),
                log_index=index,
                block=slot,
                confirmations=self._confirmations(slot, finalized),
                sender=sender,
                to=owner,
                asset=asset,
                amount=Decimal(received) / UNITS,
            )
        ]

    def tx(self, chain: str, tx_hash: str) -> TxInfo:
        signature = Signature.from_string(tx_hash)
        status = self._run(lambda c: c.get_signature_statuses([signature], search_transaction_history=True))
        found = status.value[0]
        if found is None:
            return TxInfo(tx_hash, "unknown", 0, None, Decimal(0), "SOL")
        _, finalized = self._slots()
        fee = Decimal(0)
        got = self._run(lambda c: c.get_transaction(signature, "json", Confirmed, 0)).value
        if got is not None and got.transaction.meta is not None:
            meta = got.transaction.meta
            fee = Decimal(meta.pre_balances[0] - meta.post_balances[0]) / LAMPORTS
        return TxInfo(
            tx_hash,
            "failed" if found.err is not None else "confirmed",
            self._confirmations(found.slot, finalized),
            found.slot,
            fee,
            "SOL",
        )

    # ---- sending ----
    def prepare_transfer(
        self, chain: str, *, sender: str, asset: str, to: str, amount: Decimal, **_: Any
    ) -> UnsignedTx:
        payer = Pubkey.from_string(sender)
        instructions = transfer_instructions(payer, Pubkey.from_string(to), asset, amount)
        latest = self._run(lambda c: c.get_latest_blockhash(Confirmed)).value
        message = Message.new_with_blockhash(instructions, payer, latest.blockhash)
        fields = {
            "message": base64.b64encode(bytes(message)).decode(),
            "blockhash": str(latest.blockhash),
            "last_valid_block_height": latest.last_valid_block_height,
        }
        return UnsignedTx(chain=chain, sender=sender, nonce=0, fields=fields)

    def broadcast(self, chain: str, payload: dict[str, Any]) -> BroadcastResult:
        if "raw" not in payload:  # signed for the retired simulated chains (a local database from before)
            raise ChainRejected("invalid_payload", "not a signed transaction of this chain")
        raw = base64.b64decode(payload["raw"])
        signature = VersionedTransaction.from_bytes(raw).signatures[0]
        known = self.tx(chain, str(signature))
        if known.status != "unknown":
            return BroadcastResult(str(signature), known.status, True)
        try:
            opts = TxOpts(preflight_commitment=Confirmed, skip_confirmation=True)
            self._run(lambda c: c.send_raw_transaction(raw, opts))
        except RPCException as exc:
            self._refused(chain, payload, str(signature), exc)
        return BroadcastResult(str(signature), "pending", False)

    def _refused(self, chain: str, payload: dict[str, Any], signature: str, exc: RPCException) -> None:
        error = exc.args[0] if exc.args else exc
        text = f"{getattr(error, 'message', '')} {getattr(getattr(error, 'data', None), 'err', '')} {error!r}"
        if "AlreadyProcessed" in text:
            return
        if "BlockhashNotFound" in text or "Blockhash not found" in text:
            finalized_height = self._run(lambda c: c.get_block_height(Finalized)).value
            expired = finalized_height > int(payload.get("last_valid_block_height", 2**63))
            if expired and self.tx(chain, signature).status == "unknown":
                raise ChainRejected("expired", "blockhash expired") from exc
            raise ChainUnavailable("blockhash not found yet not expired at finalized: retry") from exc
        if "SignatureVerification" in text:
            raise ChainRejected("bad_signature", text[:200]) from exc
        if "InsufficientFundsForFee" in text or "AccountNotFound" in text:
            raise ChainRejected("insufficient_gas", text[:200]) from exc
        if "InstructionError" in text:
            code = "insufficient_balance" if "Custom(1)" in text or "'Custom': 1" in text else "rejected"
            raise ChainRejected(code, text[:200]) from exc
        if "NodeUnhealthy" in text or "unhealthy" in text:
            raise ChainUnavailable(text[:200]) from exc
        raise ChainRejected("rejected", text[:200]) from exc


def sign(tx: UnsignedTx, private_key: bytes) -> SignedTx:
    """Sign the message with ``solders`` (ed25519); the signer calls this."""
    keypair = Keypair.from_seed(private_key)
    if str(keypair.pubkey()) != tx.sender:
        raise ValueError("the transaction's sender is not this key's address")
    message = Message.from_bytes(base64.b64decode(tx.fields["message"]))
    signed = VersionedTransaction(message, [keypair])
    return SignedTx(raw=base64.b64encode(bytes(signed)).decode(), tx_hash=str(signed.signatures[0]))


@lru_cache(maxsize=4)
def _cached(url: str, timeout: float) -> SolanaAdapter:
    return SolanaAdapter(url, timeout=timeout)


def solana_adapter(chain: str) -> SolanaAdapter:
    """The Solana RPC at ``settings.SOLANA_RPC_URL``."""
    return _cached(settings.SOLANA_RPC_URL, float(getattr(settings, "SOLANA_RPC_TIMEOUT", 10.0)))
