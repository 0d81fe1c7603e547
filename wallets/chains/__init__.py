"""Chain adapters and signers, chosen by configuration.

``get_adapter()`` returns a router that sends each call to the adapter configured for its ``chain``:
``settings.CHAIN_ADAPTERS`` maps a chain to an adapter kind (``{"ETH": "evm", "ARBITRUM": "evm",
"TRON": "tron", "SOL": "solana"}`` by default: ``wallets.chains.tron`` on tronpy, ``wallets.chains.solana``
on solana-py and solders), and ``ADAPTER_FACTORIES`` maps a kind to the
function that builds the adapter of a chain from the settings (built once per chain and settings).
A new chain family registers its factory here (one line) and is named in ``CHAIN_ADAPTERS``.
``get_signer()`` returns the signer (local).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.conf import settings

from wallets.chains.base import (
    BroadcastResult,
    ChainAdapter,
    ChainRejected,
    ChainUnavailable,
    NonceChainAdapter,
    ScanResult,
    TxInfo,
)
from wallets.chains.evm import evm_adapter
from wallets.chains.signer import LocalSigner, Signer
from wallets.chains.solana import solana_adapter
from wallets.chains.tron import tron_adapter

__all__ = [
    "ADAPTER_FACTORIES",
    "ChainAdapter",
    "ChainRejected",
    "ChainUnavailable",
    "NonceChainAdapter",
    "adapter_for",
    "get_adapter",
    "get_signer",
    "nonce_adapter",
]

DEFAULT_CHAIN_ADAPTERS = {"ETH": "evm", "ARBITRUM": "evm", "TRON": "tron", "SOL": "solana"}

# kind -> factory(chain) building that chain's adapter from the settings (each factory caches its own)
ADAPTER_FACTORIES: dict[str, Callable[[str], ChainAdapter]] = {
    "evm": evm_adapter,
    "tron": tron_adapter,
    "solana": solana_adapter,
}


def adapter_kind(chain: str) -> str:
    kinds = {**DEFAULT_CHAIN_ADAPTERS, **getattr(settings, "CHAIN_ADAPTERS", {})}
    kind = kinds.get(chain)
    if kind not in ADAPTER_FACTORIES:
        raise RuntimeError(f"no chain adapter {kind!r} for {chain!r}")
    return str(kind)


def adapter_for(chain: str) -> ChainAdapter:
    return ADAPTER_FACTORIES[adapter_kind(chain)](chain)


def nonce_adapter(chain: str) -> NonceChainAdapter | None:
    """The chain's adapter when it is an account-nonce chain (EVM), else None."""
    adapter = adapter_for(chain)
    return adapter if getattr(adapter, "uses_account_nonces", False) else None  # type: ignore[return-value]


class ChainRouter:
    """The ``ChainAdapter`` the services use: every call goes to its chain's adapter."""

    def height(self, chain: str) -> int:
        return adapter_for(chain).height(chain)

    def scan(self, chain: str, *, from_height: int, to_height: int | None = None) -> ScanResult:
        return adapter_for(chain).scan(chain, from_height=from_height, to_height=to_height)

    def broadcast(self, chain: str, payload: dict[str, Any]) -> BroadcastResult:
        return adapter_for(chain).broadcast(chain, payload)

    def tx(self, chain: str, tx_hash: str) -> TxInfo:
        return adapter_for(chain).tx(chain, tx_hash)

    def balance(self, chain: str, address: str, asset: str) -> Decimal:
        return adapter_for(chain).balance(chain, address, asset)

    def token_transfer_fee(self, chain: str) -> Decimal:
        return adapter_for(chain).token_transfer_fee(chain)


_ROUTER = ChainRouter()


def get_adapter() -> ChainAdapter:
    return _ROUTER


def get_signer() -> Signer:
    return LocalSigner()
