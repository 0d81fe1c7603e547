"""``python -m xbit_admin.respawn``: a crashed process comes back with a growing delay; SIGTERM and
SIGINT reach the child once and end the supervisor with the child's status; a killed supervisor takes
its child with it. Real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from xbit_admin.respawn import exit_status

ROOT = Path(__file__).resolve().parents[2]

# A child that records each start and the signals it gets; crashes (status 3) on its first ``crashes``
# runs, then stays up until a signal ends it with status 0.
CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    log, crashes = sys.argv[1], int(sys.argv[2])
    with open(log, "a") as f:
        f.write(f"start {os.getpid()} {time.monotonic()}\\n")
    runs = sum(1 for line in open(log) if line.startswith("start"))
    if runs <= crashes:
        sys.exit(3)
    def bye(signum, frame):
        with open(log, "a") as f:
            f.write(f"signal {signal.Signals(signum).name}\\n")
        sys.exit(0)
    signal.signal(signal.SIGTERM, bye)
    signal.signal(signal.SIGINT, bye)
    with open(log, "a") as f:
        f.write("ready\\n")
    while True:
        time.sleep(0.1)
    """
)


def _supervise(tmp_path: Path, crashes: int, *options: str) -> tuple[subprocess.Popen[str], Path]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    log = tmp_path / "child.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "xbit_admin.respawn", "--name", "demo", *options, "--"]
        + [sys.executable, str(script), str(log), str(crashes)],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    return proc, log


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _wait_for(log: Path, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in _lines(log):
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {_lines(log)}")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def test_a_crashing_process_is_restarted_with_a_doubling_delay(tmp_path: Path) -> None:
    proc, log = _supervise(tmp_path, 3, "--backoff", "0.3", "--max-backoff", "5")
    try:
        _wait_for(log, "ready")
        starts = [float(line.split()[2]) for line in _lines(log) if line.startswith("start")]
        assert len(starts) == 4  # three crashes, then it stays up
        gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        # each restart waits at least its delay: 0.3 s, 0.6 s, 1.2 s
        assert gaps[0] >= 0.3 and gaps[1] >= 0.6 and gaps[2] >= 1.2, gaps
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    stderr = proc.stderr.read() if proc.stderr else ""
    assert "exited with status 3" in stderr and "restart #3 in 1.2 s" in stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_reaches_the_child_once_and_ends_the_supervisor(tmp_path: Path, signum: int) -> None:
    proc, log = _supervise(tmp_path, 0)
    try:
        _wait_for(log, "ready")
        proc.send_signal(signum)
        assert proc.wait(20) == 0  # the child's own status: it exited cleanly on the signal
    finally:
        _stop(proc)
    lines = _lines(log)
    assert lines.count(f"signal {signal.Signals(signum).name}") == 1
    assert sum(1 for line in lines if line.startswith("start")) == 1  # not restarted after the stop


def test_a_stop_during_the_restart_delay_ends_the_supervisor_at_once(tmp_path: Path) -> None:
    proc, log = _supervise(tmp_path, 100, "--backoff", "30")
    try:
        _first_start(log)
        time.sleep(0.5)  # the child has crashed; the supervisor waits 30 s before the next start
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 3  # the last child's status
        assert time.monotonic() - started < 5
    finally:
        _stop(proc)


def _first_start(log: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in _lines(log):
            if line.startswith("start"):
                return line
        time.sleep(0.05)
    raise AssertionError("the child never started")


def test_killing_the_supervisor_takes_the_child_with_it(tmp_path: Path) -> None:
    proc, log = _supervise(tmp_path, 0)
    try:
        _wait_for(log, "ready")
        child_pid = int(_lines(log)[0].split()[1])
        os.kill(proc.pid, signal.SIGKILL)  # only the supervisor: the child is in a group of its own
        proc.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(child_pid):
            time.sleep(0.05)
        assert not _alive(child_pid)
    finally:
        _stop(proc)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_a_child_killed_by_a_signal_is_reported_as_the_shell_does() -> None:
    assert exit_status(-9) == 137 and exit_status(-15) == 143 and exit_status(3) == 3
