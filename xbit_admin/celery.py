"""The Celery app: queues by priority and a registry for beat schedules.

Queues (architecture): ``critical`` (liquidation), ``hedge``, ``default``, ``wallets``. Apps register
periodic work with :func:`core.periodic.register_periodic` from their ``tasks`` module so the schedule lives next to
the code it drives.

Broker loss (the Redis restart drill): the worker rides through it by itself.

* ``broker_connection_max_retries = None``: retry for as long as Redis is away (Celery's default gives
  up after 100 attempts and the worker exits with status 0);
* ``worker_cancel_long_running_tasks_on_connection_loss = False`` (pinned: Celery 6 flips the default):
  a task that is running when Redis goes away finishes; its late ack cannot reach the lost channel, so
  the broker redelivers it after the visibility timeout and the task's own idempotency absorbs the
  repeat. Terminating it mid-way (e.g. between an HL call and the commit) would only add uncertainty;
* :class:`RedisTransport`: kombu's Redis channel, except that a channel whose transport is already
  torn down reports a *connection* error instead of crashing. kombu 5.7 crashed the worker
  ("Unrecoverable error: AttributeError: 'NoneType' object has no attribute 'hostname'") when the
  connection was lost while a task was unacknowledged and the remote-control (pidbox) channel failed
  to close: the consumer's clean-up closed the transport first, then the task channel's second close
  tried to restore the unacknowledged message through the closed transport.

Logging: the settings' ``LOGGING`` decides in the worker and beat as in every other process. Left to
itself, Celery replaced the root logger's handlers with its own plain-text one (production's JSON lines
were lost in the worker and beat) and set only the root level from ``-l``, so ``-l WARNING`` never
silenced the ``celery`` logger: beat's "Sending due task" and the worker's "received" / "succeeded"
lines scrolled by for every 0.5 s tick. ``-l`` now only adds detail to Celery's own loggers.
"""

from __future__ import annotations

import logging
import logging.config
import os
from typing import Any

import redis
from celery import Celery
from celery.signals import setup_logging
from django.conf import settings
from kombu import Queue
from kombu.transport import redis as kombu_redis

from core.periodic import BEAT_SCHEDULE

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "xbit_admin.settings.local")


class _RedisChannel(kombu_redis.Channel):  # type: ignore[misc]
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            # the transport was released by the consumer's clean-up after a lost connection: no new
            # Redis connection can be made from here (kombu would fail with an AttributeError, which
            # nothing in the worker treats as recoverable)
            raise redis.exceptions.ConnectionError("the broker connection was closed after a loss")
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)
        return params


class RedisTransport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = _RedisChannel


@setup_logging.connect
def _logging_from_settings(loglevel: int | str | None = None, **_: Any) -> None:
    """Celery's logging set-up (a connected receiver replaces it): the settings' ``LOGGING``, and
    ``-l`` lowers the threshold of Celery's own loggers when it asks for more than the settings."""

    logging.config.dictConfig(settings.LOGGING)
    if loglevel is None:
        return
    level = logging.getLevelName(loglevel.upper()) if isinstance(loglevel, str) else loglevel
    celery_logger = logging.getLogger("celery")
    if isinstance(level, int) and level < celery_logger.getEffectiveLevel():
        celery_logger.setLevel(level)


app = Celery("xbit")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = tuple(Queue(name) for name in ("critical", "hedge", "default", "wallets"))  # type: ignore[no-untyped-call]
app.conf.task_default_queue = "default"
app.conf.broker_transport_options = {"visibility_timeout": 3600, "queue_order_strategy": "priority"}
app.conf.broker_connection_retry = True
app.conf.broker_connection_max_retries = None
app.conf.worker_cancel_long_running_tasks_on_connection_loss = False
app.autodiscover_tasks()


@app.on_after_configure.connect
def _use_our_redis_transport(sender: Celery, **_: Any) -> None:
    """Redis brokers go through :class:`RedisTransport` (other brokers keep kombu's own transport)."""
    url = str(sender.conf.broker_url or "")
    if url.split("://", 1)[0] in ("redis", "rediss") and not sender.conf.broker_transport:
        sender.conf.broker_transport = f"{__name__}:RedisTransport"


# the rooms add their entries to core.periodic's schedule; beat reads the same dict object
app.conf.beat_schedule = BEAT_SCHEDULE
