"""The streams served for real in tests: the ASGI app in uvicorn on a free port (a thread of the test
process, so it sees the test database), the outbox relay and the user-stream fan-out as threads."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from asgiref.sync import SyncToAsync
from django.db import connections

from core.events.services import outbox_relay_batch, redis_client
from trading.stream.fanout import run_fanout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StreamServer:
    """``with StreamServer() as server: server.url("/ws/v1/user")`` — web, relay and fan-out running."""

    def __init__(self, *, app: str = "xbit_admin.asgi:application", relay_interval: float = 0.005) -> None:
        self.port = free_port()
        self.relay_interval = relay_interval
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,  # by name: uvicorn imports the platform's ASGI module (the roof, above trading)
                host="127.0.0.1",
                port=self.port,
                ws="websockets-sansio",
                lifespan="off",
                log_level="warning",
            )
        )
        self.stopping = threading.Event()
        self.fanout_stop: asyncio.Event | None = None
        self.fanout_loop: asyncio.AbstractEventLoop | None = None
        self.threads: list[threading.Thread] = []

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def _relay(self) -> None:
        client = redis_client()
        try:
            while not self.stopping.is_set():
                while outbox_relay_batch(client=client):
                    pass
                time.sleep(self.relay_interval)
        finally:
            connections.close_all()

    def _fanout(self) -> None:
        async def main() -> None:
            self.fanout_stop = asyncio.Event()
            self.fanout_loop = asyncio.get_running_loop()
            await run_fanout(self.fanout_stop, consumer="test", block_ms=50)

        asyncio.run(main())

    def __enter__(self) -> StreamServer:
        for target in (self.server.run, self._relay, self._fanout):
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self.threads.append(thread)
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(
        self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    ) -> Any:
        self.stopping.set()
        self.server.should_exit = True
        if self.fanout_loop is not None and self.fanout_stop is not None:
            self.fanout_loop.call_soon_threadsafe(self.fanout_stop.set)
        for thread in self.threads:
            thread.join(timeout=10)
        # the database connection the async side used lives in asgiref's one sync thread: close it there
        SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=10)
        # the fan-out's worker threads are gone with its loop, their connections not: end them so the
        # test database can be flushed and dropped
        with connections["default"].cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        return None
