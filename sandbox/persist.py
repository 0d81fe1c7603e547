"""Optional persistence of the simulators' in-memory state (``python -m sandbox --state-dir DIR``).

``make run`` keeps XBIT's database between runs; without this the simulated venues would forget the
positions, balances and approved agents that the database remembers, and reconciliation would (rightly)
fail closed after every restart. State is pickled (the simulators are plain object graphs), written
atomically, every 30 s and at shutdown. Local development only: never load a file you did not write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

logger = logging.getLogger(__name__)
SAVE_EVERY_S = 30.0


def load(path: Path) -> Any | None:
    if not path.exists():
        return None
    try:
        with path.open("rb") as fh:
            return pickle.load(fh)  # noqa: S301 - a file this process wrote itself (see module docstring)
    except Exception:  # a corrupt or incompatible file: start fresh rather than refuse to start
        logger.warning("could not load simulator state from %s; starting fresh", path, exc_info=True)
        return None


def save(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def attach(app: web.Application, path: Path, current: Callable[[], Any]) -> None:
    """Save ``current()`` to ``path`` every 30 s while the app runs and once when it stops."""

    async def saver() -> None:
        while True:
            await asyncio.sleep(SAVE_EVERY_S)
            with contextlib.suppress(Exception):
                save(path, current())

    async def start(app: web.Application) -> None:
        app[_TASK_KEY] = asyncio.create_task(saver())

    async def stop(app: web.Application) -> None:
        task = app.get(_TASK_KEY)
        if task is not None:
            task.cancel()
        try:
            save(path, current())
        except Exception:
            logger.exception("could not save simulator state to %s", path)

    app.on_startup.append(start)
    app.on_cleanup.append(stop)


_TASK_KEY: web.AppKey[asyncio.Task[None]] = web.AppKey("persist_task", asyncio.Task)
