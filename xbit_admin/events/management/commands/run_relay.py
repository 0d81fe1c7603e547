"""The outbox relay process: wakes on PostgreSQL NOTIFY (sub-millisecond after a commit) and polls as a
safety net, so an event is never stuck even if a notification is lost."""

import logging
import signal
import time
from typing import Any

import psycopg
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection

from xbit_admin.events.services import NOTIFY_CHANNEL, outbox_relay_batch, redis_client

logger = logging.getLogger(__name__)


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
        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        listener = psycopg.connect(**params, autocommit=True)
        listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        self.stdout.write(f"relay listening on {NOTIFY_CHANNEL}")
        while not stop:
            try:
                while outbox_relay_batch(client=client):
                    pass
            except Exception:
                logger.exception("outbox relay batch failed; retrying")
                close_old_connections()
                time.sleep(0.5)
            for _ in listener.notifies(timeout=options["poll"], stop_after=1):
                break
        listener.close()
