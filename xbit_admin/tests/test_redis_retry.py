"""Redis clients ride out a restart (a real Redis server of our own, stopped and started again)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import pytest
import redis

from core.redis_retry import restart_tolerant
from xbit_admin import devstack


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def own_redis(tmp_path: Path):  # type: ignore[no-untyped-def]
    profile = devstack.Profile(
        "redis-retry", tmp_path / "pg", 0, tmp_path / "redis", _free_port(), durable=False
    )
    url = devstack.redis_start(profile)
    yield profile, url
    devstack.redis_stop(profile)


def test_a_command_during_a_two_second_restart_waits_and_succeeds(own_redis) -> None:  # type: ignore[no-untyped-def]
    profile, url = own_redis
    client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0, **restart_tolerant())
    client.set("k", "v")
    devstack.redis_stop(profile)
    restarter = threading.Timer(2.0, devstack.redis_start, args=(profile,))
    restarter.start()
    started = time.monotonic()
    try:
        assert client.set("k", "after") is True  # waited for the server instead of failing
    finally:
        restarter.join()
    assert 1.5 < time.monotonic() - started < 8
    assert client.get("k") == b"after"


def test_without_the_retry_the_same_restart_is_an_error(own_redis) -> None:  # type: ignore[no-untyped-def]
    profile, url = own_redis
    client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0, retry=None)
    client.set("k", "v")
    devstack.redis_stop(profile)
    restarter = threading.Timer(2.0, devstack.redis_start, args=(profile,))
    restarter.start()
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            client.set("k", "after")
    finally:
        restarter.join()


def test_a_redis_error_past_the_retries_is_answered_503_with_a_code_not_500() -> None:
    # redis-py does not retry a connection reset while it opens a connection (the soak's Redis restart
    # found it: one order answered 500); the API answers it as the moment's outage it is
    from core.errors import exception_handler

    error = redis.exceptions.ConnectionError("Error while reading from 127.0.0.1:6379 : (104, 'reset')")
    response = exception_handler(error, {})
    assert response is not None and response.status_code == 503
    assert response.data["code"] == "SERVICE_UNAVAILABLE" and response["Retry-After"] == "1"
    assert "client_order_id" in response.data["message"]


class DroppingProxy:
    """A TCP proxy in front of a Redis server that accepts the first ``drop`` connections and closes
    them at once (a server shutting down for its restart), then forwards every later one."""

    def __init__(self, target_port: int, drop: int) -> None:
        self.target_port, self.drop, self.accepted = target_port, drop, 0
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = int(self.server.getsockname()[1])
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.accepted += 1
            if self.accepted <= self.drop:
                conn.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.server.close()


@pytest.mark.parametrize("handshake_retried", [True, False])
def test_a_connection_dropped_during_its_handshake_is_retried(own_redis, handshake_retried: bool) -> None:  # type: ignore[no-untyped-def]
    profile, _url = own_redis
    proxy = DroppingProxy(profile.redis_port, drop=3)
    url = f"redis://127.0.0.1:{proxy.port}/0"
    try:
        options = restart_tolerant(url) if handshake_retried else restart_tolerant()
        client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0, **options)
        if handshake_retried:
            assert client.set("k", "v") is True and proxy.accepted == 4
        else:  # redis-py's own retry covers the socket's connect only: the dropped handshake fails
            with pytest.raises(redis.exceptions.ConnectionError):
                client.set("k", "v")
    finally:
        proxy.close()


def _connections_received(client: redis.Redis) -> int:
    return int(client.info("stats")["total_connections_received"])


def test_the_cache_shares_one_connection_pool_across_request_contexts(own_redis) -> None:  # type: ignore[no-untyped-def]
    """Django makes a cache object per request context (every ASGI request has its own); each used to
    open a Redis connection of its own (core/redis_pool.py). Thirty requests' worth of cache reads, each
    in a fresh context as the order lane and Django's handler run them, now open one connection."""
    from contextvars import copy_context

    from django.conf import settings
    from django.core.cache import caches
    from django.test import override_settings

    from core.redis_pool import SharedConnectionPool

    _profile, url = own_redis
    counter = redis.Redis.from_url(url)  # one connection of its own, opened before counting
    counter.ping()
    options = {**settings.CACHES["default"]["OPTIONS"]}
    assert options["pool_class"] == "core.redis_pool.SharedConnectionPool"
    cache_settings = {"default": {**settings.CACHES["default"], "LOCATION": url, "OPTIONS": options}}

    def one_request() -> object:
        cache = caches["default"]
        cache.set("request", 1)
        assert cache.get_many(["request", "absent"]) == {"request": 1}
        return cache

    with override_settings(CACHES=cache_settings):
        before = _connections_received(counter)
        seen = [copy_context().run(one_request) for _ in range(30)]
        assert len({id(cache) for cache in seen}) > 1  # Django's own behaviour: a cache object per context
        assert _connections_received(counter) - before == 1
        # other options (another timeout): a pool of its own
        other = {"default": {**cache_settings["default"], "OPTIONS": {**options, "socket_timeout": 2.0}}}
        with override_settings(CACHES=other):
            copy_context().run(one_request)
            assert _connections_received(counter) - before == 2
    SharedConnectionPool.forget_all()


def test_the_live_config_listener_says_once_that_it_lost_redis_and_once_that_it_is_back(own_redis) -> None:  # type: ignore[no-untyped-def]
    # a process's listener through a real restart of its Redis: one line when the outage begins (not one
    # per reconnect attempt — thirteen processes each logged four in the soak's restart), one when it ends
    import os
    import subprocess
    import sys

    profile, url = own_redis
    script = (
        "import time, django\n"
        "django.setup()\n"
        "from core import live_config\n"
        "live_config._ensure_listener()\n"
        "print('LISTENING', flush=True)\n"
        "time.sleep(12)\n"
    )
    env = dict(os.environ, REDIS_URL=url, DJANGO_SETTINGS_MODULE="xbit_admin.settings.test", LOG_JSON="0")
    root = Path(__file__).resolve().parents[2]
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # the log lines
        text=True,
    )
    try:
        assert child.stdout is not None
        assert any("LISTENING" in child.stdout.readline() for _ in range(20))
        stopped = time.monotonic()
        devstack.redis_stop(profile)
        time.sleep(3.5)  # several reconnect attempts fail meanwhile (0.2, 0.4, 0.8, 1 s apart)
        devstack.redis_start(profile)
        outage = time.monotonic() - stopped
        out = child.communicate(timeout=30)[0]
    finally:
        child.kill()
    assert out.count("live-config listener lost Redis") == 1, out
    assert out.count("live-config listener has Redis again after") == 1, out
    # back within about a second of Redis (its reads went to the database until then), not after a
    # backoff grown to several seconds
    took = float(out.split("has Redis again after ")[1].split(" s")[0])
    assert took < outage + 1.5, (took, outage)
