"""``manage.py bbook_attribution``: recompute the B-book P&L attribution of the last N days."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from risk.client_risk.attribution import bbook_attribution_compute


class Command(BaseCommand):
    help = (
        "Recompute the B-book P&L per asset and UTC day (spread, market move, funding, hedge, liquidations)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--days", type=int, default=1, help="today and the N−1 days before it")

    def handle(self, *args: Any, **options: Any) -> None:
        today = timezone.now().astimezone(UTC).date()
        for back in range(options["days"]):
            day = today - timedelta(days=back)
            rows = bbook_attribution_compute(day)
            for r in rows:
                self.stdout.write(
                    f"{day} {r.asset:<8} spread {r.spread_capture} market {r.market_move} funding {r.funding} "
                    f"hedge {r.hedge_cost} liquidations {r.liquidation_income} = {r.total}"
                )
