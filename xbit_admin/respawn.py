"""A tiny supervisor for ``make run``: restart a long-running process when it exits, with backoff.

honcho (``make run``) stops every process as soon as one exits, so one crash would take the whole local
stack down. Procfile lines for long-running processes run under this instead::

    python -m xbit_admin.respawn [--name NAME] -- COMMAND [ARG ...]

* the command runs as a child in a process group of its own; SIGTERM, SIGINT and SIGQUIT sent to the
  supervisor (honcho signals the supervisor's group) are forwarded to the child's group, once, and the
  supervisor then exits with the child's status instead of restarting it;
* any other exit (a crash, ``kill -9``, even status 0: these processes are meant to run forever) is
  logged and the command is started again after a backoff that doubles from ``--backoff`` up to
  ``--max-backoff`` seconds and resets once the child has stayed up ``--reset-after`` seconds;
* on Linux the child is killed if the supervisor itself is killed (``PR_SET_PDEATHSIG``), so a
  ``kill -9`` of the supervisor never leaves an orphan behind.

In Kubernetes the kubelet restarts containers (``restartPolicy: Always``): the manifests run the
commands directly, not under this supervisor.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: ask the kernel for SIGKILL when the supervisor dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the child may outlive a killed supervisor
        pass


def exit_status(returncode: int) -> int:
    """A child killed by signal N (returncode -N) is reported as the shell does: 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


class Supervisor:
    def __init__(
        self,
        command: Sequence[str],
        *,
        name: str,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        reset_after: float = 60.0,
        max_restarts: int = 0,
    ) -> None:
        self.command = list(command)
        self.name = name
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.reset_after = reset_after
        self.max_restarts = max_restarts  # 0 = no limit
        self.restarts = 0
        self.stopping = threading.Event()
        self.child: subprocess.Popen[bytes] | None = None

    def log(self, message: str) -> None:
        print(f"[respawn {self.name}] {message}", file=sys.stderr, flush=True)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        first = not self.stopping.is_set()
        self.stopping.set()
        child = self.child
        if child is not None and child.poll() is None:
            if first:
                self.log(f"{signal.Signals(signum).name}: passing it on to pid {child.pid}")
            try:
                os.killpg(child.pid, signum)
            except ProcessLookupError:
                pass

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 - the command line the operator wrote (Procfile)
            self.command,
            start_new_session=True,  # its own group: one forwarded signal reaches it and its children
            # the supervisor is single-threaded, so a pre-exec hook is safe here
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )

    def run(self) -> int:
        for signum in FORWARDED:
            signal.signal(signum, self._on_signal)
        delay = self.backoff
        while True:
            started = time.monotonic()
            try:
                self.child = self._start()
            except OSError as exc:
                self.log(f"could not start {self.command[0]}: {exc}")
                return 127
            if self.stopping.is_set():  # a signal between the check and the start: pass it on now
                self._on_signal(signal.SIGTERM, None)
            returncode = self.child.wait()
            if self.stopping.is_set():
                return exit_status(returncode)
            uptime = time.monotonic() - started
            if uptime >= self.reset_after:
                delay = self.backoff
            if self.max_restarts and self.restarts >= self.max_restarts:
                self.log(f"exited with status {exit_status(returncode)}; {self.restarts} restart(s) used up")
                return exit_status(returncode)
            self.restarts += 1
            self.log(
                f"exited with status {exit_status(returncode)} after {uptime:.1f} s; "
                f"restart #{self.restarts} in {delay:.1f} s"
            )
            if self.stopping.wait(delay):
                return exit_status(returncode)
            delay = min(delay * 2, self.max_backoff)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m xbit_admin.respawn",
        description="Restart a long-running command when it exits; forward SIGTERM/SIGINT/SIGQUIT.",
    )
    parser.add_argument("--name", default="", help="label for the log lines (default: the command)")
    parser.add_argument("--backoff", type=float, default=1.0, help="first restart delay, seconds")
    parser.add_argument("--max-backoff", type=float, default=30.0, help="longest restart delay, seconds")
    parser.add_argument("--reset-after", type=float, default=60.0, help="uptime that resets the delay")
    parser.add_argument("--max-restarts", type=int, default=0, help="give up after this many (0 = never)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG ...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (python -m xbit_admin.respawn -- COMMAND ...)")
    supervisor = Supervisor(
        command,
        name=args.name or os.path.basename(command[0]),
        backoff=args.backoff,
        max_backoff=args.max_backoff,
        reset_after=args.reset_after,
        max_restarts=args.max_restarts,
    )
    return supervisor.run()


if __name__ == "__main__":
    raise SystemExit(main())
