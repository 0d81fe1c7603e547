"""The long-running loops survive losing their PostgreSQL connections (issue #10, PostgreSQL restart
drill): each runs as its own process against this test's database, does its work once, has every
backend connection it holds killed by the server (``pg_terminate_backend``, what a restart does to
them), and must then do its work again — by itself, without being restarted.

Real processes, real PostgreSQL and Redis; the HL user stream and the feed are exercised by the drill
(``make drills``), which needs the sandbox.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import connection, transaction

from core.events.models import ProcessedEvent
from core.events.services import STREAM, ensure_group, outbox_emit
from core.platform.models import PlatformState

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


class Loop:
    def __init__(self, proc: subprocess.Popen[bytes], app_name: str, log: Path) -> None:
        self.proc = proc
        self.app_name = app_name
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def backends(self) -> int:
        with connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [self.app_name])
            return int(cur.fetchone()[0])

    def terminate_backends(self) -> int:
        """What a PostgreSQL restart does to this process's connections."""
        with connection.cursor() as cur:
            cur.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                [self.app_name],
            )
            return int(cur.fetchone()[0])


@pytest.fixture
def start_loop(tmp_path: Path) -> Iterator[Callable[..., Loop]]:
    started: list[Loop] = []
    db = settings.DATABASES["default"]

    def start(*args: str) -> Loop:
        app_name = f"loop-{uuid.uuid4().hex[:10]}"
        env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="xbit_admin.settings.test",
            DATABASE_URL=f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            REDIS_URL=settings.REDIS_URL,
            DB_APPLICATION_NAME=app_name,
            DB_POOL_MAX="",
            PYTHONUNBUFFERED="1",
        )
        log = tmp_path / f"{args[0]}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "manage.py", *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        loop = Loop(proc, app_name, log)
        started.append(loop)
        return loop

    yield start
    for loop in started:
        if loop.proc.poll() is None:
            loop.proc.send_signal(signal.SIGTERM)
            try:
                loop.proc.wait(20)
            except subprocess.TimeoutExpired:
                loop.proc.kill()
                loop.proc.wait(10)


def _eventually(what: str, check: Callable[[], Any], loop: Loop, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert loop.proc.poll() is None, (
            f"the process exited ({loop.proc.returncode}):\n{loop.output()[-3000:]}"
        )
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout} s:\n{loop.output()[-3000:]}")


def _kill_its_connections(loop: Loop) -> None:
    _eventually("the process connecting", loop.backends, loop)
    assert loop.terminate_backends() >= 1
    time.sleep(0.5)  # let it hit the dead connection before the next piece of work arrives


@pytest.fixture
def stream() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    client.delete(STREAM)
    yield client
    client.delete(STREAM)


def _emit() -> str:
    with transaction.atomic():
        event = outbox_emit(topic="test.loop", payload={"n": 1})
    return str(event.event_id)


def _published(client: redis.Redis, event_id: str) -> bool:
    return any(fields["event_id"] == event_id for _id, fields in client.xrange(STREAM))


def test_the_relay_keeps_publishing_after_its_connections_are_killed(start_loop: Any, stream: Any) -> None:
    relay = start_loop("run_relay", "--poll", "0.5")
    first = _emit()
    _eventually("the first event published", lambda: _published(stream, first), relay)
    # the relay holds two connections: Django's and the LISTEN one
    _kill_its_connections(relay)
    second = _emit()
    _eventually("an event published after the connections died", lambda: _published(stream, second), relay)


def _add(client: redis.Redis, topic: str, payload: str) -> str:
    event_id = str(uuid.uuid4())
    client.xadd(STREAM, {"event_id": event_id, "topic": topic, "aggregate": "", "payload": payload})
    return event_id


def _handled(consumer: str, event_id: str) -> bool:
    return ProcessedEvent.objects.filter(consumer=consumer, event_id=event_id).exists()


def test_the_risk_consumer_keeps_consuming_after_its_connection_is_killed(
    start_loop: Any, stream: Any
) -> None:
    risk = start_loop("run_risk_consumer", "--no-rebuild")
    first = _add(stream, "trading.fill", "{}")  # not an internal fill: recorded as handled, no effect
    _eventually("the first event handled", lambda: _handled("risk-exposure", first), risk)
    _kill_its_connections(risk)
    second = _add(stream, "trading.fill", "{}")
    _eventually("an event handled after the connection died", lambda: _handled("risk-exposure", second), risk)
    assert ProcessedEvent.objects.filter(consumer="risk-exposure").count() == 2  # each exactly once


def test_the_alert_notifier_keeps_consuming_after_its_connection_is_killed(
    start_loop: Any, stream: Any
) -> None:
    ensure_group(stream, "alerts.notifier", start="$")  # the group exists before the first event
    notifier = start_loop("run_alert_notifier", "--block-ms", "200")
    first = _add(stream, "alert.raised", '{"id": 0}')  # no such alert: recorded as handled, no delivery
    _eventually("the first event handled", lambda: _handled("alerts.notifier", first), notifier)
    _kill_its_connections(notifier)
    second = _add(stream, "alert.raised", '{"id": 0}')
    _eventually(
        "an event handled after the connection died", lambda: _handled("alerts.notifier", second), notifier
    )


def test_the_readiness_gate_keeps_checking_after_its_connection_is_killed(start_loop: Any) -> None:
    gate = start_loop("platform_ready", "--every", "0.3")

    def opened_at() -> Any:
        row = PlatformState.objects.filter(key="orders").values("ready", "changed_at").first()
        return row["changed_at"] if row and row["ready"] else None

    first = _eventually("the gate opening", opened_at, gate)
    _kill_its_connections(gate)
    # re-checked (and open) again after the connection died: not wedged, not exited
    _eventually("a passing re-check after the connection died", lambda: (opened_at() or first) > first, gate)
    time.sleep(1.0)
    later = _eventually("the gate open", opened_at, gate)
    assert later > first
