"""The user-stream fan-out process (``trading.stream.fanout``): domain events → users' logs and sockets."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.core.management.base import BaseCommand

from trading.stream.fanout import run_fanout


class Command(BaseCommand):
    help = "Fan domain events out to each user's stream log and open websockets (run one)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--consumer", default="fanout-1", help="consumer name in the group")

    def handle(self, *args: Any, **options: Any) -> None:
        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            self.stdout.write("user stream fan-out running")
            await run_fanout(stop, consumer=options["consumer"])

        asyncio.run(main())
