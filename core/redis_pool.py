"""One Redis connection pool per process for Django's cache.

Django makes a ``RedisCache`` object per request context (``django.core.cache.caches`` is
context-local, and under ASGI every request runs in a context of its own), the object makes its own
client and the client its own connection pool. So every request that used the cache opened a TCP
connection to Redis (and its handshake) and left it to the garbage collector: measured on the order
path with a session's token, its revocation check was ~15 % of the web process's CPU, nearly all of it
connecting. ``SharedConnectionPool`` (the cache's ``pool_class`` option) gives every cache object of
the process the one pool made for its URL and options, as the platform's other Redis clients already
share theirs. redis-py's pool is thread-safe and starts afresh in a forked child."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from redis import ConnectionPool


class SharedConnectionPool(ConnectionPool):
    """A ``ConnectionPool`` whose ``from_url`` returns the pool already made for the same URL and the
    same options (the same objects: changed settings with other values get a pool of their own)."""

    _shared: ClassVar[dict[tuple[Any, ...], tuple[tuple[Any, ...], ConnectionPool]]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Any:
        names = sorted(kwargs)
        key = (url, *((name, id(kwargs[name])) for name in names))
        found = cls._shared.get(key)
        if found is None:
            with cls._lock:
                found = cls._shared.get(key)
                if found is None:
                    # the option objects are kept with the pool, so their ids cannot be reused meanwhile
                    found = (tuple(kwargs[name] for name in names), super().from_url(url, **kwargs))
                    cls._shared[key] = found
        return found[1]

    @classmethod
    def forget_all(cls) -> None:
        """Disconnect and drop every shared pool (a test that must start without connections)."""
        with cls._lock:
            pools = [pool for _options, pool in cls._shared.values()]
            cls._shared.clear()
        for pool in pools:
            pool.disconnect()
