"""Process-local caches of database-backed configuration, invalidated explicitly on write.

Hot paths (the routing decision, pre-trade checks) read configuration from memory. A write commits,
then publishes the cache's name on a Redis pub/sub channel; every process's listener thread drops its
copy, so the next read reloads from PostgreSQL — milliseconds, never a TTL guess. If the listener loses
Redis it drops every cache (and keeps dropping them on each read until it is back), so a lost message
can only cost a reload, never serve a stale value.

The same listener answers *probes* (``probe``): the console asks every running process which values it
now serves for some switches, and each answers from the caches its own code reads — so an operator sees
a change applied in the web, worker and feed processes, not merely published.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import redis
from django.conf import settings
from django.db import connection, connections, transaction

logger = logging.getLogger(__name__)

CHANNEL = "xbit:config-invalidate"
PROBE_CHANNEL = "xbit:config-probe"
PROBE_REPLY = "xbit:config-probe:{token}"
LISTENERS = "xbit:config-listeners"  # hash: "host:pid" → last heartbeat (unix s) and label
HEARTBEAT_S = 5.0
LISTENER_GONE_S = 3 * HEARTBEAT_S
T = TypeVar("T")
_MISSING = object()

_registry: dict[str, LiveConfig[object]] = {}
# names this process has changed: only these can have an unpublished change in an open transaction, so
# only their reads look at the transaction's pending callbacks (a thread-local lookup and a scan per read
# otherwise; a name stays here for the life of the process, which costs that lookup and nothing else)
_written: set[str] = set()
_listener_lock = threading.Lock()
_listener: threading.Thread | None = None
_listener_healthy = threading.Event()
_process_label: str | None = None
# answers a probe: requested keys → the values this process serves (set by the switches app)
_probe_answerer: Callable[[list[str]], dict[str, Any]] | None = None

# long-running processes by how they are started (``XBIT_PROCESS`` overrides)
_COMMANDS = {
    "run_feed": "feed",
    "run_relay": "relay",
    "run_risk_consumer": "risk",
    "run_hl_user_stream": "hlstream",
    "run_alert_notifier": "alerts",
    "platform_ready": "platform",
    "simulate_traders": "traders",
}


class LiveConfig(Generic[T]):
    def __init__(self, name: str, loader: Callable[[], T]) -> None:
        self.name = name
        self._loader = loader
        self._value: object = _MISSING
        self._generation = 0
        self._lock = threading.Lock()
        _registry[name] = self  # type: ignore[assignment]

    def get(self) -> T:
        if self.name in _written and connection.in_atomic_block and _changed_in_open_transaction(self.name):
            # this thread's open transaction changed the configuration: serve its own view, never
            # cache it (the transaction may still roll back)
            return self._loader()
        value = self._value
        if value is not _MISSING and _listener_healthy.is_set():
            return value  # type: ignore[return-value]
        _ensure_listener()
        with self._lock:
            generation = self._generation
        loaded = self._loader()
        with self._lock:
            # an invalidation that arrived while loading wins: the next read loads again
            if generation == self._generation and _listener_healthy.is_set():
                self._value = loaded
        return loaded

    def invalidate_local(self) -> None:
        with self._lock:
            self._generation += 1
            self._value = _MISSING


def invalidate(name: str) -> None:
    """Drop ``name`` in this process now and in every process once the current transaction commits."""
    cache = _registry.get(name)
    if cache is not None:
        cache.invalidate_local()
    _written.add(name)

    def publish() -> None:
        try:
            redis.Redis.from_url(settings.REDIS_URL).publish(CHANNEL, name)
        except redis.RedisError:
            logger.exception("could not publish config invalidation for %s", name)

    publish.live_config_name = name  # type: ignore[attr-defined]
    transaction.on_commit(publish)


def _changed_in_open_transaction(name: str) -> bool:
    """True while this connection's transaction has an unpublished change of ``name``: its publish
    callback is still queued (Django empties the queue when the transaction commits or rolls back)."""
    return any(getattr(entry[1], "live_config_name", None) == name for entry in connection.run_on_commit)


def process_label(argv: list[str] | None = None) -> str | None:
    """What kind of process this is (web, worker, beat, feed, …), or None for one-off commands and tests."""
    if os.environ.get("XBIT_PROCESS"):
        return os.environ["XBIT_PROCESS"]
    args = sys.argv if argv is None else argv
    if not args:
        return None
    program = os.path.basename(os.path.dirname(args[0]) if args[0].endswith("__main__.py") else args[0])
    if program in ("uvicorn", "daphne", "gunicorn"):
        return "web"
    if program == "celery":
        for role in ("worker", "beat"):
            if role in args[1:]:
                return role
        return None
    if program == "manage.py" and len(args) > 1:
        return _COMMANDS.get(args[1])
    return None


def start_for_this_process() -> None:
    """Start the listener now in a long-running process, so it answers probes before its first read."""
    global _process_label
    label = process_label()
    if label is not None:
        _process_label = label
        _ensure_listener()


def set_probe_answerer(answerer: Callable[[list[str]], dict[str, Any]]) -> None:
    global _probe_answerer
    _probe_answerer = answerer


def _answer_probe(raw: Any, client: redis.Redis) -> None:
    try:
        request = json.loads(raw)
        token, keys = str(request["token"]), [str(k) for k in request.get("keys", [])]
    except (ValueError, KeyError, TypeError):
        return
    started = time.perf_counter()
    try:
        values = _probe_answerer(keys) if _probe_answerer is not None else {}
        error = ""
    except Exception as exc:  # a probe never harms the process it asks
        values, error = {}, f"{type(exc).__name__}: {exc}"
    finally:
        connections.close_all()  # this thread's connections only: the listener holds none between probes
    answer = {
        "process": _process_label or process_label() or "other",
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "values": values,
        "error": error,
        "answer_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    key = PROBE_REPLY.format(token=token)
    client.rpush(key, json.dumps(answer, default=str))
    client.expire(key, 60)


def _heartbeat(client: redis.Redis) -> None:
    me = f"{socket.gethostname()}:{os.getpid()}"
    client.hset(LISTENERS, me, json.dumps({"at": time.time(), "process": _process_label or process_label()}))


def live_listeners(client: redis.Redis | None = None) -> dict[str, dict[str, Any]]:
    """The processes whose listener beat within the last few seconds (older entries are removed)."""
    client = client or redis.Redis.from_url(settings.REDIS_URL)
    now, alive, gone = time.time(), {}, []
    for member, raw in client.hgetall(LISTENERS).items():
        name = member.decode() if isinstance(member, bytes) else member
        try:
            info = json.loads(raw)
            fresh = now - float(info["at"]) <= LISTENER_GONE_S
        except (ValueError, KeyError, TypeError):
            fresh = False
        if fresh:
            alive[name] = info
        else:
            gone.append(name)
    if gone:
        client.hdel(LISTENERS, *gone)
    return alive


def probe(keys: list[str], *, wait_s: float = 0.5) -> list[dict[str, Any]]:
    """Ask every running process which values it serves for ``keys`` (switch keys). Returns as soon as
    every live listener has answered, else after ``wait_s``. Each answer: process, pid, host, values,
    error, answer_ms (its own work), after_ms (since the question)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    expected = len(live_listeners(client))
    token = uuid.uuid4().hex
    sent = time.perf_counter()
    client.publish(PROBE_CHANNEL, json.dumps({"token": token, "keys": keys}))
    answers: list[dict[str, Any]] = []
    key = PROBE_REPLY.format(token=token)
    deadline = sent + wait_s
    while (left := deadline - time.perf_counter()) > 0 and (not expected or len(answers) < expected):
        popped: Any = client.blpop([key], timeout=max(0.01, left))
        if popped is None:
            break
        answer = json.loads(popped[1])
        answer["after_ms"] = round((time.perf_counter() - sent) * 1000, 1)
        answers.append(answer)
    client.delete(key)
    return sorted(answers, key=lambda a: (a["process"], a["pid"]))


def reload_local() -> None:
    """Drop this process's copies so the next reads come from the database (the console's probe compares
    every process with the values in force, not with its own cache)."""
    _invalidate_all()


def _invalidate_all() -> None:
    for cache in list(_registry.values()):
        cache.invalidate_local()


def _ensure_listener() -> None:
    global _listener
    if _listener is not None and _listener.is_alive():
        return
    with _listener_lock:
        if _listener is not None and _listener.is_alive():
            return
        _listener = threading.Thread(target=_listen_forever, name="live-config", daemon=True)
        _listener.start()
    _listener_healthy.wait(timeout=2.0)


def _after_fork_in_child() -> None:
    """A forked child (Celery's prefork pool) has the parent's caches but not its listener thread: it
    serves nothing from memory until its own listener is subscribed."""
    _listener_healthy.clear()
    _invalidate_all()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _listen_forever() -> None:
    backoff = 0.2
    lost_at: float | None = None  # when the current outage began: one line when it begins, one when it ends
    while True:
        try:
            client = redis.Redis.from_url(settings.REDIS_URL, socket_keepalive=True, health_check_interval=10)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(CHANNEL, PROBE_CHANNEL)
            for _ in range(2):  # consume the subscribe confirmations
                pubsub.get_message(timeout=1.0)
            _invalidate_all()  # anything missed while we were not subscribed
            _listener_healthy.set()
            if lost_at is not None:
                logger.warning(
                    "live-config listener has Redis again after %.1f s; serving from memory",
                    time.monotonic() - lost_at,
                )
                lost_at = None
            backoff = 0.2
            beat = 0.0
            while True:
                if time.monotonic() - beat >= HEARTBEAT_S:
                    _heartbeat(client)
                    beat = time.monotonic()
                message = pubsub.get_message(timeout=1.0)
                if message is None or message.get("type") != "message":
                    continue
                data = message["data"].decode() if isinstance(message["data"], bytes) else message["data"]
                channel = message["channel"]
                if (channel.decode() if isinstance(channel, bytes) else channel) == PROBE_CHANNEL:
                    _answer_probe(data, client)
                    continue
                cache = _registry.get(data)
                if cache is not None:
                    cache.invalidate_local()
        except Exception:  # the listener must survive anything; readers fall back to loading
            _listener_healthy.clear()
            _invalidate_all()
            if lost_at is None:
                lost_at = time.monotonic()
                logger.warning(
                    "live-config listener lost Redis; reloading from the database until it is back"
                )
            time.sleep(backoff)
            # at most a second between attempts: until it is back, every read of every cached
            # configuration in this process goes to the database
            backoff = min(backoff * 2, 1.0)
