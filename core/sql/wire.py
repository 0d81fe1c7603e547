"""What a connection sends to PostgreSQL, message by message (libpq's trace), to count round trips.

Django's query log and capture record what Django asked for, not what crossed the network: psycopg's own
``BEGIN`` never appears there, and Django logs a ``COMMIT`` that psycopg skips when the transaction has
already ended. Tests and benchmarks that pin round trips read the wire here instead."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from psycopg.pq import Trace

# one message per entry, a query's text as it is (new lines included): up to the next message
_QUERY = re.compile(r'^F\t\d+\tQuery\t "(.*?)"\n(?=[FB]\t|\Z)', re.DOTALL | re.MULTILINE)


@contextmanager
def wire_queries(raw: Any) -> Iterator[list[str]]:
    """The simple-protocol queries ``raw`` (a psycopg connection) sends inside the block, in order,
    each as one text (a query is one round trip). The list is filled when the block ends."""
    sent: list[str] = []
    with tempfile.TemporaryFile() as trace:
        # libpq never closes the stream it writes the trace to: give it a descriptor of its own
        raw.pgconn.trace(os.dup(trace.fileno()))
        raw.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS | Trace.REGRESS_MODE)
        try:
            yield sent
        finally:
            raw.pgconn.untrace()
            trace.seek(0)
            text = trace.read().decode("utf-8", "replace")
    sent.extend(found.group(1) for found in _QUERY.finditer(text))
