"""Client-side helpers for the simulated chains: keys, signed transfer payloads and a thin HTTP client.

For sandbox tests and demos only. The house implements its own signer from ``README.md``.

    wallet = Wallet.from_label("ETH", "hot-wallet")
    payload = wallet.sign_transfer(asset="USDT", to=user, amount="25.5", nonce="wd-42")
    ChainsClient(url).broadcast("ETH", payload)   # {"tx_hash": "0x…", "status": "pending", …}
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import requests

from sandbox.chains.addresses import canonical_chain
from sandbox.chains.signing import (
    address_from_private_key,
    canonical_message,
    derive_private_key,
    sign_message,
)


def sign_transfer(
    chain: str, private_key: bytes | str, *, asset: str, to: str, amount: str, nonce: str
) -> dict[str, str]:
    """The broadcast body for a transfer from the address of ``private_key``."""
    code = canonical_chain(chain)
    if code is None:
        raise ValueError(f"unknown chain {chain!r}")
    sender = address_from_private_key(code, private_key)
    message = canonical_message(chain=code, asset=asset, sender=sender, to=to, amount=amount, nonce=nonce)
    return {
        "chain": code,
        "asset": asset,
        "from": sender,
        "to": to,
        "amount": amount,
        "nonce": nonce,
        "signature": sign_message(code, private_key, message),
    }


@dataclass(frozen=True)
class Wallet:
    chain: str
    private_key: bytes
    address: str

    @classmethod
    def from_key(cls, chain: str, private_key: bytes | str) -> Wallet:
        code = canonical_chain(chain)
        if code is None:
            raise ValueError(f"unknown chain {chain!r}")
        key = bytes.fromhex(private_key.removeprefix("0x")) if isinstance(private_key, str) else private_key
        return cls(code, key, address_from_private_key(code, key))

    @classmethod
    def from_label(cls, chain: str, label: str) -> Wallet:
        """Deterministic wallet (same label -> same key)."""
        return cls.from_key(chain, derive_private_key(label))

    @classmethod
    def generate(cls, chain: str) -> Wallet:
        return cls.from_key(chain, secrets.token_bytes(32))

    def sign_transfer(self, *, asset: str, to: str, amount: str, nonce: str) -> dict[str, str]:
        return sign_transfer(self.chain, self.private_key, asset=asset, to=to, amount=amount, nonce=nonce)


class ChainsHTTPError(Exception):
    def __init__(self, status: int, body: Any):
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body

    @property
    def code(self) -> str | None:
        return self.body.get("error") if isinstance(self.body, dict) else None


class ChainsClient:
    """Every method returns the decoded JSON body or raises ``ChainsHTTPError`` (non-2xx)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def request(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> Any:
        response = self.session.request(
            method, self.base_url + path, timeout=timeout or self.timeout, **kwargs
        )
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if response.status_code >= 300:
            raise ChainsHTTPError(response.status_code, body)
        return body

    # public API
    def status(self, chain: str) -> dict[str, Any]:
        return self.request("GET", f"/{chain}/status")

    def transfers(self, chain: str, **params: Any) -> dict[str, Any]:
        return self.request("GET", f"/{chain}/transfers", params=params)

    def tx(self, chain: str, tx_hash: str) -> dict[str, Any]:
        return self.request("GET", f"/{chain}/tx/{tx_hash}")

    def block(self, chain: str, height: int) -> dict[str, Any]:
        return self.request("GET", f"/{chain}/block/{height}")

    def balance(self, chain: str, address: str, asset: str | None = None) -> dict[str, Any]:
        return self.request("GET", f"/{chain}/balance/{address}", params={"asset": asset} if asset else None)

    def validate(self, chain: str, address: str) -> dict[str, Any]:
        return self.request("GET", f"/{chain}/validate/{address}")

    def broadcast(
        self, chain: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        return self.request("POST", f"/{chain}/broadcast", json=payload, timeout=timeout)

    # control API
    def mine(self, chain: str, blocks: int = 1) -> dict[str, Any]:
        return self.request("POST", f"/control/{chain}/mine", json={"blocks": blocks})

    def deposit(self, chain: str, **body: Any) -> dict[str, Any]:
        return self.request("POST", f"/control/{chain}/deposit", json=body)

    def fund(self, chain: str, address: str, amount: str, asset: str | None = None) -> dict[str, Any]:
        body = {"address": address, "amount": amount} | ({"asset": asset} if asset else {})
        return self.request("POST", f"/control/{chain}/fund", json=body)

    def set_interval(self, chain: str, interval: float | None) -> dict[str, Any]:
        body = {"manual": True} if interval is None else {"interval": interval}
        return self.request("POST", f"/control/{chain}/interval", json=body)

    def reorg(
        self, chain: str, depth: int, *, reinclude: bool | list[str] = False, replace: bool = True
    ) -> Any:
        return self.request(
            "POST",
            f"/control/{chain}/reorg",
            json={"depth": depth, "reinclude": reinclude, "replace": replace},
        )

    def fail(self, **body: Any) -> dict[str, Any]:
        return self.request("POST", "/control/fail", json=body)

    def state(self, chain: str | None = None) -> dict[str, Any]:
        return self.request("GET", "/control/state", params={"chain": chain} if chain else None)

    def reset(self) -> dict[str, Any]:
        return self.request("POST", "/control/reset")
