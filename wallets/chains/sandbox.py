"""Adapter for the simulated chains' HTTP API (``settings.CHAINS_API_URL``). Explicit timeouts;
network trouble and 5xx become ``ChainUnavailable``, refusals ``ChainRejected``."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import Any

import requests
from django.conf import settings

from wallets.chains.base import (
    BroadcastResult,
    ChainRejected,
    ChainUnavailable,
    IncomingTransfer,
    ScanResult,
    TxInfo,
)

SCAN_LIMIT = 5_000


class SandboxChainAdapter:
    def __init__(self, base_url: str, *, connect_timeout: float = 2.0, read_timeout: float = 5.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.session.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise ChainUnavailable(f"{method} {path}: {type(exc).__name__}") from exc
        try:
            body = response.json()
        except ValueError:
            body = {"error": "bad_response", "message": response.text[:200]}
        if response.status_code >= 500:
            raise ChainUnavailable(f"{method} {path}: HTTP {response.status_code} {body.get('error', '')}")
        if response.status_code >= 400:
            raise ChainRejected(str(body.get("error", "rejected")), str(body.get("message", "")))
        return body

    def height(self, chain: str) -> int:
        return int(self._call("GET", f"/{chain}/status")["height"])

    def token_transfer_fee(self, chain: str) -> Decimal:
        return Decimal(self._call("GET", f"/{chain}/status")["token_transfer_fee"])

    def scan(self, chain: str, *, from_height: int, to_height: int | None = None) -> ScanResult:
        params: dict[str, Any] = {"from_height": from_height, "limit": SCAN_LIMIT}
        if to_height is not None:
            params["to_height"] = to_height
        body = self._call("GET", f"/{chain}/transfers", params=params)
        items = [
            IncomingTransfer(
                tx_hash=t["tx_hash"],
                log_index=int(t["log_index"]),
                block=t["block"],
                confirmations=int(t["confirmations"]),
                sender=t["from"],
                to=t["to"],
                asset=t["asset"],
                amount=Decimal(t["amount"]),
            )
            for t in body["transfers"]
        ]
        return ScanResult(items, int(body["to_height"]), int(body["height"]))

    def broadcast(self, chain: str, payload: dict[str, Any]) -> BroadcastResult:
        body = {k: v for k, v in payload.items() if k != "tx_hash"}
        answer = self._call("POST", f"/{chain}/broadcast", json=body)
        return BroadcastResult(answer["tx_hash"], answer["status"], bool(answer.get("duplicate")))

    def tx(self, chain: str, tx_hash: str) -> TxInfo:
        try:
            body = self._call("GET", f"/{chain}/tx/{tx_hash}")
        except ChainRejected as exc:
            if exc.code == "unknown_tx":
                return TxInfo(tx_hash, "unknown", 0, None, Decimal(0), "")
            raise
        return TxInfo(
            tx_hash,
            body["status"],
            int(body["confirmations"]),
            body["block"],
            Decimal(body["fee"]),
            body["fee_asset"],
        )

    def balance(self, chain: str, address: str, asset: str) -> Decimal:
        body = self._call("GET", f"/{chain}/balance/{address}", params={"asset": asset})
        return Decimal(body["balance"])


@lru_cache(maxsize=8)
def _cached(url: str, timeout: float) -> SandboxChainAdapter:
    return SandboxChainAdapter(url, read_timeout=timeout)


def sandbox_adapter(chain: str) -> SandboxChainAdapter:
    """The simulated chains at ``settings.CHAINS_API_URL`` (one adapter serves every chain there)."""
    return _cached(settings.CHAINS_API_URL, float(getattr(settings, "CHAINS_API_TIMEOUT", 5.0)))
