from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.testing import SandboxProcess


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxProcess]:
    """One sandbox process (seed 7, default config) shared by a test session."""
    with SandboxProcess(seed=7) as sb:
        yield sb


class HL:
    """Thin helper around one sandbox's Hyperliquid simulator: control API + SDK clients."""

    def __init__(self, url: str):
        import requests

        self.url = url
        self.http = requests.Session()
        self.meta = self.http.post(url + "/info", json={"type": "meta"}, timeout=10).json()
        self.spot_meta = self.http.post(url + "/info", json={"type": "spotMeta"}, timeout=10).json()

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        resp = self.http.post(f"{self.url}/control/{path}", json=body or {}, timeout=30)
        resp.raise_for_status()
        return resp.json()

    def get(self, path: str, **params: Any) -> Any:
        resp = self.http.get(f"{self.url}/control/{path}", params=params, timeout=30)
        resp.raise_for_status()
        return resp.json()

    def wallet(self, usdc: float | str = 100_000) -> Any:
        import eth_account

        w = eth_account.Account.create()
        self.control("fund", {"address": w.address, "usdc": str(usdc)})
        return w

    def exchange(self, wallet: Any, timeout: float = 10) -> Any:
        from hyperliquid.exchange import Exchange

        return Exchange(wallet, self.url, meta=self.meta, spot_meta=self.spot_meta, timeout=timeout)

    def info(self, timeout: float = 10) -> Any:
        from hyperliquid.info import Info

        return Info(self.url, skip_ws=True, meta=self.meta, spot_meta=self.spot_meta, timeout=timeout)


@pytest.fixture(scope="session")
def hl(sandbox: SandboxProcess) -> HL:
    """The shared sandbox's Hyperliquid (real-time clock, moving prices)."""
    return HL(sandbox.urls["hyperliquid"])


@pytest.fixture(scope="session")
def hl_manual() -> Iterator[HL]:
    """A Hyperliquid sandbox whose clock only moves through ``/control/advance`` (deterministic)."""
    with SandboxProcess(seed=11, config={"hyperliquid": {"clock": "manual", "ws_idle_timeout_s": 2}}) as sb:
        yield HL(sb.urls["hyperliquid"])
