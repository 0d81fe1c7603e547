"""Issue #17, finding 1: a client cannot choose its address. ``X-Forwarded-For`` is believed only from
the proxies named in ``TRUSTED_PROXIES`` (none by default), whatever server runs the app: the web
process of the Procfile is started for real and probed from loopback with spoofed headers (the API
key's IP allow-list, the per-IP login throttle, the address security events record), and every
command that serves HTTP (Procfile, Dockerfile, compose, Kubernetes, the drills) leaves the headers to
the application."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from conftest import PASSWORD
from core.accounts import hmac_auth
from core.accounts.api_keys import api_key_create
from core.accounts.models import SecurityEvent

ROOT = Path(__file__).resolve().parents[2]
SPOOFED = "10.1.2.3"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def procfile_web_command() -> str:
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    return line.split(":", 1)[1].strip()


class WebProcess:
    """The Procfile's web line, run by a shell as honcho runs it, on this test's database."""

    def __init__(self, settings: Any, **extra_env: str) -> None:
        from django.db import connection

        db = settings.DATABASES["default"]
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict(os.environ)
        self.env.pop("TRUSTED_PROXIES", None)
        self.env.update(
            DATABASE_URL=f"postgresql://{db['USER'] or 'postgres'}@{db['HOST']}:{db['PORT']}/"
            f"{connection.settings_dict['NAME']}",
            DJANGO_SETTINGS_MODULE="xbit_admin.settings.test",
            XBIT_PORT=str(self.port),
            PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            **extra_env,
        )
        self.proc = subprocess.Popen(
            ["sh", "-c", procfile_web_command()],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the web process exited"
            try:
                if requests.get(f"{self.base}/healthz", timeout=1).ok:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        raise AssertionError("the web process did not answer /healthz within 60 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


@pytest.fixture
def web(settings: Any) -> Iterator[WebProcess]:
    process = WebProcess(settings)
    try:
        yield process
    finally:
        process.stop()


def _signed_me(base: str, key_id: str, secret: str, **headers: str) -> requests.Response:
    timestamp = str(int(time.time() * 1000))
    signature = hmac_auth.sign(secret, timestamp=timestamp, method="GET", path="/api/v1/me", query_string="")
    return requests.get(
        f"{base}/api/v1/me",
        headers={
            "X-XBIT-APIKEY": key_id,
            "X-XBIT-TIMESTAMP": timestamp,
            "X-XBIT-SIGNATURE": signature,
            **headers,
        },
        timeout=10,
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_spoofed_forwarded_for_neither_passes_an_allow_list_nor_dodges_the_login_throttle(
    web: WebProcess, make_trader: Any
) -> None:
    trader = make_trader()
    key, secret = api_key_create(user=trader, label="bot", permissions=["read"], ip_allowlist=[SPOOFED])

    refused = _signed_me(web.base, key.key_id, secret, **{"X-Forwarded-For": SPOOFED})
    assert refused.status_code == 403 and refused.json()["code"] == "IP_NOT_ALLOWED", refused.text
    refused = _signed_me(
        web.base, key.key_id, secret, **{"X-Real-IP": SPOOFED, "Forwarded": f"for={SPOOFED}"}
    )
    assert refused.status_code == 403 and refused.json()["code"] == "IP_NOT_ALLOWED", refused.text

    statuses = []
    for i in range(32):  # the per-IP login throttle allows 30 a minute
        response = requests.post(
            f"{web.base}/api/v1/auth/login",
            json={"email": f"nobody{i}@xbit.test", "password": "wrong-password-1"},
            headers={"X-Forwarded-For": f"198.51.100.{i + 1}"},
            timeout=10,
        )
        statuses.append(response.status_code)
    assert 429 in statuses, statuses

    requests.post(
        f"{web.base}/api/v1/auth/login",
        json={"email": trader.email, "password": PASSWORD},
        headers={"X-Forwarded-For": SPOOFED},
        timeout=10,
    )
    recorded = set(SecurityEvent.objects.exclude(ip=None).values_list("ip", flat=True))
    assert recorded == {"127.0.0.1"}, recorded


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_configured_proxy_is_believed(settings: Any, make_trader: Any) -> None:
    key, secret = api_key_create(
        user=make_trader(), label="bot", permissions=["read"], ip_allowlist=[SPOOFED]
    )
    process = WebProcess(settings, TRUSTED_PROXIES="127.0.0.1")
    try:
        # the proxy appends the address it saw; anything the client sent before it is not believed
        answered = _signed_me(
            process.base, key.key_id, secret, **{"X-Forwarded-For": f"192.0.2.9, {SPOOFED}"}
        )
        assert answered.status_code == 200, answered.text
        refused = _signed_me(process.base, key.key_id, secret, **{"X-Forwarded-For": f"{SPOOFED}, 192.0.2.9"})
        assert refused.status_code == 403, refused.text
    finally:
        process.stop()


def test_the_client_address_middleware_believes_only_trusted_proxies(settings: Any) -> None:
    import asyncio

    from core.request_guard import client_address_app

    seen: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["client"])

    def run(peer: str, forwarded: str, trusted: list[str]) -> Any:
        settings.TRUSTED_PROXIES = trusted
        scope = {
            "type": "http",
            "client": (peer, 5000),
            "headers": [(b"x-forwarded-for", forwarded.encode())],
        }
        asyncio.run(client_address_app(app)(scope, None, None))
        return seen.pop()[0]

    assert run("127.0.0.1", SPOOFED, []) == "127.0.0.1"
    assert run("10.0.0.5", SPOOFED, ["10.0.0.0/24"]) == SPOOFED
    assert run("10.0.0.5", f"{SPOOFED}, 10.0.0.7", ["10.0.0.0/24"]) == SPOOFED  # proxies in a chain
    assert run("192.0.2.1", SPOOFED, ["10.0.0.0/24"]) == "192.0.2.1"


# ------------------------------------------------------------------------- every HTTP server command


def _uvicorn_commands() -> dict[str, str]:
    commands = {"Procfile web": procfile_web_command()}
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.*?\])\s*$", dockerfile, re.S | re.M)
    assert cmd is not None
    commands["Dockerfile CMD"] = " ".join(eval(cmd.group(1).replace("\\\n", "")))  # noqa: S307 - our JSON array
    compose = yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())
    commands["compose web"] = str(compose["services"]["web"]["command"])
    for document in yaml.safe_load_all((ROOT / "deploy" / "k8s" / "web.yaml").read_text()):
        if document and document.get("kind") == "Deployment":
            container = document["spec"]["template"]["spec"]["containers"][0]
            commands["k8s web"] = " ".join(container.get("args", []) + container.get("command", []))
    drills = (ROOT / "bench" / "drills.py").read_text()
    web_command = re.search(r'"web": \[(.*?)\],', drills, re.S)
    assert web_command is not None
    commands["drills web"] = " ".join(re.findall(r'"([^"]+)"', web_command.group(1)))
    return commands


def test_every_command_that_serves_http_leaves_forwarded_headers_to_the_application() -> None:
    for name, command in _uvicorn_commands().items():
        words = [  # `sh -c '…'` holds the server's command in one word
            word
            for part in shlex.split(command.replace("$$", "$"))
            for word in (shlex.split(part) if " " in part else [part])
        ]
        assert "uvicorn" in " ".join(words), name
        assert "--no-proxy-headers" in words, f"{name}: uvicorn believes X-Forwarded-For from its peer"
        assert "--proxy-headers" not in words and "--forwarded-allow-ips" not in words, name


@pytest.mark.django_db
def test_drf_throttles_do_not_read_forwarded_for_either(db: Any) -> None:
    """DRF's own throttles identify a client by X-Forwarded-For unless NUM_PROXIES says otherwise (a
    per-address throttle on the refresh endpoint was once dodged by a new header per request): any DRF
    throttle sees the connection's address, whatever the header says."""
    from django.test import RequestFactory
    from rest_framework.request import Request
    from rest_framework.throttling import AnonRateThrottle

    spoofed = RequestFactory().post("/api/v1/auth/refresh", HTTP_X_FORWARDED_FOR="198.51.100.7")
    spoofed.META["REMOTE_ADDR"] = "203.0.113.9"
    assert AnonRateThrottle().get_ident(Request(spoofed)) == "203.0.113.9"
