"""``manage.py client_groups_classify``: run the client-group classifier now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from risk.client_risk.classify import client_groups_classify


class Command(BaseCommand):
    help = "Classify every client with metrics into A / B / HYBRID (the markout loop does it every minute)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--force", action="store_true", help="also while the groups' mode is OFF")

    def handle(self, *args: Any, **options: Any) -> None:
        counts = client_groups_classify(force=options["force"])
        self.stdout.write(
            f"{counts['clients']} client(s) looked at, {counts['changed']} moved, "
            f"{counts['manual']} manual override(s) left alone"
        )
