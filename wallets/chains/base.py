"""The chain adapter interface. ``wallets.chains.get_adapter()`` routes each call by its ``chain`` to the
adapter configured for that chain (``settings.CHAIN_ADAPTERS``; registry in ``wallets.chains``):
``evm`` (ETH, ARBITRUM: JSON-RPC to a node, ``wallets.chains.evm``), ``tron`` (tronpy on the full node's
HTTP API and TronGrid, ``wallets.chains.tron``) and ``solana`` (solana-py on JSON-RPC,
``wallets.chains.solana``).

Two families of chain:

* Expiring chains (``tron``, ``solana``): the adapter builds a transaction on a recent reference block /
  blockhash, the signer signs it, and the signed bytes are stored before they are broadcast
  (``wallets.services.expiring_txs``); an expired one is re-signed.
* Account-nonce chains (``evm``; ``NonceChainAdapter``): the adapter builds an unsigned transaction for a
  given account nonce (``prepare_transfer``), the signer signs it (``Signer.sign_transaction``), and the
  signed bytes are stored before they are broadcast (``wallets.services.chain_txs``), so a retry after a
  crash re-broadcasts the same bytes and never spends a second nonce.

``tx().status``: ``pending`` (known, not in a block), ``confirmed`` (in a block, succeeded), ``failed``
(in a block, reverted: receipt status 0 — the money did not move, gas was spent), ``dropped``,
``unknown``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol


class ChainUnavailable(Exception):
    """Transient: timeout, connection refused, 5xx. Retry later; nothing is known to have happened."""


class ChainRejected(Exception):
    """The chain refused the request (4xx): ``code`` is the chain's reason (insufficient_balance …)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class IncomingTransfer:
    tx_hash: str
    log_index: int
    block: int | None
    confirmations: int
    sender: str
    to: str
    asset: str
    amount: Decimal
    block_hash: str = (
        ""  # reorg detection: the deposit's block must still be the chain's block at that height
    )


@dataclass(frozen=True)
class ScanResult:
    transfers: list[IncomingTransfer]
    covered_height: int  # last height fully covered by this answer
    tip: int


@dataclass(frozen=True)
class TxInfo:
    tx_hash: str
    status: str  # pending | confirmed | dropped | unknown
    confirmations: int
    block: int | None
    fee: Decimal
    fee_asset: str
    block_hash: str = ""
    nonce: int | None = None


@dataclass(frozen=True)
class UnsignedTx:
    """A transaction for the signer: ``fields`` in the chain's own form (EVM: the EIP-1559 dict that
    ``eth_account`` signs — type 2, chainId, nonce, to, value, data, gas, maxFeePerGas,
    maxPriorityFeePerGas, all integers/hex)."""

    chain: str
    sender: str
    nonce: int
    fields: dict[str, Any]


@dataclass(frozen=True)
class SignedTx:
    raw: str  # 0x-hex of the signed bytes, exactly what is broadcast
    tx_hash: str


@dataclass(frozen=True)
class BroadcastResult:
    tx_hash: str
    status: str
    duplicate: bool


class ChainAdapter(Protocol):
    def height(self, chain: str) -> int: ...

    def scan(self, chain: str, *, from_height: int, to_height: int | None = None) -> ScanResult:
        """Token transfers in blocks ``from_height..`` (every recipient; callers match their addresses)."""
        ...

    def broadcast(self, chain: str, payload: dict[str, Any]) -> BroadcastResult:
        """Submit a signed transfer. Re-submitting the identical payload is harmless (same tx id)."""
        ...

    def tx(self, chain: str, tx_hash: str) -> TxInfo: ...

    def balance(self, chain: str, address: str, asset: str) -> Decimal: ...

    def token_transfer_fee(self, chain: str) -> Decimal:
        """Native coin burnt by one token transfer (to pre-fund gas)."""
        ...


class NonceChainAdapter(ChainAdapter, Protocol):
    """An account-nonce chain (EVM). Broadcast payloads carry ``raw`` (the signed bytes) and ``tx_hash``."""

    def next_nonce(self, chain: str, address: str) -> int:
        """The account's next nonce counting the node's pending transactions."""
        ...

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
        """An unsigned transfer of ``amount`` ``asset`` (token or native coin). ``min_fees`` =
        (maxFeePerGas, maxPriorityFeePerGas) a replacement must exceed; ``max_fee_cap`` in wei."""
        ...

    def block_hash(self, chain: str, height: int) -> str | None:
        """The chain's current block hash at ``height`` (None above the tip)."""
        ...
