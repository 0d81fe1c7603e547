"""Thread pools made on first use, one per process."""

from __future__ import annotations

import asyncio
import functools
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def pool_size(default_workers: int) -> int:
    """Threads for a pool whose each thread may hold a database connection: ``DB_POOL_MAX``, else
    ``default_workers``."""
    return int(os.environ.get("DB_POOL_MAX", "0") or 0) or default_workers


class ProcessThreadPool:
    """A ``ThreadPoolExecutor`` created on first use and forgotten in a forked child (which has none of
    its parent's threads and makes its own). Sized to the database connections the process may hold
    (``DB_POOL_MAX``), else ``default_workers``: each thread may hold one."""

    def __init__(self, thread_name_prefix: str, *, default_workers: int) -> None:
        self._prefix = thread_name_prefix
        self._default_workers = default_workers
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()  # a lock held at the fork stays held in the child
        self._executor = None

    def get(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                workers = pool_size(self._default_workers)
                self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=self._prefix)
            return self._executor

    @property
    def current(self) -> ThreadPoolExecutor | None:
        """The pool if this process has made it, else None."""
        return self._executor


class LoopThreads:
    """Worker threads for an asyncio server: ``await threads.run(fn, *args)`` runs ``fn`` on one of them
    and hands its result (or exception) back to the loop with a single ``call_soon_threadsafe``.

    ``loop.run_in_executor`` does the same through a ``concurrent.futures.Future`` chained to an asyncio
    one (a condition variable, two callbacks, a state copy): ~32 µs of CPU per call on this machine,
    against ~8 µs here. One queue, ``workers`` threads started on first use, forgotten in a forked child
    as :class:`ProcessThreadPool` is; sized the same way (``DB_POOL_MAX``, else ``default_workers``).
    A caller cancelled while its call runs gets no result; the call itself finishes."""

    def __init__(self, thread_name_prefix: str, *, default_workers: int) -> None:
        self._prefix = thread_name_prefix
        self._default_workers = default_workers
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[Any, ...]] | None = None
        self.workers = 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._queue = None
        self.workers = 0

    def _started(self) -> queue.SimpleQueue[tuple[Any, ...]]:
        with self._lock:
            if self._queue is None:
                self._queue = queue.SimpleQueue()
                self.workers = pool_size(self._default_workers)
                for n in range(self.workers):
                    name = f"{self._prefix}_{n}"
                    threading.Thread(target=self._work, args=(self._queue,), name=name, daemon=True).start()
            return self._queue

    @staticmethod
    def _work(tasks: queue.SimpleQueue[tuple[Any, ...]]) -> None:
        while True:
            report, fn, args = tasks.get()
            try:
                outcome: tuple[Any, BaseException | None] = (fn(*args), None)
            except BaseException as exc:  # handed to the caller, as run_in_executor does
                outcome = (None, exc)
            report(*outcome)
            del report, fn, args, outcome  # nothing of a finished call outlives it

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._started().put((functools.partial(_hand_back, loop, future), fn, args))
        return await future

    def on_each(self, fn: Callable[[], object], *, timeout: float = 10.0) -> None:
        """Run ``fn`` once on every worker thread (each waits for the others first, so no thread takes
        two), from outside the loop; nothing when no thread was started."""
        tasks = self._queue
        if tasks is None:
            return
        workers, done = self.workers, queue.SimpleQueue[BaseException | None]()
        barrier = threading.Barrier(workers)

        def each() -> None:
            try:
                barrier.wait(timeout=timeout / 2)
            except threading.BrokenBarrierError:
                pass
            fn()

        for _ in range(workers):
            tasks.put((lambda _result, exc: done.put(exc), each, ()))
        for _ in range(workers):
            exc = done.get(timeout=timeout)
            if exc is not None:
                raise exc


def _hand_back(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], result: Any, exc: Any) -> None:
    try:
        loop.call_soon_threadsafe(_settle, future, result, exc)
    except RuntimeError:  # the loop has closed: nobody is waiting any more
        pass


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.cancelled():
        return
    if exc is None:
        future.set_result(result)
    else:
        future.set_exception(exc)
