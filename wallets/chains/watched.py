"""The addresses a per-address chain adapter watches for deposits (TRON's TronGrid listing and Solana's
``getSignaturesForAddress`` are asked per address; EVM logs are not)."""

from __future__ import annotations

from wallets.models import DepositAddress


def deposit_addresses(chain: str) -> list[str]:
    return list(DepositAddress.objects.filter(chain=chain).order_by("id").values_list("address", flat=True))
