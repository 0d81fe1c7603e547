"""``manage.py run_feed``: the HL market-data feed process (Procfile ``feed``). Stops on SIGTERM/SIGINT."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from prometheus_client import start_http_server

from trading.feed.state import FeedOptions
from trading.feed.supervisor import run_feed
from trading.markets import hl_info, markets_sync


class Command(BaseCommand):
    help = "Subscribe to Hyperliquid market data and keep the Redis quote cache live."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default=None, help="HL API base URL (default: settings.HL_API_URL)")
        parser.add_argument("--name", default="hl", help="FeedStatus row name")
        parser.add_argument("--assets", default="", help="comma-separated assets (default: listed markets)")
        parser.add_argument("--no-sync", action="store_true", help="skip the markets sync at start")
        parser.add_argument("--silence", type=float, default=10.0, help="reconnect after this many silent s")
        parser.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus metrics (0 = off)")

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["no_sync"]:
            # spec 02: markets are synced at start (and hourly by beat); a failure here is not fatal —
            # the feed serves the markets already known and polls the database for new ones.
            try:
                report = markets_sync(info=hl_info(base_url=options["url"]))
                self.stdout.write(f"markets synced: {report.summary()}")
            except Exception as exc:
                self.stderr.write(f"markets sync at start failed ({type(exc).__name__}: {exc}); continuing")
        if options["metrics_port"]:
            start_http_server(options["metrics_port"], addr="127.0.0.1")
        assets = [a.strip() for a in options["assets"].split(",") if a.strip()] or None
        feed = run_feed(
            FeedOptions(
                base_url=options["url"],
                name=options["name"],
                assets=assets,
                silence_reconnect_s=options["silence"],
            )
        )
        self.stdout.write(f"feed stopped after {feed.reconnects} reconnect(s)")
