"""Queue risk's Celery tasks by name, for the services that hand work to the workers (liquidation's
wake-up, retry and emails; the hedge debouncer). ``risk.tasks`` is the thin top: the tasks import the
services, and the services reach the tasks only through these names, never by importing them.

The names are the ``name=`` of the ``@shared_task`` definitions in ``risk.tasks``; beat schedules and
other processes depend on them. The registered task object is looked up by name (rather than
``send_task``), so the app's options apply exactly as to ``task.apply_async`` — eager mode included."""

from __future__ import annotations

from typing import Any

from celery import current_app

LIQUIDATIONS_DRAIN = "risk.liquidations_drain"
LIQUIDATION_EXECUTE = "risk.liquidation_execute"
LIQUIDATION_EMAILS = "risk.liquidation_emails"
HEDGE_EVALUATE = "risk.hedge_evaluate"


def task_enqueue(
    name: str, *, queue: str, args: list[Any] | None = None, countdown: float | None = None
) -> None:
    """Queue the task registered as ``name`` on ``queue``. Raises when the broker cannot take it (the
    callers decide what a lost wake-up costs)."""
    current_app.tasks[name].apply_async(args=args, countdown=countdown, queue=queue)
