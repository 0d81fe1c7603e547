"""The real alert receivers (``python -m sandbox``'s webhooks service) and the notifier pointed at
them, with short timeouts so failure tests stay fast.

The sandbox is started as a process through its documented command line rather than with
``sandbox.testing.SandboxProcess``: the import-linter contract "the core imports no domain app" covers
``core.alerts`` including its tests (unlike the house → sandbox contract, it has no test
exemption), and we reach the receivers over HTTP only anyway."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.request import Request, urlopen

import pytest

ROUTING_KEY = "R" * 32
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def _webhooks_url() -> Iterator[str]:
    fd, config = tempfile.mkstemp(prefix="alerts-sandbox-", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        json.dump({"webhooks": {"pagerduty_routing_keys": [ROUTING_KEY]}}, fh)
    cmd = [sys.executable, "-m", "sandbox", "--seed", "5", "--config", config]
    cmd += ["--hyperliquid-port", "0", "--webhooks-port", "0", "--tron-port", "0", "--solana-port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        deadline, url = time.monotonic() + 30, ""
        while not url and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            if line.startswith("SANDBOX READY "):
                url = json.loads(line[len("SANDBOX READY ") :])["webhooks"]
        if not url:
            raise RuntimeError("the sandbox did not start")
        threading.Thread(target=lambda: [None for _ in proc.stdout or ()], daemon=True).start()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        Path(config).unlink(missing_ok=True)


@dataclass
class Receivers:
    base: str

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = Request(  # noqa: S310 - loopback sandbox
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urlopen(request, timeout=10) as response:  # noqa: S310 - loopback sandbox
            return json.loads(response.read())

    def slack(self) -> list[dict[str, Any]]:
        return self._call("GET", "/control/messages?channel=slack")["messages"]

    def pagerduty(self) -> list[dict[str, Any]]:
        return self._call("GET", "/control/messages?channel=pagerduty")["messages"]

    def incidents(self) -> dict[str, dict[str, Any]]:
        return {i["dedup_key"]: i for i in self._call("GET", "/control/incidents")["incidents"]}

    def fail(self, **rule: Any) -> None:
        self._call("POST", "/control/fail", rule)

    def reset(self) -> None:
        self._call("POST", "/control/reset", {})


@pytest.fixture
def receivers(_webhooks_url: str, settings: Any) -> Receivers:
    """Slack + PagerDuty pointed at the sandbox; default routing (P0 → both, P1/P2 → Slack)."""
    base = _webhooks_url
    settings.SLACK_WEBHOOK_URL = base + "/slack/services/T1/B1/xbit"
    settings.PAGERDUTY_EVENTS_URL = base + "/pagerduty/v2/enqueue"
    settings.PAGERDUTY_ROUTING_KEY = ROUTING_KEY
    settings.ALERTS_CONSOLE_URL = "https://console.xbit.test"
    settings.ALERTS_SOURCE = "xbit-test"
    settings.ALERTS_HTTP_CONNECT_TIMEOUT = 1.0
    settings.ALERTS_HTTP_READ_TIMEOUT = 0.5
    settings.ALERTS_HTTP_BACKOFF = 0.01
    r = Receivers(base)
    r.reset()
    return r
