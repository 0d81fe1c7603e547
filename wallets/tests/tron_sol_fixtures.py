"""TRON and Solana on their stand-ins for every suite (a pytest plugin: the root conftest names it).

The test settings route TRON and SOL to their own adapters (tronpy, solana-py), as production does,
with RPC URLs that lead nowhere: a test that moves coins on those chains asks for a stand-in here.

* ``tron`` — the TRON full node + TronGrid stand-in (``sandbox.tron``), one per session, blocks only
  when the test mines; reset to its genesis before each test (as the database is rolled back) and
  wired into the settings.
* ``sol`` — the same for the Solana JSON-RPC stand-in (``sandbox.solana``), slots only when mined.

Both helpers speak the chains' own protocols (tronpy, solana-py) for reads and the stand-ins' control
API for what a real chain does on its own (blocks, faucet, outside senders). Amounts are decimal
strings in the asset's unit. No wallets module is imported at module level: the sandbox and
pure-math suites load this plugin without Django (the wallets modules need the app registry).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solders.pubkey import Pubkey
from tronpy import Tron
from tronpy.providers import HTTPProvider

from sandbox.solana.server import build_app as solana_app
from sandbox.tests.serve import serving
from sandbox.tron.server import build_app as tron_app

SUN = 1_000_000
TOKEN_UNITS = 10**6
LAMPORTS = 10**9


class TronNode:
    """A TRON stand-in: tronpy's client on it, and its control API."""

    chain = "TRON"

    def __init__(self, url: str):
        self.url = url
        self.client = Tron(HTTPProvider(url, timeout=10))

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = requests.post(f"{self.url}/control/{path}", json=body or {}, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def state(self) -> Any:
        return requests.get(f"{self.url}/control/state", timeout=10).json()

    def mine(self, blocks: int = 1) -> None:
        self.control("mine", {"blocks": blocks})

    def fund(self, address: str, asset: str, amount: str | Decimal) -> None:
        """Faucet: ``amount`` TRX or USDT onto ``address`` (no transaction of ours)."""
        self.control("fund", {"address": address, "amount": int(Decimal(amount) * SUN), "asset": asset})

    def deposit(self, to: str, amount: str | Decimal) -> str:
        """An outside holder's signed USDT transfer to ``to`` (in the mempool until mined); its txID."""
        return str(self.control("deposit", {"to": to, "amount": int(Decimal(amount) * SUN)})["txid"])

    def usdt(self, address: str) -> Decimal:
        from wallets.chains.tron import USDT_CONTRACT  # the app registry is ready only in a test

        return Decimal(self.client.get_contract(USDT_CONTRACT).functions.balanceOf(address)) / SUN

    def trx(self, address: str) -> Decimal:
        account = self.client.provider.make_request(
            "wallet/getaccount", {"address": address, "visible": True}
        )
        return Decimal(account.get("balance", 0)) / SUN

    def balance(self, address: str, asset: str) -> Decimal:
        return self.trx(address) if asset == "TRX" else self.usdt(address)

    def transfers_to(self, address: str) -> list[dict[str, Any]]:
        answer = requests.get(
            f"{self.url}/v1/accounts/{address}/transactions/trc20", params={"only_to": "true"}, timeout=10
        )
        return list(answer.json()["data"])


class SolanaValidator:
    """A Solana stand-in: solana-py's client on it, and its control API."""

    chain = "SOL"

    def __init__(self, url: str):
        self.url = url

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = requests.post(f"{self.url}/control/{path}", json=body or {}, timeout=10)
        resp.raise_for_status()
        return resp.json()

    def state(self) -> Any:
        return requests.get(f"{self.url}/control/state", timeout=10).json()

    def mine(self, slots: int = 1) -> None:
        self.control("mine", {"slots": slots})

    def rpc(self, make: Any) -> Any:
        async def go() -> Any:
            async with AsyncClient(self.url) as client:
                return await make(client)

        return asyncio.run(go())

    def fund(self, address: str, asset: str, amount: str | Decimal) -> None:
        """Faucet: ``amount`` SOL, USDT or USDC onto ``address`` (its token account), then two slots so
        that it shows at ``confirmed``."""
        from wallets.chains.solana import MINTS  # the app registry is ready only in a test

        if asset == "SOL":
            self.control("fund", {"address": address, "lamports": int(Decimal(amount) * LAMPORTS)})
        else:
            body = {
                "address": address,
                "mint": str(MINTS[asset]),
                "amount": int(Decimal(amount) * TOKEN_UNITS),
            }
            self.control("fund", body)
        self.mine(2)

    def deposit(self, to: str, amount: str | Decimal, asset: str = "USDC") -> str:
        """An outside holder's signed SPL transfer to ``to`` (in the next slot mined); its signature."""
        body = {"to": to, "mint": asset, "amount": int(Decimal(amount) * TOKEN_UNITS)}
        return str(self.control("deposit", body)["signature"])

    def token(self, owner: str, asset: str = "USDC") -> Decimal:
        from wallets.chains.solana import MINTS, ata  # the app registry is ready only in a test

        account = ata(Pubkey.from_string(owner), MINTS[asset])
        info = self.rpc(lambda c: c.get_account_info_json_parsed(account, Confirmed)).value
        if info is None:
            return Decimal(0)
        return Decimal(info.data.parsed["info"]["tokenAmount"]["amount"]) / TOKEN_UNITS

    def lamports(self, owner: str) -> int:
        return int(self.rpc(lambda c: c.get_balance(Pubkey.from_string(owner), Confirmed)).value)

    def balance(self, address: str, asset: str) -> Decimal:
        return Decimal(self.lamports(address)) / LAMPORTS if asset == "SOL" else self.token(address, asset)

    def signatures(self, owner: str, asset: str = "USDC") -> list[str]:
        from wallets.chains.solana import MINTS, ata  # the app registry is ready only in a test

        account = ata(Pubkey.from_string(owner), MINTS[asset])
        found = self.rpc(lambda c: c.get_signatures_for_address(account, commitment=Confirmed)).value
        return [str(s.signature) for s in found]


def _served(build_app: Any) -> Iterator[str]:
    with serving(build_app, seed=23, config={"manual": True}) as url:
        yield url


@pytest.fixture(scope="session")
def _tron_url() -> Iterator[str]:
    yield from _served(tron_app)


@pytest.fixture(scope="session")
def _solana_url() -> Iterator[str]:
    yield from _served(solana_app)


def wire_tron(url: str, settings: Any) -> None:
    settings.CHAIN_ADAPTERS = {**settings.CHAIN_ADAPTERS, "TRON": "tron"}
    settings.TRON_RPC_URL = url


def wire_solana(url: str, settings: Any) -> None:
    settings.CHAIN_ADAPTERS = {**settings.CHAIN_ADAPTERS, "SOL": "solana"}
    settings.SOLANA_RPC_URL = url


@pytest.fixture
def tron(_tron_url: str, settings: Any) -> TronNode:
    """The session's TRON stand-in, back at its genesis (manual blocks), wired into the settings."""
    requests.post(f"{_tron_url}/control/reset", timeout=10).raise_for_status()
    wire_tron(_tron_url, settings)
    return TronNode(_tron_url)


@pytest.fixture
def sol(_solana_url: str, settings: Any) -> SolanaValidator:
    """The session's Solana stand-in, back at its genesis (manual slots), wired into the settings."""
    requests.post(f"{_solana_url}/control/reset", timeout=10).raise_for_status()
    wire_solana(_solana_url, settings)
    return SolanaValidator(_solana_url)
