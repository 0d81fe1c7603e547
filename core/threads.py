"""Thread pools made on first use, one per process."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor


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
                workers = int(os.environ.get("DB_POOL_MAX", "0") or 0) or self._default_workers
                self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=self._prefix)
            return self._executor

    @property
    def current(self) -> ThreadPoolExecutor | None:
        """The pool if this process has made it, else None."""
        return self._executor
