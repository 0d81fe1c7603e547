"""Shared set-up for benchmarks: a dedicated database (``xbit_bench``) on the embedded test cluster,
migrated fresh, markets synced from a sandbox, and helpers to print and save figures."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

# The benchmarks and drills drive the API far past one client's budget (spec 08's 1,000 orders/s from a
# handful of traders on one address): this process and every web process they start run with the
# general rate limits lifted. The limiter still runs (its Redis call and headers are measured); it
# never refuses (core/rate_limit.py).
os.environ["API_RATE_LIMITS_LIFTED"] = "1"


def setup_django(db_name: str = "xbit_bench") -> None:
    """Point Django at a throw-away benchmark database and migrate it."""
    base = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    os.environ["DATABASE_URL"] = f"{base}/{db_name}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "xbit_admin.settings.test")
    sys.path.insert(0, str(ROOT))
    import psycopg

    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db_name}"')
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ordered = sorted(samples_s)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] * 1000

    return {
        "n": len(ordered),
        "p50_ms": round(pct(50), 4),
        "p95_ms": round(pct(95), 4),
        "p99_ms": round(pct(99), 4),
        "max_ms": round(ordered[-1] * 1000, 4),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 4),
    }


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "kernel": platform.release(),
        # other work on the machine at the time (1, 5, 15 min): figures on a busy box are noisy
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def save(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "benchmark": name,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        **payload,
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def progress(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def git_rev() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=True
        ).stdout.strip()
    except (subprocess.SubprocessError, OSError):
        return "unknown"


def wait_for_http(url: str, timeout: float = 60.0, proc: subprocess.Popen[Any] | None = None) -> None:
    """Poll ``url`` until it answers (any HTTP status); raise if ``proc`` exits or ``timeout`` passes."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before serving {url}")
        try:
            urllib.request.urlopen(url, timeout=1)  # noqa: S310 - loopback
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def stop_process(proc: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """SIGTERM a process this benchmark started (by its own handle), SIGKILL it if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def own_redis_db() -> str:
    """Point ``REDIS_URL`` at a Redis database (1–15) of this process's own, claimed as ``devstack test``
    claims one and flushed at exit: benchmarks that run at the same time then keep their quote caches,
    streams and Celery queues apart (pub/sub channels stay server-wide). Call before Django is set up."""
    import atexit

    from xbit_admin.devstack import _claim_redis_db, _release_redis_db

    base = os.environ["REDIS_URL"].rpartition("/")[0]
    index = _claim_redis_db(base, os.getpid())
    atexit.register(_release_redis_db, base, index, os.getpid())
    os.environ["REDIS_URL"] = f"{base}/{index}"
    return os.environ["REDIS_URL"]
