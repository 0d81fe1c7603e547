"""Static description of the four simulated chains: assets, decimals, default fees and block times."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

TOKEN_DECIMALS = 6


@dataclass(frozen=True)
class ChainSpec:
    code: str  # canonical id used in URLs (case-insensitive, aliases allowed) and in signed messages
    name: str
    curve: str  # "secp256k1" or "ed25519"
    native: str  # gas coin symbol
    native_decimals: int
    tokens: tuple[str, ...]
    block_interval: float  # seconds, default
    token_transfer_fee: Decimal  # native coin burnt per token transfer
    native_transfer_fee: Decimal  # native coin burnt per native transfer
    start_height: int

    @property
    def assets(self) -> tuple[str, ...]:
        return (*self.tokens, self.native)

    def decimals(self, asset: str) -> int:
        if asset == self.native:
            return self.native_decimals
        if asset in self.tokens:
            return TOKEN_DECIMALS
        raise KeyError(asset)


CHAIN_SPECS: dict[str, ChainSpec] = {
    spec.code: spec
    for spec in (
        ChainSpec(
            code="TRON",
            name="TRON",
            curve="secp256k1",
            native="TRX",
            native_decimals=6,
            tokens=("USDT",),
            block_interval=1.0,
            token_transfer_fee=Decimal("13.8"),  # USDT TRC20 transfer without staked energy
            native_transfer_fee=Decimal("0.27"),
            start_height=60_000,
        ),
        ChainSpec(
            code="ETH",
            name="Ethereum",
            curve="secp256k1",
            native="ETH",
            native_decimals=18,
            tokens=("USDT", "USDC"),
            block_interval=1.0,
            token_transfer_fee=Decimal("0.0013"),  # ~65k gas at 20 gwei
            native_transfer_fee=Decimal("0.00042"),  # 21k gas at 20 gwei
            start_height=19_000,
        ),
        ChainSpec(
            code="SOL",
            name="Solana",
            curve="ed25519",
            native="SOL",
            native_decimals=9,
            tokens=("USDT", "USDC"),
            block_interval=0.4,
            token_transfer_fee=Decimal("0.000005"),
            native_transfer_fee=Decimal("0.000005"),
            start_height=250_000,
        ),
        ChainSpec(
            code="ARBITRUM",
            name="Arbitrum One",
            curve="secp256k1",
            native="ETH",
            native_decimals=18,
            tokens=("USDC",),
            block_interval=0.25,
            token_transfer_fee=Decimal("0.000012"),
            native_transfer_fee=Decimal("0.000005"),
            start_height=180_000,
        ),
    )
}
