"""The outbox relay process: wakes on PostgreSQL NOTIFY (sub-millisecond after a commit) and polls as a
safety net, so an event is never stuck even if a notification is lost.

Survives PostgreSQL and Redis restarts: a failed batch closes the broken Django connection
and backs off; a lost LISTEN connection is reopened (notifications sent meanwhile are covered by the
batch that runs first on every pass)."""

import logging
import signal
from typing import Any

import psycopg
from django.core.management.base import BaseCommand
from django.db import connection

from core.events.services import NOTIFY_CHANNEL, outbox_relay_batch, redis_client
from core.loops import Backoff

logger = logging.getLogger(__name__)


def _listen() -> psycopg.Connection[Any]:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    listener = psycopg.connect(**params, autocommit=True)
    listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
    return listener


class Command(BaseCommand):
    help = "Publish committed outbox events to the Redis stream (run one or more; rows are claimed)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--poll", type=float, default=1.0, help="safety-net poll interval in seconds")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        client = redis_client()
        backoff = Backoff()
        listener: psycopg.Connection[Any] | None = None
        self.stdout.write(f"relay listening on {NOTIFY_CHANNEL}")
        while not stop:
            try:
                if listener is None:
                    listener = _listen()  # before the batch: a commit in between still wakes us
                while outbox_relay_batch(client=client):
                    pass
                for _ in listener.notifies(timeout=options["poll"], stop_after=1):
                    break
                backoff.succeeded()
            except Exception:
                logger.exception("outbox relay failed; reconnecting and retrying")
                if listener is not None and (listener.closed or listener.broken):
                    listener.close()
                    listener = None
                backoff.failed(lambda: stop)
        if listener is not None:
            listener.close()
