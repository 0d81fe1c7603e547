"""How every Redis client of the platform rides out a Redis restart.

Redis is a cache, broker and stream here: losing it for a few seconds (a restart, a failover) must not
turn into 500s on the trader API or a failed reconciliation. Connection errors and timeouts are retried
with a backoff of 0.1 s doubling to 1 s, eight times (about 5.5 s in all), on connect and on command;
what still fails after that is a real outage and surfaces as it did before. Health probes keep their
own short timeouts and no retry, so they report an outage honestly."""

from __future__ import annotations

import builtins
import socket
from typing import Any

from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError
from redis.retry import Retry

RETRIES = 8


def restart_tolerant() -> dict[str, Any]:
    """Keyword arguments for ``redis.Redis.from_url`` / a connection pool."""
    # the socket's own errors too: a refused connect surfaces as the builtin ConnectionRefusedError,
    # which redis-py's default list (its own ConnectionError, TimeoutError) does not retry
    errors = (ConnectionError, TimeoutError, socket.timeout, builtins.ConnectionError)
    return {
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.1), RETRIES, supported_errors=errors),
        "retry_on_error": list(errors),
    }
