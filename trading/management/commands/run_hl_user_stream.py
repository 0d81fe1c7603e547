import signal
import time
from typing import Any

from django.core.management.base import BaseCommand

from trading.hl_stream import UserStream
from trading.venues.hl import gateway


class Command(BaseCommand):
    help = "Apply fills of resting HL orders from the trading account's user stream (with REST backfill)."

    def handle(self, *args: Any, **options: Any) -> None:
        while gateway("trading") is None:  # make run configures the account once the sandbox is up
            time.sleep(2)
        stream = UserStream()
        signal.signal(signal.SIGTERM, lambda *_: stream.stop())
        signal.signal(signal.SIGINT, lambda *_: stream.stop())
        stream.run()
