"""Long-running loops (relay, consumers, the HL user stream, the readiness gate) outlive their backends.

A PostgreSQL restart leaves a loop's connection dead: Django only replaces a connection when it is
closed, and outside a request cycle nothing closes it, so a loop that merely logs and retries fails
the same way forever (wedged) or, if the error escapes, exits. A Redis restart fails every call until
the server is back. After an error a loop calls :meth:`Backoff.failed`: the broken database connection
is closed (the next query opens a new one) and the loop waits 0.1 s, doubling up to 2 s while the
failures persist — no busy loop while a backend is away, a fresh attempt within 2 s of its return.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)


def db_recover() -> None:
    """Close this thread's database connection if it is broken, so the next query reconnects."""

    if connection.in_atomic_block:
        return  # inside a caller's transaction (a test, a command run in-process): never close under it
    try:
        close_old_connections()  # closes it when an error was seen and it no longer answers
        if connection.connection is not None and not connection.is_usable():
            connection.close()  # broken without Django having noticed (no error went through it yet)
    except Exception:  # Django drops the handle even when closing a dead connection fails
        logger.debug("closing the database connection failed", exc_info=True)


class Backoff:
    def __init__(self, first: float = 0.1, cap: float = 2.0) -> None:
        self.first = first
        self.cap = cap
        self.failures = 0

    def delay(self) -> float:
        return float(min(self.cap, self.first * 2 ** max(0, self.failures - 1)))

    def failed(self, stop: Callable[[], bool] = lambda: False) -> None:
        """After an error: drop a broken database connection, then wait (less if ``stop()`` turns true)."""
        self.failures += 1
        db_recover()
        deadline = time.monotonic() + self.delay()
        while not stop():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, 0.1))

    def succeeded(self) -> None:
        self.failures = 0
