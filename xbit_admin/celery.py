"""The Celery app: queues by priority and a registry for beat schedules.

Queues (architecture): ``critical`` (liquidation), ``hedge``, ``default``, ``wallets``. Apps register
periodic work with :func:`register_periodic` from their ``tasks`` module so the schedule lives next to
the code it drives.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "xbit_admin.settings.local")

app = Celery("xbit")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = tuple(Queue(name) for name in ("critical", "hedge", "default", "wallets"))  # type: ignore[no-untyped-call]
app.conf.task_default_queue = "default"
app.conf.broker_transport_options = {"visibility_timeout": 3600, "queue_order_strategy": "priority"}
app.autodiscover_tasks()

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {}


def register_periodic(
    name: str, task: str, seconds: float, *, queue: str = "default", **options: Any
) -> None:
    """Add a beat entry. Idempotent per name, so re-imports in tests do not duplicate it."""
    BEAT_SCHEDULE[name] = {"task": task, "schedule": seconds, "options": {"queue": queue, **options}}
    app.conf.beat_schedule = BEAT_SCHEDULE
