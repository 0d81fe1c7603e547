"""Static facts about the chains (what cannot change at run time); limits live in ``ChainConfig``."""

from __future__ import annotations

from decimal import Decimal

TOKENS: dict[str, tuple[str, ...]] = {
    "TRON": ("USDT",),
    "ETH": ("USDT", "USDC"),
    "SOL": ("USDT", "USDC"),
    "ARBITRUM": ("USDC",),
}
NATIVE: dict[str, str] = {"TRON": "TRX", "ETH": "ETH", "SOL": "SOL", "ARBITRUM": "ETH"}
NATIVE_DECIMALS: dict[str, int] = {"TRON": 6, "ETH": 18, "SOL": 9, "ARBITRUM": 18}
TOKEN_DECIMALS = 6
# SOL counts confirmations past the finalized slot (wallets.chains.solana): 1 = finalized
CONFIRMATIONS: dict[str, int] = {"TRON": 19, "ETH": 12, "SOL": 1, "ARBITRUM": 12}
# Gas reserved per token transfer when a deposit address must be topped up before a sweep.
DEFAULT_TOKEN_FEE: dict[str, Decimal] = {
    "TRON": Decimal("13.8"),
    "ETH": Decimal("0.0013"),
    "SOL": Decimal("0.000005"),
    "ARBITRUM": Decimal("0.000012"),
}


def decimals(chain: str, asset: str) -> int:
    return NATIVE_DECIMALS[chain] if asset == NATIVE[chain] and asset not in TOKENS[chain] else TOKEN_DECIMALS


def custody_sub(chain: str, asset: str) -> str:
    """Sub-account of a custody ledger account: ``"TRON:USDT"``."""
    return f"{chain}:{asset}"
