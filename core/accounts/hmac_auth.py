"""HMAC-SHA256 request signing for API keys (spec 08), as pure functions.

The string to sign is ``timestamp + METHOD + path + canonical_query + sha256_hex(body)`` where the
canonical query is the query parameters sorted by name then value and percent-encoded (RFC 3986).
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl, quote

HEADER_KEY = "X-XBIT-APIKEY"
HEADER_TIMESTAMP = "X-XBIT-TIMESTAMP"
HEADER_SIGNATURE = "X-XBIT-SIGNATURE"
HEADER_RECV_WINDOW = "X-XBIT-RECV-WINDOW"


def canonical_query(query_string: str) -> str:
    pairs = parse_qsl(query_string, keep_blank_values=True)
    pairs.sort()
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs)


def string_to_sign(*, timestamp: str, method: str, path: str, query_string: str, body: bytes) -> str:
    return (
        timestamp + method.upper() + path + canonical_query(query_string) + hashlib.sha256(body).hexdigest()
    )


def sign(
    secret: str, *, timestamp: str, method: str, path: str, query_string: str = "", body: bytes = b""
) -> str:
    message = string_to_sign(
        timestamp=timestamp, method=method, path=path, query_string=query_string, body=body
    )
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def signatures_match(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())
