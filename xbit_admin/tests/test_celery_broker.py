"""The Celery worker survives losing Redis (issue #10): the exact clean-up the consumer runs after a lost
broker connection, against a real Redis server that this test stops.

State at the moment of the loss, as in the Redis restart drill: the task channel has delivered a message
that is not acknowledged yet (``acks_late``: a task is running) and is blocked in ``BRPOP``; the remote
control (pidbox) channel holds an auto-delete fanout queue, whose deletion fails while Redis is down.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Queue
from kombu.common import ignore_errors

from xbit_admin import devstack
from xbit_admin.celery import app


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[devstack.Profile]:
    profile = devstack.Profile(
        "broker-loss", tmp_path / "pg-unused", 0, tmp_path / "redis", _free_port(), False
    )
    devstack.redis_start(profile)
    yield profile
    devstack.redis_stop(profile)


def _lose_broker_mid_task(profile: devstack.Profile, transport: str | None) -> Connection:
    url = f"redis://127.0.0.1:{profile.redis_port}/0"
    queue = Queue("tasks", Exchange("tasks", "direct"), "tasks")
    with Connection(url) as producer:
        producer.SimpleQueue(queue).put({"task": "x"})
    conn = Connection(url, transport=transport)
    channel = conn.default_channel
    received: list[object] = []
    conn.Consumer(
        queue, callbacks=[lambda body, message: received.append(message)], channel=channel
    ).consume()
    conn.drain_events(timeout=5)
    assert len(received) == 1 and len(channel.qos._delivered) == 1  # delivered, not acknowledged
    Queue("worker.pidbox", Exchange("pidbox", "fanout"), auto_delete=True, channel=conn.channel()).declare()
    channel._brpop_start()  # the event loop waits for the next task
    devstack.redis_stop(profile)
    time.sleep(0.2)
    # celery.worker.consumer.Consumer.on_connection_error_after_connected:
    with contextlib.suppress(Exception):  # Celery ignores every error here
        conn.collect(socket_timeout=1.0)
    return conn


def test_the_worker_clean_up_after_a_lost_redis_does_not_crash(private_redis: devstack.Profile) -> None:
    transport = app.conf.broker_transport
    assert transport == "xbit_admin.celery:RedisTransport"  # what the worker uses with a redis:// broker
    conn = _lose_broker_mid_task(private_redis, transport)
    ignore_errors(conn, conn.close)  # must not raise: anything else is an "Unrecoverable error"


def test_kombus_own_redis_transport_still_crashes_there(private_redis: devstack.Profile) -> None:
    """Why RedisTransport exists. When this fails, kombu has fixed the crash: drop RedisTransport."""
    conn = _lose_broker_mid_task(private_redis, None)
    with pytest.raises(AttributeError, match="hostname"):
        ignore_errors(conn, conn.close)


def test_the_worker_retries_the_broker_for_as_long_as_it_takes() -> None:
    assert app.conf.broker_connection_retry is True
    assert app.conf.broker_connection_max_retries is None
    assert app.conf.worker_cancel_long_running_tasks_on_connection_loss is False
