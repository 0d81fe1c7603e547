"""``manage.py markouts_rebuild``: rebuild markouts and client metrics from the fills."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from risk.client_risk.markouts import markouts_backfill, markouts_drain
from risk.client_risk.metrics import client_metrics_refresh


class Command(BaseCommand):
    help = (
        "Take in every fill of the last N days that has no markout row, process every due horizon "
        "(--recompute: recompute the existing markouts from the mid history too) and recompute every "
        "client's metrics."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--recompute", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        since = timezone.now() - timedelta(days=options["days"])
        taken = markouts_backfill(since=since, recompute=options["recompute"])
        processed = markouts_drain()
        clients = client_metrics_refresh()
        self.stdout.write(
            f"{taken} fill(s) taken in, {processed} markout row(s) processed, {clients} client(s) recomputed"
        )
