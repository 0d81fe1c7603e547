from typing import Any

from django.core.management.base import BaseCommand, CommandError

from core.audit.services import audit_chain_verify


class Command(BaseCommand):
    help = "Recompute the audit log's hash chain; exit non-zero at the first tampered or missing row."

    def handle(self, *args: Any, **options: Any) -> None:
        report = audit_chain_verify()
        if not report.ok:
            raise CommandError(
                f"audit chain broken at entry {report.broken_at}: {report.problem} "
                f"({report.checked} entries verified before it)"
            )
        self.stdout.write(self.style.SUCCESS(f"audit chain intact: {report.checked} entries verified"))
