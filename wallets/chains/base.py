"""The chain adapter interface. The default adapter talks to the local simulated chains over HTTP
(``wallets.chains.sandbox``); a real node/indexer adapter plugs in by configuration."""

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
