"""Django's ASGI handler with each request's thread-sensitive work on a reused one-thread executor.

Django runs a request's synchronous parts (sync middleware, the view, signal receivers, closing the
response) on a thread of its own: ``ThreadSensitiveContext()`` per request, which creates a
``ThreadPoolExecutor(max_workers=1)`` — a new OS thread — and shuts it down at the end, for every
request. On the order endpoint that thread's start, hand-offs and shutdown were about a sixth of the
web process's CPU (py-spy). Here a finished request's executor goes back to an idle list and the next
request takes it (``ThreadSensitiveContext(executor=…)``, asgiref's API for exactly this: the caller owns
the executor). Requests still never share a thread at the same time, so one request's sync code runs on
one thread, as Django expects; a reused thread keeps its database connection between requests as a
WSGI server's threads do, and Django's request-finished handling closes or recycles it there.

The middleware chain is built as a WSGI server builds it (every middleware and the view in sync mode)
and entered once through ``sync_to_async``: Django's ASGI build made the async-capable middlewares below
the first sync-only one run on the event loop, so each request crossed between the loop and its thread
six times (into the thread, back to the loop for the lower middlewares, into the thread for the view,
and back each time); now it crosses once each way."""

from __future__ import annotations

import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import SyncToAsync, ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler

_handlers: weakref.WeakSet[ReusingASGIHandler] = weakref.WeakSet()


def _forget_idle_executors() -> None:
    # a forked child has none of its parent's threads: an inherited idle executor would queue the
    # child's requests behind a worker thread that does not exist there (and hang them) — ours, and
    # asgiref's one thread for thread-sensitive work outside a request (a websocket consumer's database
    # calls) once the parent had used it (a test server forked after an in-process one had run)
    for handler in list(_handlers):
        handler._idle = []
    SyncToAsync.single_thread_executor = ThreadPoolExecutor(max_workers=1)


os.register_at_fork(after_in_child=_forget_idle_executors)


class ReusingASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self._idle: list[ThreadPoolExecutor] = []  # touched only on the event loop
        _handlers.add(self)

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        if is_async:
            chain: Any = self._middleware_chain  # type: ignore[has-type]  # Django's, untyped
            self._middleware_chain = sync_to_async(chain, thread_sensitive=True)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = (
            self._idle.pop()
            if self._idle
            else ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")
        )
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            self._idle.append(executor)
