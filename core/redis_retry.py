"""How every Redis client of the platform rides out a Redis restart.

Redis is a cache, broker and stream here: losing it for a few seconds (a restart, a failover) must not
turn into 500s on the trader API or a failed reconciliation. Connection errors and timeouts are retried
with a backoff of 0.1 s doubling to 1 s, eight times (about 5.5 s in all), on connect and on command;
what still fails after that is a real outage and surfaces as it did before. Health probes keep their
own short timeouts and no retry, so they report an outage honestly.

"On connect" includes the handshake after the socket is open (``HELLO`` / ``CLIENT SETINFO`` /
``SELECT``): redis-py retries the socket's connect but not that handshake, so a server that accepts a
connection and then drops it (one shutting down for its restart) failed the command at once; the
connection classes here retry connect and handshake as one step."""

from __future__ import annotations

import builtins
import socket
from typing import Any
from urllib.parse import urlsplit

from redis.backoff import ExponentialBackoff
from redis.connection import Connection, SSLConnection
from redis.exceptions import ConnectionError, TimeoutError
from redis.retry import Retry

RETRIES = 8


class _HandshakeRetried:
    """Connect and handshake retried together with the connection's own ``retry``."""

    _sock: Any
    retry: Retry

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if self._sock:
            return
        parent = super()
        self.retry.call_with_retry(
            lambda: parent.connect_check_health(  # type: ignore[attr-defined]
                check_health=check_health, retry_socket_connect=False
            ),
            lambda error: self.disconnect(error),  # type: ignore[attr-defined]
        )


class HandshakeRetryingConnection(_HandshakeRetried, Connection):
    pass


class HandshakeRetryingSSLConnection(_HandshakeRetried, SSLConnection):
    pass


def restart_tolerant(url: str | None = None) -> dict[str, Any]:
    """Keyword arguments for ``redis.Redis.from_url`` / a connection pool. With the ``url`` (a
    ``redis://`` or ``rediss://`` one, for a synchronous client) the handshake is retried too."""
    # the socket's own errors too: a refused connect surfaces as the builtin ConnectionRefusedError,
    # which redis-py's default list (its own ConnectionError, TimeoutError) does not retry
    errors = (ConnectionError, TimeoutError, socket.timeout, builtins.ConnectionError)
    options: dict[str, Any] = {
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.1), RETRIES, supported_errors=errors),
        "retry_on_error": list(errors),
    }
    scheme = urlsplit(url).scheme if url else ""
    if scheme == "redis":
        options["connection_class"] = HandshakeRetryingConnection
    elif scheme == "rediss":
        options["connection_class"] = HandshakeRetryingSSLConnection
    return options
