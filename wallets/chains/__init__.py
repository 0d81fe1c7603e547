"""Chain adapters and signers, chosen by configuration.

``get_adapter()`` returns the adapter for ``settings.CHAINS_ADAPTER`` (default ``"sandbox"``: the
simulated chains at ``settings.CHAINS_API_URL``); ``get_signer()`` the signer (default local).
"""

from __future__ import annotations

from functools import lru_cache

from django.conf import settings

from wallets.chains.base import ChainAdapter, ChainRejected, ChainUnavailable
from wallets.chains.sandbox import SandboxChainAdapter
from wallets.chains.signer import LocalSigner, Signer

__all__ = ["ChainAdapter", "ChainRejected", "ChainUnavailable", "get_adapter", "get_signer"]


@lru_cache(maxsize=8)
def _sandbox_adapter(url: str, timeout: float) -> ChainAdapter:
    return SandboxChainAdapter(url, read_timeout=timeout)


def get_adapter() -> ChainAdapter:
    kind = getattr(settings, "CHAINS_ADAPTER", "sandbox")
    if kind != "sandbox":
        raise RuntimeError(f"unknown CHAINS_ADAPTER {kind!r}")
    return _sandbox_adapter(settings.CHAINS_API_URL, float(getattr(settings, "CHAINS_API_TIMEOUT", 5.0)))


def get_signer() -> Signer:
    return LocalSigner()
