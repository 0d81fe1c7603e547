"""After-commit side work of liquidation, off the critical path: one daemon thread per process runs
the console pushes and the emails' hand-over in order, so milliseconds of channel-layer or broker I/O
never delay the next detection or liquidation. Best effort, like the work itself: what is still queued
when the process exits is dropped (call :func:`background_flush` first where that matters)."""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from django.db import transaction

from core.live import broadcast_now

logger = logging.getLogger(__name__)


class _Background:
    """The daemon thread of one process and its queue of jobs."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.jobs: queue.Queue[Callable[[], None]] = queue.Queue()
        threading.Thread(target=self._run, name="liquidation-background", daemon=True).start()

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            try:
                job()
            except Exception:
                logger.exception("liquidation background work failed")
            finally:
                self.jobs.task_done()


_background: _Background | None = None


def in_background(job: Callable[[], None]) -> None:
    global _background
    if _background is None or _background.pid != os.getpid():  # a forked process gets its own
        _background = _Background()
    _background.jobs.put(job)


def push_on_commit(payload: dict[str, Any]) -> None:
    """Push a liquidation event to the consoles after commit, from the background thread."""
    transaction.on_commit(lambda: in_background(lambda: broadcast_now("liquidations", payload)))


def background_flush(timeout: float = 10.0) -> None:
    """Wait until the after-commit work handed to the background thread is done (tests, a process
    about to exit)."""
    done = threading.Event()
    in_background(done.set)
    done.wait(timeout)
