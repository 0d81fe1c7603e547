"""HMAC-SHA256 request signing for XBIT API keys, written independently of the server.

The server verifies ``hex(HMAC_SHA256(secret, timestamp + METHOD + path + canonical_query +
sha256_hex(body)))`` where the canonical query is the decoded query pairs sorted by name then value and
percent-encoded per RFC 3986 (unreserved characters ``-_.~`` kept). ``path`` is the request path as the
server sees it (no query), ``timestamp`` is milliseconds since the epoch as a decimal string.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from urllib.parse import parse_qsl, quote

HEADER_KEY = "X-XBIT-APIKEY"
HEADER_TIMESTAMP = "X-XBIT-TIMESTAMP"
HEADER_SIGNATURE = "X-XBIT-SIGNATURE"
HEADER_RECV_WINDOW = "X-XBIT-RECV-WINDOW"


def canonical_query(query_string: str) -> str:
    """The query string as signed: pairs decoded, sorted, re-encoded (RFC 3986)."""
    pairs = sorted(parse_qsl(query_string, keep_blank_values=True))
    return "&".join(f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}" for name, value in pairs)


def payload(*, timestamp: str, method: str, path: str, query_string: str, body: bytes) -> str:
    """The string to sign."""
    return (
        f"{timestamp}{method.upper()}{path}{canonical_query(query_string)}{hashlib.sha256(body).hexdigest()}"
    )


def signature(
    secret: str, *, timestamp: str, method: str, path: str, query_string: str = "", body: bytes = b""
) -> str:
    message = payload(timestamp=timestamp, method=method, path=path, query_string=query_string, body=body)
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


class Timestamps:
    """Millisecond timestamps, strictly increasing within one client.

    The server keeps every (key, timestamp, signature) it accepted for the receive window and refuses a
    second use (REPLAYED_REQUEST); two identical requests signed in the same millisecond would collide,
    so each signature gets its own millisecond."""

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            now = int(time.time() * 1000)
            self._last = max(now, self._last + 1)
            return str(self._last)


def signed_headers(
    *,
    key_id: str,
    secret: str,
    timestamp: str,
    method: str,
    path: str,
    query_string: str = "",
    body: bytes = b"",
    recv_window_ms: int | None = None,
) -> dict[str, str]:
    """The headers of a signed request (REST, or the user stream's handshake with ``GET`` and its path)."""
    headers = {
        HEADER_KEY: key_id,
        HEADER_TIMESTAMP: timestamp,
        HEADER_SIGNATURE: signature(
            secret, timestamp=timestamp, method=method, path=path, query_string=query_string, body=body
        ),
    }
    if recv_window_ms is not None:
        headers[HEADER_RECV_WINDOW] = str(recv_window_ms)
    return headers
