"""The ASGI handler reuses a finished request's one-thread executor instead of starting a thread per
request, and never lets two requests in flight share one."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from xbit_admin.asgi_handler import ReusingASGIHandler


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }


async def _get(handler: ReusingASGIHandler, path: str) -> int:
    sent: list[dict[str, Any]] = []
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if not received:
            received = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)  # the client never disconnects while the answer is built
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await handler(_scope(path), receive, send)
    return int(next(m["status"] for m in sent if m["type"] == "http.response.start"))


@pytest.mark.django_db(transaction=True)
def test_sequential_requests_share_one_executor_and_concurrent_ones_get_their_own() -> None:
    handler = ReusingASGIHandler()

    async def scenario() -> tuple[int, int, int]:
        assert await _get(handler, "/healthz") == 200
        assert await _get(handler, "/healthz") == 200
        after_two_in_a_row = len(handler._idle)
        statuses = await asyncio.gather(*(_get(handler, "/healthz") for _ in range(3)))
        assert statuses == [200, 200, 200]
        return after_two_in_a_row, len(handler._idle), len({id(e) for e in handler._idle})

    sequential, concurrent, distinct = asyncio.run(scenario())
    assert sequential == 1  # the second request ran on the first one's thread
    assert concurrent == distinct and 1 <= concurrent <= 3  # in flight together: never the same executor


def test_websockets_are_not_for_django() -> None:
    with pytest.raises(ValueError, match="websocket"):
        asyncio.run(ReusingASGIHandler()({"type": "websocket"}, None, None))


@pytest.mark.django_db(transaction=True)
def test_a_request_enters_its_thread_once_every_middleware_on_it(monkeypatch: Any) -> None:
    """The top and the lowest middleware run on the request's one thread, not on the event loop:
    Django's own ASGI build ran the async-capable middlewares below the first sync-only one on the loop,
    between two more hops."""
    import threading

    from django.middleware.clickjacking import XFrameOptionsMiddleware
    from django.middleware.security import SecurityMiddleware

    seen: dict[str, int] = {}

    def spy(name: str, original: Any) -> Any:
        def call(self: Any, request: Any) -> Any:
            seen[name] = threading.get_ident()
            return original(self, request)

        return call

    monkeypatch.setattr(SecurityMiddleware, "__call__", spy("top", SecurityMiddleware.__call__))
    monkeypatch.setattr(XFrameOptionsMiddleware, "__call__", spy("lowest", XFrameOptionsMiddleware.__call__))
    handler = ReusingASGIHandler()
    loop: dict[str, int] = {}

    async def scenario() -> int:
        loop["thread"] = threading.get_ident()
        return await _get(handler, "/healthz")

    assert asyncio.run(scenario()) == 200
    assert seen["top"] == seen["lowest"] != loop["thread"]


def test_a_forked_child_gets_threads_of_its_own() -> None:
    """A process forked after this one ran thread-sensitive work (a test's in-process server, then a
    forked live server) must not wait on the parent's threads, which do not exist in the child."""
    import os
    import signal

    from asgiref.sync import SyncToAsync, sync_to_async

    handler = ReusingASGIHandler()
    assert SyncToAsync.single_thread_executor.submit(lambda: 1).result(timeout=5) == 1  # its thread started
    handler._idle.append(ThreadPoolExecutor(max_workers=1))
    handler._idle[0].submit(lambda: None).result(timeout=5)
    pid = os.fork()
    if pid == 0:  # the child: both kinds of work answer within 5 s, or the alarm ends it with status 14
        signal.alarm(5)
        ok = False
        try:
            ok = handler._idle == [] and asyncio.run(sync_to_async(lambda: 7, thread_sensitive=True)()) == 7
        finally:
            os._exit(0 if ok else 1)  # never back into pytest from the child
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
