"""``manage.py run_alert_notifier``: the outbox consumer that plans alert deliveries (Procfile
``alerts``). Sending happens in the ``alerts.deliver`` Celery task. Stops on SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import socket
from typing import Any

from django.core.management.base import BaseCommand

from core.alerts.notifications import run_notifier


class Command(BaseCommand):
    help = "Turn alert events into Slack/PagerDuty deliveries (idempotent consumer of the event stream)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--block-ms", type=int, default=1000, help="stream read timeout")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        # a stable name per host: after a restart this consumer retries what it had read but not
        # acknowledged (a name that changes leaves those to the tick's reconciliation)
        name = f"notifier@{socket.gethostname()}"
        self.stdout.write(f"alert notifier consuming as {name}")
        handled = run_notifier(consumer_name=name, stop=lambda: stop, block_ms=options["block_ms"])
        self.stdout.write(f"alert notifier stopped after {handled} event(s)")
