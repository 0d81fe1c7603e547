"""WEB_CPUS: the web process's threads kept on the CPUs named (xbit_admin/cpu_affinity.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from xbit_admin.cpu_affinity import CpuSettingError, cpus_from

ALLOWED = {0, 1, 2, 3}


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("", None),
        ("off", None),
        (" OFF ", None),
        ("auto", {3}),
        ("2", {2}),
        ("0,2", {0, 2}),
        ("1-3", {1, 2, 3}),
    ],
)
def test_cpus_named(text: str, cpus: set[int] | None) -> None:
    assert cpus_from(text, ALLOWED) == cpus


def test_auto_changes_nothing_on_one_cpu() -> None:
    assert cpus_from("auto", {5}) is None


@pytest.mark.parametrize("text", ["x", "1-", "-1", "3-1", "1;2", "7", "0-9"])
def test_bad_or_unavailable_cpus_are_refused(text: str) -> None:
    with pytest.raises(CpuSettingError, match="WEB_CPUS"):
        cpus_from(text, ALLOWED)


PROBE = """
import os, threading
from xbit_admin.cpu_affinity import pin_process
started = threading.Event()
stop = threading.Event()
def idle():
    started.set()
    stop.wait(10)
before = threading.Thread(target=idle)
before.start()
started.wait(5)
pinned = pin_process()
after = threading.Thread(target=stop.wait, args=(10,))
after.start()
masks = {tuple(sorted(os.sched_getaffinity(int(t)))) for t in os.listdir("/proc/self/task")}
stop.set()
print(sorted(pinned) if pinned else None, sorted(masks))
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity calls on this system")
@pytest.mark.parametrize("setting", ["auto", "explicit", "off"])
def test_every_thread_is_kept_on_the_cpus(setting: str) -> None:
    """Threads already running and threads started afterwards all get the CPUs (a process of its own:
    the setting stays with it)."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2 and setting != "off":
        pytest.skip("one CPU: nothing to choose")
    value = {"auto": "auto", "explicit": str(allowed[0]), "off": "off"}[setting]
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**os.environ, "WEB_CPUS": value},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    expected = {"auto": [allowed[-1]], "explicit": [allowed[0]], "off": None}[setting]
    masks = [tuple(expected)] if expected else [tuple(allowed)]
    assert out == f"{expected} {masks}"
