"""Start ``python -m sandbox`` as a child process for tests and benchmarks.

Usage::

    with SandboxProcess(seed=1, config={...}) as sb:
        sb.urls["hyperliquid"]   # "http://127.0.0.1:<free port>"
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any


class SandboxProcess:
    def __init__(self, *, seed: int = 7, config: dict[str, Any] | None = None, timeout: float = 30.0):
        self.seed = seed
        self.config = config or {}
        self.timeout = timeout
        self.urls: dict[str, str] = {}
        self.proc: subprocess.Popen[str] | None = None
        self._config_path: Path | None = None
        self.stderr_lines: list[str] = []

    def start(self) -> SandboxProcess:
        import tempfile

        fd, path = tempfile.mkstemp(prefix="sandbox-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(self.config, fh)
        self._config_path = Path(path)
        cmd = [sys.executable, "-m", "sandbox", "--seed", str(self.seed), "--config", path]
        cmd += ["--hyperliquid-port", "0", "--webhooks-port", "0", "--tron-port", "0", "--solana-port", "0"]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        deadline = time.monotonic() + self.timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                if self.proc.poll() is not None:
                    break
                continue
            if line.startswith("SANDBOX READY "):
                self.urls = json.loads(line[len("SANDBOX READY ") :])
                threading.Thread(target=self._drain_stdout, daemon=True).start()
                return self
        self.stop()
        raise RuntimeError("sandbox did not start:\n" + "".join(self.stderr_lines[-50:]))

    def _drain_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for _ in self.proc.stdout:
            pass

    def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line)
            del self.stderr_lines[:-500]

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._config_path:
            self._config_path.unlink(missing_ok=True)

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
