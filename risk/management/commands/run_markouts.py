"""``manage.py run_markouts``: the markout loop (Procfile ``markouts``). Stops on SIGTERM/SIGINT."""

from __future__ import annotations

import os
import signal
import socket
from typing import Any

from django.core.management.base import BaseCommand

from risk.client_risk.attribution import bbook_attribution_compute
from risk.client_risk.classify import client_groups_classify
from risk.client_risk.markouts import run_markouts
from risk.client_risk.midhistory import mid_sample
from trading.models import Market


class Command(BaseCommand):
    help = (
        "Markouts of every fill at 1 s / 10 s / 60 s / 5 min against Hyperliquid's mid, and client metrics."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        assets = list(Market.objects.filter(is_delisted=False).values_list("asset", flat=True))

        def sample() -> int:
            return mid_sample(assets)

        def every_minute() -> None:
            client_groups_classify()
            bbook_attribution_compute()  # today's, kept current

        name = f"{socket.gethostname()}:{os.getpid()}"
        handled = run_markouts(
            consumer_name=name, stop=lambda: stop, sample=sample, every_minute=every_minute
        )
        self.stdout.write(f"markout loop stopped after {handled} fill event(s)")
