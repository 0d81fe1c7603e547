"""Queue the wallets' Celery tasks by name, for the services that hand work to the workers (a withdrawal
or cold transfer to send once its transaction commits). ``wallets.tasks`` is the thin top: the tasks
import the services, and the services reach the tasks only through these names, never by importing them.

The names are the ``name=`` of the ``@shared_task`` definitions in ``wallets.tasks``; beat schedules and
other processes depend on them. The registered task object is looked up by name (rather than
``send_task``), so the app's options apply exactly as to ``task.apply_async`` — eager mode included."""

from __future__ import annotations

import logging

from celery import current_app

logger = logging.getLogger(__name__)

WITHDRAWAL_SEND = "wallets.withdrawal_send"
COLD_TRANSFER_SEND = "wallets.cold_transfer_send"


def task_enqueue(name: str, *args: object) -> None:
    """Queue the task registered as ``name`` on the wallets queue (call after commit). A broker outage is
    logged, not raised: the periodic sweep re-drives the row from the database."""
    try:
        current_app.tasks[name].apply_async(args=args, queue="wallets")
    except Exception:  # broker down: the periodic sweep picks the row up from the database
        logger.warning("could not enqueue %s%s; beat will re-drive it", name, args, exc_info=True)
