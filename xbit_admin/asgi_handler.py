"""Django's ASGI handler with each request's thread-sensitive work on a reused one-thread executor.

Django runs a request's synchronous parts (sync middleware, the view, signal receivers, closing the
response) on a thread of its own: ``ThreadSensitiveContext()`` per request, which creates a
``ThreadPoolExecutor(max_workers=1)`` — a new OS thread — and shuts it down at the end, for every
request. On the order endpoint that thread's start, hand-offs and shutdown were about a sixth of the
web process's CPU (py-spy). Here a finished request's executor goes back to an idle list and the next
request takes it (``ThreadSensitiveContext(executor=…)``, asgiref's API for exactly this: the caller owns
the executor). Requests still never share a thread at the same time, so one request's sync code runs on
one thread, as Django expects; a reused thread keeps its database connection between requests as a
WSGI server's threads do, and Django's request-finished handling closes or recycles it there."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext
from django.core.handlers.asgi import ASGIHandler


class ReusingASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self._idle: list[ThreadPoolExecutor] = []  # touched only on the event loop

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
