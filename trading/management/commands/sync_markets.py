"""``manage.py sync_markets``: fetch HL ``meta`` and upsert markets and margin tables now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from trading.markets import hl_info, markets_sync


class Command(BaseCommand):
    help = "Sync listed markets and margin tables from Hyperliquid's meta (logs listing changes)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default=None, help="HL API base URL (default: settings.HL_API_URL)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = markets_sync(info=hl_info(base_url=options["url"]))
        except Exception as exc:  # the SDK raises requests/ClientError/ServerError; say so plainly
            raise CommandError(f"could not sync markets: {type(exc).__name__}: {exc}") from exc
        self.stdout.write(f"markets synced: {report.summary()}")
