"""What the sync and async clients share: a call's description, signing, tokens, answers and retries.

The transports (``Client`` on ``httpx.Client``, ``AsyncClient`` on ``httpx.AsyncClient``) only send
what ``Core.prepare`` built and hand the answer to ``Core.answer``; every rule lives here once."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

from xbit_client.errors import XbitApiError
from xbit_client.models import TokenPair
from xbit_client.parsing import parse
from xbit_client.signing import Timestamps, signed_headers

T = TypeVar("T")

API_PREFIX = "/api/v1"
# an access token this close to its expiry is refreshed before use (clock skew, a slow request)
REFRESH_MARGIN_S = 30.0
# answers worth another try for a call that is safe to repeat: throttled, the platform not ready or in
# maintenance, a proxy's gateway error. A business refusal (NO_ROUTE, STALE_PRICE, VENUE_ERROR…) is not
# retried: the same client_order_id answers the same refusal.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
RETRY_CODES = frozenset({"RATE_LIMITED", "SERVICE_UNAVAILABLE", "MAINTENANCE"})
TOKEN_CODES = frozenset({"INVALID_TOKEN", "TOKEN_EXPIRED"})


@dataclass(frozen=True)
class Call(Generic[T]):
    """One API operation: method, path under ``/api/v1``, query, JSON body and how to read the answer.

    ``retryable``: repeating it cannot do anything twice (a read, or a write carrying its idempotency
    key / client_order_id). ``signed``: sent with the client's credentials (login and refresh are not)."""

    method: str
    path: str
    read: Callable[[Any], T]
    params: Mapping[str, Any] | None = None
    body: Any = None
    retryable: bool = False
    signed: bool = True


@dataclass(frozen=True)
class Prepared:
    method: str
    url: str
    headers: dict[str, str]
    content: bytes | None


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")  # plain notation: "0.001", never "1E-3"
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def encode_body(body: Any) -> bytes:
    return json.dumps(body, default=_json_default, separators=(",", ":")).encode()


def query_string(params: Mapping[str, Any] | None) -> str:
    if not params:
        return ""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, Decimal):
            value = format(value, "f")
        elif isinstance(value, datetime):
            value = value.isoformat()
        pairs.append((name, str(value)))
    return urlencode(pairs)


def token_expiry(token: str) -> float:
    """The ``exp`` claim of a JWT (read, not verified: the server verifies), 0 when unreadable."""
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
        return float(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return 0.0


def cursor_of(url: Any) -> str | None:
    """The ``cursor`` parameter of a pagination link (the API answers full URLs)."""
    if not isinstance(url, str) or not url:
        return None
    values = parse_qs(urlsplit(url).query).get("cursor")
    return values[0] if values else None


def error_from(status: int, content: bytes) -> XbitApiError:
    """The API's stable error body ``{"code", "message", "details"}``, or ``HTTP_<status>`` without it."""
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        details = body.get("details")
        return XbitApiError(
            status, body["code"], str(body.get("message", "")), details if isinstance(details, dict) else {}
        )
    text = content.decode(errors="replace").strip()[:200]
    return XbitApiError(status, f"HTTP_{status}", text or f"HTTP {status}")


class ApiKeyCredentials:
    def __init__(self, key_id: str, secret: str, recv_window_ms: int | None = None) -> None:
        self.key_id = key_id
        self.secret = secret
        self.recv_window_ms = recv_window_ms
        self.timestamps = Timestamps()

    def headers(self, method: str, path: str, query: str, body: bytes) -> dict[str, str]:
        return signed_headers(
            key_id=self.key_id,
            secret=self.secret,
            timestamp=self.timestamps.next(),
            method=method,
            path=path,
            query_string=query,
            body=body,
            recv_window_ms=self.recv_window_ms,
        )


class Tokens:
    """The JWT pair: access token used until ``REFRESH_MARGIN_S`` before it expires, then rotated
    with the refresh token (single use on the server); with a password, a failed refresh logs in again."""

    def __init__(
        self,
        *,
        email: str | None = None,
        password: str | None = None,
        otp_code: str | None = None,
        access: str | None = None,
        refresh: str | None = None,
    ) -> None:
        self.email = email
        self.password = password
        self.otp_code = otp_code
        self.access = access or ""
        self.refresh = refresh or ""
        self.expires_at = token_expiry(self.access) if self.access else 0.0
        self.lock = threading.Lock()  # the sync client's; the async one has its own asyncio.Lock

    @property
    def can_login(self) -> bool:
        return bool(self.email and self.password)

    def fresh(self, now: float | None = None) -> bool:
        return bool(self.access) and (now or time.time()) < self.expires_at - REFRESH_MARGIN_S

    def take(self, pair: TokenPair) -> None:
        self.access = pair.access
        self.refresh = pair.refresh
        self.expires_at = token_expiry(pair.access)

    def login_call(self) -> Call[TokenPair]:
        body: dict[str, Any] = {"email": self.email, "password": self.password}
        if self.otp_code:
            body["otp_code"] = self.otp_code
        return Call("POST", "/auth/login", lambda data: parse(TokenPair, data), body=body, signed=False)

    def refresh_call(self) -> Call[TokenPair]:
        return Call(
            "POST",
            "/auth/refresh",
            lambda data: parse(TokenPair, data),
            body={"refresh": self.refresh},
            signed=False,
        )


class Core:
    """Base URL, credentials and retry policy; builds requests and reads answers."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        api_secret: str | None = None,
        recv_window_ms: int | None = None,
        email: str | None = None,
        password: str | None = None,
        otp_code: str | None = None,
        access_token: str | None = None,
        refresh_token: str | None = None,
        max_retries: int = 2,
        backoff_s: float = 0.25,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key: ApiKeyCredentials | None = None
        self.tokens: Tokens | None = None
        if api_key or api_secret:
            if not (api_key and api_secret):
                raise ValueError("an API key needs both its id and its secret")
            self.api_key = ApiKeyCredentials(api_key, api_secret, recv_window_ms)
        elif email or password or access_token or refresh_token:
            self.tokens = Tokens(
                email=email, password=password, otp_code=otp_code, access=access_token, refresh=refresh_token
            )
        self.max_retries = max_retries
        self.backoff_s = backoff_s

    @property
    def uses_tokens(self) -> bool:
        return self.tokens is not None

    def use_tokens(self, pair: TokenPair, *, email: str | None = None, password: str | None = None) -> None:
        if self.tokens is None:
            self.tokens = Tokens(email=email, password=password)
        elif email is not None:
            self.tokens.email, self.tokens.password = email, password
        self.tokens.take(pair)

    def prepare(self, call: Call[Any]) -> Prepared:
        path = API_PREFIX + call.path
        query = query_string(call.params)
        content = encode_body(call.body) if call.body is not None else None
        url = self.base_url + path + (f"?{query}" if query else "")
        headers = {"Accept": "application/json"}
        if content is not None:
            headers["Content-Type"] = "application/json"
        if call.signed and self.api_key is not None:
            # the path the server sees: the base URL may carry a prefix before /api/v1
            headers.update(self.api_key.headers(call.method, urlsplit(url).path, query, content or b""))
        elif call.signed and self.tokens is not None and self.tokens.access:
            headers["Authorization"] = f"Bearer {self.tokens.access}"
        return Prepared(call.method, url, headers, content)

    def answer(self, call: Call[T], status: int, content: bytes) -> T:
        if status >= 400:
            raise error_from(status, content)
        if status == 204 or not content:
            return call.read(None)
        try:
            data = json.loads(content)
        except ValueError:
            raise XbitApiError(status, "BAD_RESPONSE", "The answer is not JSON.") from None
        return call.read(data)

    def token_retry(self, error: XbitApiError, already_refreshed: bool) -> bool:
        """A 401 for the access token: refresh once and send again."""
        return (
            self.tokens is not None
            and not already_refreshed
            and error.status == 401
            and error.code in TOKEN_CODES
        )

    def retry_delay(
        self, call: Call[Any], attempt: int, error: XbitApiError | None, *, sent: bool
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up.

        A request that never reached the server (connection refused) may always be sent again; one that
        may have been processed only when the call is ``retryable``."""
        if attempt >= self.max_retries:
            return None
        if sent and not call.retryable:
            return None
        if error is not None and not (
            error.status in RETRY_STATUSES and (error.code in RETRY_CODES or error.code.startswith("HTTP_"))
        ):
            return None
        delay = self.backoff_s * (2**attempt)
        if error is not None and error.retry_after is not None:
            delay = max(delay, min(error.retry_after, 30.0))
        return delay
