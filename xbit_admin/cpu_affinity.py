"""The web process on one CPU.

The web process is one Python interpreter: its threads (the event loop, the order lane's workers) run
Python one at a time under the GIL, so together they never use more than about one CPU. Each database
or Redis call releases the GIL and takes it back. Under load those handoffs are frequent: strace
counted ~450 futex calls per order at eight clients, pinned or not. Spread over several CPUs, a
handoff wakes a thread on another CPU (an inter-processor wake-up, the interpreter's state moving
between caches); on one CPU it is a plain context switch. On the 2-core benchmark machine the same
work then took 20–22 % less CPU per order at eight clients (half the system time), and the paced p95
at 200 orders/s fell by more than half (two runs: README, performance table). PostgreSQL, Redis and
the other processes keep every CPU.

``WEB_CPUS`` (environment, read once at start, as ``DB_POOL_MAX``):

* ``auto`` (the Procfile's web line: one web process per machine): the last CPU this process may use,
  when it may use two or more. Not for ``uvicorn --workers N``, whose workers would all take the
  same CPU: leave it unset there, or start the workers yourself with a list each;
* a list such as ``3`` or ``2,3`` or ``0-1``: exactly those (each must be one the process may use:
  several web processes on one machine each get their own);
* unset, empty or ``off``: no change.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

logger = logging.getLogger(__name__)


class CpuSettingError(ValueError):
    """``WEB_CPUS`` is not what the module docstring describes."""


def cpus_from(text: str, allowed: set[int]) -> set[int] | None:
    """The CPUs ``text`` names (``auto``, ``off`` or a list; module docstring), given the ``allowed`` ones;
    None for no change."""
    text = text.strip().lower()
    if text in {"", "off", "none"}:
        return None
    if text == "auto":
        return {max(allowed)} if len(allowed) >= 2 else None
    cpus: set[int] = set()
    for part in text.split(","):
        first, dash, last = part.strip().partition("-")
        if not first.isdigit() or (dash and not last.isdigit()):
            raise CpuSettingError(f"WEB_CPUS={text!r}: auto, off, or CPUs such as 3, 2,3 or 0-1")
        low, high = int(first), int(last) if dash else int(first)
        if high < low:
            raise CpuSettingError(f"WEB_CPUS={text!r}: the range {part.strip()} runs backwards")
        cpus.update(range(low, high + 1))
    if not cpus <= allowed:
        raise CpuSettingError(
            f"WEB_CPUS={text!r}: this process may only use CPUs {','.join(map(str, sorted(allowed)))}"
        )
    return cpus


def pin_process(environ: Mapping[str, str] = os.environ) -> set[int] | None:
    """Keep every thread of this process, and those it starts later, on the CPUs ``WEB_CPUS`` names.
    Returns them, or None when nothing changed (unset, ``off``, one CPU only, or no affinity calls on
    this system)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = cpus_from(environ.get("WEB_CPUS", ""), os.sched_getaffinity(0))
    if cpus is None:
        return None
    # Linux sets a thread's affinity, not the process's: every thread alive now, then new ones inherit
    # it from the thread that starts them
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except ProcessLookupError:  # a thread that ended meanwhile
            pass
    logger.info("web process kept on CPU %s (WEB_CPUS)", ",".join(map(str, sorted(cpus))))
    return cpus


__all__ = ["CpuSettingError", "cpus_from", "pin_process"]
