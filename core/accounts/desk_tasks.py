"""The client-restriction expiry sweep, apart from ``tasks`` so that the services the sweep
calls (``desk`` → ``services``) and the lockout task ``services`` queues do not import each other."""

from __future__ import annotations

from celery import shared_task

from core.accounts.desk import client_restrictions_expire
from core.periodic import register_periodic


@shared_task(name="accounts.restrictions_expire", ignore_result=True)
def restrictions_expire_task() -> None:
    """Lift client restrictions whose expiry has passed (``desk.client_restrictions_expire``); safe to run
    twice (rows are claimed with SKIP LOCKED, a lifted row is skipped)."""

    client_restrictions_expire()


register_periodic("accounts.restrictions_expire", "accounts.restrictions_expire", 60)
