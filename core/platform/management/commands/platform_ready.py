"""Restart recovery (spec 04): close the order gate, rebuild and check, then open it.

1. orders are refused (503 with the reason) while this runs;
2. in-memory state is rebuilt from PostgreSQL by each process at start (routing/markets caches, the
   risk consumer's exposure); here: both HL accounts are resynced (positions vs HL, account health)
   and the reconciliation engine runs;
3. only when no dimension is CRITICAL does the gate open. The command then stays up (a Procfile
   process) and re-runs the checks every ``--every`` seconds, closing the gate on a critical failure
   (or a check that cannot run) and re-checking every 2 s while it is closed.

A PostgreSQL or Redis restart does not stop it: a failed pass closes the broken connection and backs
off (``core.loops``), then the checks run again on a fresh connection.

Prints how long it took from start to serving. Domain checks are looked up by dotted path
(``settings.PLATFORM_READY_CHECKS``) so the core imports no domain app.
"""

from __future__ import annotations

import logging
import signal
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils.module_loading import import_string

from core.loops import Backoff, db_recover
from core.platform.state import platform_ready_set

logger = logging.getLogger(__name__)

DEFAULT_CHECKS = [
    "trading.hl_accounts.startup_resync",
    "risk.reconciliation.startup_check",
]


def run_checks() -> tuple[bool, str, dict[str, Any]]:
    details: dict[str, Any] = {}
    for path in getattr(settings, "PLATFORM_READY_CHECKS", DEFAULT_CHECKS):
        try:
            check = import_string(path)
        except ImportError:
            details[path] = "not installed"
            continue
        try:
            ok, reason = check()
        except Exception as exc:  # a check that cannot run keeps the gate closed
            db_recover()  # the database went away mid-check: the next pass reconnects
            return False, f"{path} failed: {type(exc).__name__}: {exc}"[:300], details
        details[path] = reason or "ok"
        if not ok:
            return False, reason, details
    return True, "", details


class Command(BaseCommand):
    help = "Gate new orders until the platform is resynced and reconciled (restart recovery)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--every", type=float, default=60.0, help="re-check interval once open")
        parser.add_argument("--once", action="store_true", help="check once and exit (tests, benchmarks)")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        platform_ready_set(
            ready=False, reason="The platform is starting: resyncing with Hyperliquid and reconciling."
        )
        if options["once"]:
            ok, _reason, details = run_checks()
            if ok:
                platform_ready_set(ready=True, details=details)
                self.stdout.write(f"platform ready: serving {time.monotonic() - started:.2f} s after start")
            return
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        # only the long-running process owns its signals: ``--once`` also runs inside other processes
        # (tests), whose children would inherit a handler that ignores SIGTERM
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        backoff = Backoff()
        opened = False
        wait = 0.0
        while not stop:
            deadline = time.monotonic() + wait
            while not stop and time.monotonic() < deadline:
                time.sleep(0.1)
            if stop:
                return
            try:
                ok, reason, details = run_checks()
                platform_ready_set(
                    ready=ok, reason="" if ok else f"Not accepting orders: {reason}", details=details
                )
                backoff.succeeded()
            except Exception:  # the database (or Redis) is away: the gate state is retried, not lost
                logger.exception("platform readiness pass failed; retrying")
                ok = False
                backoff.failed(lambda: stop)
            if ok and not opened:
                opened = True
                self.stdout.write(f"platform ready: serving {time.monotonic() - started:.2f} s after start")
            wait = options["every"] if ok else 2.0
