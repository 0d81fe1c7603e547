"""``manage.py client_groups_replay``: the B-book's P&L under the proposed client groups vs what happened."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from risk.client_risk.replay import bbook_whatif
from routing.client_groups import client_groups_assigned
from routing.decision import ClientGroup


class Command(BaseCommand):
    help = (
        "Replay the fills of the last N days: the B-book's trading P&L (marked at the end) under the "
        "groups assigned now, or under --group USER_ID=A|B|HYBRID overrides, against what happened."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--days", type=float, default=7)
        parser.add_argument("--group", action="append", default=[], metavar="USER_ID=GROUP")
        parser.add_argument("--top", type=int, default=20, help="clients listed (largest difference first)")

    def handle(self, *args: Any, **options: Any) -> None:
        groups = client_groups_assigned()
        for item in options["group"]:
            user, _, group = item.partition("=")
            try:
                groups[int(user)] = ClientGroup(group)
            except ValueError:
                raise CommandError(f"--group {item!r}: expected USER_ID=A|B|HYBRID") from None
        until = timezone.now()
        replay = bbook_whatif(since=until - timedelta(days=options["days"]), until=until, proposed=groups)
        result = replay.rounded()
        self.stdout.write(
            f"B-book P&L {result.since:%Y-%m-%d %H:%M} → {result.until:%Y-%m-%d %H:%M} UTC: "
            f"actual {result.actual} USDC, proposed {result.proposed} USDC, "
            f"difference {result.proposed - result.actual} USDC"
        )
        rows = sorted(result.clients.values(), key=lambda c: abs(c.proposed - c.actual), reverse=True)
        for c in rows[: options["top"]]:
            self.stdout.write(
                f"  client {c.user_id:>8}  {c.group.value:<6} {c.fills:>6} fills  "
                f"actual {c.actual:>14}  proposed {c.proposed:>14}"
            )
