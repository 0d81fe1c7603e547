"""``manage.py risk_sweep``: re-check every position and drain due liquidation triggers — what the beat
sweep and the critical workers do, as one process (operations, and the crash-safety fault test)."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand

from risk.detection import liquidation_sweep
from risk.liquidation_background import background_flush
from risk.liquidation_execute import liquidations_drain


class Command(BaseCommand):
    help = "Sweep for liquidatable positions and execute due liquidation triggers."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="one sweep and one drain, then exit")
        parser.add_argument("--no-detect", action="store_true", help="only drain existing triggers")
        parser.add_argument("--interval", type=float, default=1.0)

    def handle(self, *args: Any, **options: Any) -> None:
        while True:
            if not options["no_detect"]:
                report = liquidation_sweep(wake=False)
                self.stdout.write(f"sweep: {report}")
            done = liquidations_drain()
            self.stdout.write(f"drained {done} trigger(s)")
            if options["once"]:
                background_flush()  # the console pushes and emails' hand-over of the last liquidations
                return
            time.sleep(options["interval"])
