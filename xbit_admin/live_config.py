"""Process-local caches of database-backed configuration, invalidated explicitly on write.

Hot paths (the routing decision, pre-trade checks) read configuration from memory. A write commits,
then publishes the cache's name on a Redis pub/sub channel; every process's listener thread drops its
copy, so the next read reloads from PostgreSQL — milliseconds, never a TTL guess. If the listener loses
Redis it drops every cache (and keeps dropping them on each read until it is back), so a lost message
can only cost a reload, never serve a stale value.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import redis
from django.conf import settings
from django.db import connection, transaction

logger = logging.getLogger(__name__)

CHANNEL = "xbit:config-invalidate"
T = TypeVar("T")
_MISSING = object()

_registry: dict[str, LiveConfig[object]] = {}
_listener_lock = threading.Lock()
_listener: threading.Thread | None = None
_listener_healthy = threading.Event()


class LiveConfig(Generic[T]):
    def __init__(self, name: str, loader: Callable[[], T]) -> None:
        self.name = name
        self._loader = loader
        self._value: object = _MISSING
        self._generation = 0
        self._lock = threading.Lock()
        _registry[name] = self  # type: ignore[assignment]

    def get(self) -> T:
        if connection.in_atomic_block and _changed_in_open_transaction(self.name):
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


def _listen_forever() -> None:
    backoff = 0.2
    while True:
        try:
            client = redis.Redis.from_url(settings.REDIS_URL, socket_keepalive=True, health_check_interval=10)
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(CHANNEL)
            pubsub.get_message(timeout=1.0)  # consume the subscribe confirmation
            _invalidate_all()  # anything missed while we were not subscribed
            _listener_healthy.set()
            backoff = 0.2
            for message in pubsub.listen():
                if message.get("type") == "message":
                    name = message["data"].decode() if isinstance(message["data"], bytes) else message["data"]
                    cache = _registry.get(name)
                    if cache is not None:
                        cache.invalidate_local()
        except Exception:  # the listener must survive anything; readers fall back to loading
            _listener_healthy.clear()
            _invalidate_all()
            logger.warning("live-config listener lost Redis; reloading from the database until it is back")
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
