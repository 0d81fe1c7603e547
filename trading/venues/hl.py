"""The Hyperliquid gateway: one client per platform HL account (trading, hedge) on the official SDK.

* Orders are signed by the account's **agent** (API wallet) and act for the **master** address; state
  is always queried by the master (spec 09). Keys come from the environment
  (``HL_<NAME>_MASTER`` / ``HL_<NAME>_AGENT_KEY``) or the encrypted ``HLAccount`` row; never logged.
* ``meta`` and an empty ``spotMeta`` are passed to the SDK, so building a client does no I/O.
* Every request has an explicit timeout (the SDK's default is to wait forever).
* Nonces: HL rejects a reused nonce and two orders signed in one millisecond by one signer collide.
  Every process signing for an agent allocates its nonces from one Redis counter (``max(now_ms,
  last + 1)``, atomic in Lua), so web and worker processes never collide.
* ``cloid``s are derived from our order ids (``order_cloid``), so a retry or a status query after a
  timeout names the same HL order — we never send twice.
* Results are parsed into typed values; HL's transport errors become ``HLRequestError`` with
  ``uncertain=True`` when the order may have reached HL (timeouts, 5xx).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import redis
import requests
from django.conf import settings
from eth_account import Account
from hyperliquid.api import API
from hyperliquid.utils.constants import MAINNET_API_URL
from hyperliquid.utils.error import ClientError, ServerError
from hyperliquid.utils.signing import sign_l1_action
from prometheus_client import Counter, Gauge, Histogram

from core.accounts.crypto import decrypt
from core.redis_retry import restart_tolerant
from trading.models import HLAccount, Market
from trading.selectors import market_get

logger = logging.getLogger(__name__)

HL_REQUEST_SECONDS = Histogram(
    "xbit_hl_request_seconds",
    "HL API latency by account and endpoint",
    ["account", "endpoint"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
)
HL_REQUEST_ERRORS = Counter(
    "xbit_hl_request_errors_total", "HL API errors by account and kind", ["account", "kind"]
)
HL_RATE_LIMIT = Gauge(
    "xbit_hl_rate_limit_remaining", "HL address-based request budget left (userRateLimit)", ["account"]
)

# An order action HL has not seen within this long never executes (expiresAfter), so after it passes an
# order whose cloid HL does not know was never placed and can be failed safely.
ORDER_EXPIRY_MS = 10_000

_NONCE_SCRIPT = """
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local now = tonumber(ARGV[1])
local n = now
if last >= n then n = last + 1 end
redis.call('SET', KEYS[1], n, 'EX', 172800)
return n
"""


class HLRequestError(Exception):
    """The request as a whole failed. ``uncertain``: HL may still have acted on it (timeout, 5xx)."""

    def __init__(self, message: str, *, uncertain: bool, kind: str) -> None:
        super().__init__(message)
        self.message = message
        self.uncertain = uncertain
        self.kind = kind


@dataclass(frozen=True)
class OrderResult:
    """One order's status in HL's answer: ``resting`` (oid), ``filled`` (oid, total size, avg price) or
    ``error`` (HL's message)."""

    kind: str
    oid: int | None = None
    total_size: Decimal | None = None
    avg_price: Decimal | None = None
    error: str = ""


@dataclass(frozen=True)
class HLFill:
    oid: int
    tid: int
    coin: str
    price: Decimal
    size: Decimal
    side: str  # "B" | "A"
    fee: Decimal
    closed_pnl: Decimal
    time_ms: int
    start_position: Decimal
    crossed: bool
    liquidation: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def parse(cls, row: dict[str, Any]) -> HLFill:
        return cls(
            oid=int(row["oid"]),
            tid=int(row["tid"]),
            coin=row["coin"],
            price=Decimal(row["px"]),
            size=Decimal(row["sz"]),
            side=row["side"],
            fee=Decimal(row.get("fee", "0")),
            closed_pnl=Decimal(row.get("closedPnl", "0")),
            time_ms=int(row["time"]),
            start_position=Decimal(row.get("startPosition", "0")),
            crossed=bool(row.get("crossed", True)),
            liquidation=row.get("liquidation"),
            raw=row,
        )


def wire(value: Decimal) -> str:
    """HL's number format from a Decimal (no float round trip)."""
    text = f"{value.normalize():f}"
    return "0" if text in ("-0", "0") else text


def order_cloid(order_id: int, *, account: str = "trading") -> str:
    digest = hashlib.sha256(f"xbit:{account}:order:{order_id}".encode()).hexdigest()
    return "0x" + digest[:32]


@dataclass(frozen=True)
class AccountCredentials:
    name: str
    master: str
    agent_key: str

    @property
    def agent_address(self) -> str:
        return Account.from_key(self.agent_key).address

    def __repr__(self) -> str:  # never print the key
        return f"AccountCredentials(name={self.name!r}, master={self.master!r}, agent=***)"


def credentials_for(name: str) -> AccountCredentials | None:
    """Environment first (production secrets), else the encrypted row created by the demo set-up."""
    master = os.environ.get(f"HL_{name.upper()}_MASTER", "")
    key = os.environ.get(f"HL_{name.upper()}_AGENT_KEY", "")
    if master and key:
        return AccountCredentials(name, master, key)

    row = HLAccount.objects.filter(name=name).first()
    if row is None:
        return None
    return AccountCredentials(name, row.master_address, decrypt(row.agent_key_encrypted))


def meta_from_markets() -> dict[str, Any]:
    """HL ``meta`` rebuilt from our synced markets (asset ids are universe positions)."""

    rows = list(
        Market.objects.order_by("hl_index").values(
            "asset", "hl_index", "sz_decimals", "max_leverage", "is_delisted"
        )
    )
    universe: list[dict[str, Any]] = []
    for row in rows:
        if row["hl_index"] >= 1_000_000:
            continue  # a delisted market parked outside the universe
        while len(universe) < row["hl_index"]:
            universe.append({"name": f"_unused{len(universe)}", "szDecimals": 0, "maxLeverage": 1})
        universe.append(
            {"name": row["asset"], "szDecimals": row["sz_decimals"], "maxLeverage": row["max_leverage"]}
        )
    return {"universe": universe}


_redis_lock = threading.Lock()
_redis_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _redis_client
    with _redis_lock:
        if _redis_client is None:
            _redis_client = redis.Redis.from_url(settings.REDIS_URL, **restart_tolerant(settings.REDIS_URL))
        return _redis_client


class HLGateway:
    def __init__(
        self, credentials: AccountCredentials, *, base_url: str | None = None, timeout: float | None = None
    ) -> None:
        self.credentials = credentials
        self.name = credentials.name
        self.base_url = (base_url or settings.HL_API_URL).rstrip("/")
        self.timeout = timeout if timeout is not None else float(getattr(settings, "HL_TIMEOUT_SECONDS", 5.0))
        self.api = API(self.base_url, self.timeout)
        self.wallet = Account.from_key(credentials.agent_key)
        self.is_mainnet = self.base_url == MAINNET_API_URL
        self._nonce_script = _redis().register_script(_NONCE_SCRIPT)
        self._asset_ids: dict[str, int] = {}

    # ---------------------------------------------------------------------------------- plumbing

    def asset_id(self, coin: str) -> int:
        if coin not in self._asset_ids:
            self._asset_ids[coin] = market_get(coin).hl_index
        return self._asset_ids[coin]

    def next_nonce(self) -> int:
        return int(
            self._nonce_script(
                keys=[f"xbit:hl-nonce:{self.wallet.address.lower()}"], args=[int(time.time() * 1000)]
            )
        )

    def _post(self, path: str, payload: dict[str, Any], endpoint: str) -> Any:
        started = time.perf_counter()
        try:
            return self.api.post(path, payload)
        except requests.Timeout as exc:
            HL_REQUEST_ERRORS.labels(self.name, "timeout").inc()
            raise HLRequestError(
                f"HL did not answer within {self.timeout}s", uncertain=True, kind="timeout"
            ) from exc
        except requests.ConnectionError as exc:
            HL_REQUEST_ERRORS.labels(self.name, "connection").inc()
            # the connection may have dropped after the request was sent
            raise HLRequestError(f"HL connection failed: {exc}", uncertain=True, kind="connection") from exc
        except ServerError as exc:
            HL_REQUEST_ERRORS.labels(self.name, "5xx").inc()
            raise HLRequestError(
                f"HL server error {exc.status_code}: {exc.message}", uncertain=True, kind="5xx"
            ) from exc
        except ClientError as exc:
            HL_REQUEST_ERRORS.labels(self.name, "4xx").inc()
            raise HLRequestError(
                f"HL refused the request ({exc.status_code}): {exc.error_message}",
                uncertain=False,
                kind="4xx",
            ) from exc
        finally:
            HL_REQUEST_SECONDS.labels(self.name, endpoint).observe(time.perf_counter() - started)

    def _info(self, payload: dict[str, Any]) -> Any:
        return self._post("/info", payload, payload["type"])

    def sign(
        self,
        action: dict[str, Any],
        *,
        expires_in_ms: int | None = None,
        expires_at_ms: int | None = None,
    ) -> dict[str, Any]:
        """The ``/exchange`` body of an L1 action: a fresh nonce and the signature. With
        ``expires_in_ms`` (from now) or ``expires_at_ms`` (epoch ms) HL refuses the action once that time
        has passed, which bounds how long an unanswered order can still appear (see ``ORDER_EXPIRY_MS``).
        Nothing is sent: a body never sent is harmless (its nonce is simply never used)."""
        nonce = self.next_nonce()
        expires = (
            expires_at_ms if expires_at_ms is not None else (nonce + expires_in_ms if expires_in_ms else None)
        )
        signature = sign_l1_action(self.wallet, action, None, nonce, expires, self.is_mainnet)
        return {
            "action": action,
            "nonce": nonce,
            "signature": signature,
            "vaultAddress": None,
            "expiresAfter": expires,
        }

    def send(self, body: dict[str, Any], endpoint: str) -> Any:
        """Send a signed ``/exchange`` body; HL's ``status: err`` raises (certain: nothing happened)."""
        response = self._post("/exchange", body, endpoint)
        if isinstance(response, dict) and response.get("status") == "err":
            HL_REQUEST_ERRORS.labels(self.name, "status_err").inc()
            raise HLRequestError(str(response.get("response")), uncertain=False, kind="status_err")
        return response

    def _exchange(
        self,
        action: dict[str, Any],
        endpoint: str,
        *,
        expires_in_ms: int | None = None,
        expires_at_ms: int | None = None,
    ) -> Any:
        """Sign and send an L1 action (``sign``, then ``send``)."""
        return self.send(
            self.sign(action, expires_in_ms=expires_in_ms, expires_at_ms=expires_at_ms), endpoint
        )

    # ---------------------------------------------------------------------------------- exchange

    def order_action(self, orders: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """The ``order`` action for ``orders``: dicts with coin, is_buy, size (Decimal), price (Decimal),
        tif ("Ioc"|"Gtc"|"Alo"), reduce_only, cloid."""
        wires = []
        for o in orders:
            order_wire: dict[str, Any] = {
                "a": self.asset_id(o["coin"]),
                "b": bool(o["is_buy"]),
                "p": wire(o["price"]),
                "s": wire(o["size"]),
                "r": bool(o.get("reduce_only", False)),
                "t": {"limit": {"tif": o.get("tif", "Ioc")}},
            }
            if o.get("cloid"):
                order_wire["c"] = o["cloid"]
            wires.append(order_wire)
        return {"type": "order", "orders": wires, "grouping": "na"}

    def place_orders(
        self,
        orders: Iterable[dict[str, Any]],
        *,
        expires_at_ms: int | None = None,
        signed: dict[str, Any] | None = None,
    ) -> list[OrderResult]:
        """``orders`` (see ``order_action``) in one HL request, one result per order. HL refuses the
        request after ``expires_at_ms`` (epoch ms; default ``ORDER_EXPIRY_MS`` from now). ``signed``:
        the body already signed for exactly these orders (``sign(order_action(orders), …)``)."""
        if signed is None:
            signed = self.sign(
                self.order_action(orders), expires_in_ms=ORDER_EXPIRY_MS, expires_at_ms=expires_at_ms
            )
        response = self.send(signed, "order")
        statuses = response.get("response", {}).get("data", {}).get("statuses", [])
        results = [parse_status(s) for s in statuses]
        sent = len(signed["action"]["orders"])
        if len(results) != sent:
            raise HLRequestError(
                f"HL answered {len(results)} statuses for {sent} orders", uncertain=True, kind="shape"
            )
        return results

    def place_order(
        self, *, expires_at_ms: int | None = None, signed: dict[str, Any] | None = None, **order: Any
    ) -> OrderResult:
        return self.place_orders([order], expires_at_ms=expires_at_ms, signed=signed)[0]

    def cancel(self, coin: str, oid: int) -> str:
        response = self._exchange(
            {"type": "cancel", "cancels": [{"a": self.asset_id(coin), "o": int(oid)}]}, "cancel"
        )
        status = response.get("response", {}).get("data", {}).get("statuses", ["?"])[0]
        return status if isinstance(status, str) else str(status.get("error", status))

    def update_leverage(self, coin: str, leverage: int, *, is_cross: bool) -> None:
        self._exchange(
            {
                "type": "updateLeverage",
                "asset": self.asset_id(coin),
                "isCross": is_cross,
                "leverage": int(leverage),
            },
            "updateLeverage",
        )

    # ---------------------------------------------------------------------------------- info

    def order_status(self, *, cloid: str | None = None, oid: int | None = None) -> dict[str, Any]:
        """HL's ``orderStatus`` by cloid or oid: ``{"status": "order", "order": {...}}`` or
        ``{"status": "unknownOid"}``."""
        ident: Any = cloid if cloid is not None else oid
        return self._info({"type": "orderStatus", "user": self.credentials.master, "oid": ident})  # type: ignore[no-any-return]

    def user_state(self) -> dict[str, Any]:
        return self._info({"type": "clearinghouseState", "user": self.credentials.master})  # type: ignore[no-any-return]

    def open_orders(self) -> list[dict[str, Any]]:
        return self._info({"type": "openOrders", "user": self.credentials.master})  # type: ignore[no-any-return]

    def user_fills_by_time(self, start_ms: int, end_ms: int | None = None) -> list[HLFill]:
        payload: dict[str, Any] = {
            "type": "userFillsByTime",
            "user": self.credentials.master,
            "startTime": int(start_ms),
        }
        if end_ms is not None:
            payload["endTime"] = int(end_ms)
        return [HLFill.parse(row) for row in self._info(payload)]

    def fills_for_order(self, oid: int, since_ms: int) -> list[HLFill]:
        return [f for f in self.user_fills_by_time(since_ms) if f.oid == oid]

    def user_funding(self, start_ms: int, end_ms: int | None = None) -> list[dict[str, Any]]:
        payload: dict[str, Any] = {
            "type": "userFunding",
            "user": self.credentials.master,
            "startTime": int(start_ms),
        }
        if end_ms is not None:
            payload["endTime"] = int(end_ms)
        return self._info(payload)  # type: ignore[no-any-return]

    def funding_history(self, coin: str, start_ms: int, end_ms: int | None = None) -> list[dict[str, Any]]:
        """HL's settled funding of ``coin`` (``fundingHistory``: ``{coin, fundingRate, premium, time}``)."""
        payload: dict[str, Any] = {"type": "fundingHistory", "coin": coin, "startTime": int(start_ms)}
        if end_ms is not None:
            payload["endTime"] = int(end_ms)
        return self._info(payload)  # type: ignore[no-any-return]

    def rate_limit(self) -> dict[str, Any]:
        result: dict[str, Any] = self._info({"type": "userRateLimit", "user": self.credentials.master})
        try:
            remaining = int(result.get("nRequestsCap", 0)) - int(result.get("nRequestsUsed", 0))
            HL_RATE_LIMIT.labels(self.name).set(remaining)
        except (TypeError, ValueError):
            pass
        return result

    def all_mids(self) -> dict[str, str]:
        return self._info({"type": "allMids"})  # type: ignore[no-any-return]


def parse_status(status: Any) -> OrderResult:
    if isinstance(status, dict):
        if "filled" in status:
            f = status["filled"]
            return OrderResult(
                "filled", oid=int(f["oid"]), total_size=Decimal(f["totalSz"]), avg_price=Decimal(f["avgPx"])
            )
        if "resting" in status:
            return OrderResult("resting", oid=int(status["resting"]["oid"]))
        if "error" in status:
            return OrderResult("error", error=str(status["error"]))
    return OrderResult("error", error=f"unexpected order status from HL: {status!r}")


_gateways: dict[str, HLGateway] = {}
_gateways_lock = threading.Lock()


def gateway(name: str = "trading") -> HLGateway | None:
    """The process's client for an HL account, or None when the account is not configured."""
    with _gateways_lock:
        if name not in _gateways:
            creds = credentials_for(name)
            if creds is None:
                return None
            _gateways[name] = HLGateway(creds)
        return _gateways[name]


def reset_gateways() -> None:
    """Forget cached clients (after credentials or the HL URL change; tests)."""
    with _gateways_lock:
        _gateways.clear()
