"""``manage.py run_risk_consumer``: the exposure consumer (Procfile ``risk``). Stops on SIGTERM/SIGINT."""

from __future__ import annotations

import os
import signal
import socket
from typing import Any

from django.core.management.base import BaseCommand

from risk.exposure import exposure_recompute, run_consumer


class Command(BaseCommand):
    help = "Maintain net exposure from the ledger's events (idempotent consumer of the event stream)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--no-rebuild", action="store_true", help="skip the rebuild from PostgreSQL")

    def handle(self, *args: Any, **options: Any) -> None:
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        if not options["no_rebuild"]:
            # restart recovery (spec 04): the incremental totals start from the database's truth
            diffs = exposure_recompute(apply=True)
            self.stdout.write(f"exposure rebuilt from PostgreSQL ({len(diffs)} asset(s) corrected)")
        name = f"{socket.gethostname()}:{os.getpid()}"
        handled = run_consumer(consumer_name=name, stop=lambda: stop)
        self.stdout.write(f"risk consumer stopped after {handled} event(s)")
