"""User data stream benchmark: fill committed → event on the user's socket (p50/p95, goal ≤ 50 ms p95)
with 500 users connected, and the web process's memory per idle connection (goal ≤ 100 KiB).

The platform's own processes, each on its own: the web (uvicorn, as the Procfile runs it), the outbox
relay and the user-stream fan-out; PostgreSQL and Redis real (a fresh ``xbit_bench_stream`` database and
a Redis database of our own). This process holds the 500 sockets (JWT, subscribed to every channel) and
places internal market orders through the order service, one user at a time at ``BENCH_STREAM_RATE``
orders/s: the latency of an order is from the moment ``order_place`` returned (its transaction
committed) to the arrival of its fill frame on that user's socket.

    python -m xbit_admin.devstack exec --test python bench/user_stream.py
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    free_port,
    git_rev,
    percentiles,
    progress,
    save,
    setup_django,
    stop_process,
    wait_for_http,
)
from bench.isolation import claim_redis_db
from bench.trading_core import keep_quotes_fresh, seed

USERS = int(os.environ.get("BENCH_STREAM_USERS", "500"))
ORDERS = int(os.environ.get("BENCH_STREAM_ORDERS", "400"))
RATE = float(os.environ.get("BENCH_STREAM_RATE", "20"))  # orders per second
CHANNELS = ["orders", "fills", "positions", "balances", "liquidations", "funding", "deposits", "withdrawals"]
ROOT = Path(__file__).resolve().parent.parent


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(name: str, args: list[str]) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    progress(f"starting {name} …")
    return subprocess.Popen(args, cwd=ROOT, env=env)


class Sockets:
    """The users' sockets in this process: each records when its fills arrive (by order id)."""

    def __init__(self) -> None:
        self.arrivals: dict[int, float] = {}
        self.appended: dict[int, float] = {}  # order id -> when the fan-out appended its fill (frame ts)
        self.frames = 0
        self.errors: list[dict[str, Any]] = []

    async def open(self, url: str, token: str) -> Any:
        from websockets.asyncio.client import connect

        ws = await connect(url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=2**22)
        hello = json.loads(await ws.recv())
        if hello.get("type") != "authenticated":
            raise RuntimeError(f"not authenticated: {hello}")
        await ws.send(json.dumps({"op": "subscribe", "channels": CHANNELS}))
        for _ in range(len(CHANNELS) + 1):  # subscribed + one snapshot per channel
            await ws.recv()
        return ws

    async def listen(self, ws: Any) -> None:
        async for raw in ws:
            now = time.time()
            frame = json.loads(raw)
            self.frames += 1
            if frame.get("type") == "event" and frame.get("channel") == "fills":
                self.arrivals.setdefault(int(frame["data"]["order_id"]), now)
                self.appended.setdefault(int(frame["data"]["order_id"]), frame["ts"] / 1000)
            elif frame.get("type") == "error":
                self.errors.append(frame)


async def run(
    users: list[Any], tokens: list[str], procs: dict[str, subprocess.Popen[bytes]], port: int
) -> dict[str, Any]:
    from trading.orders.input import order_input
    from trading.orders.place import order_place

    url = f"ws://127.0.0.1:{port}/ws/v1/user"
    sockets = Sockets()
    warm = await sockets.open(url, tokens[0])  # the consumer code loaded before the baseline
    await warm.close()
    await asyncio.sleep(1.0)
    web = procs["web"]
    before = rss_kib(web.pid)
    opened = []
    for i in range(0, len(tokens), 50):
        opened += await asyncio.gather(*(sockets.open(url, t) for t in tokens[i : i + 50]))
    await asyncio.sleep(3.0)
    after = rss_kib(web.pid)
    per_connection = (after - before) / len(opened)
    progress(
        f"{len(opened)} sockets open: web RSS {before} → {after} KiB, {per_connection:.1f} KiB per connection"
    )
    listeners = [asyncio.create_task(sockets.listen(ws)) for ws in opened]

    committed: dict[int, float] = {}

    def place(user: Any, side: str) -> None:
        order = order_place(
            user=user,
            inp=order_input(
                asset="BTC", side=side, size="0.01", order_type="MARKET", leverage=10, margin_mode="CROSS"
            ),
        )
        committed[order.pk] = time.time()

    cpu_before = {name: cpu_seconds(p.pid) for name, p in procs.items()}
    load_before = os.getloadavg()[0]
    rng = random.Random(7)
    sides: dict[int, str] = {}
    started = time.monotonic()
    for n in range(ORDERS):
        user = users[rng.randrange(len(users))]
        side = "SELL" if sides.get(user.pk) == "BUY" else "BUY"
        sides[user.pk] = side
        await asyncio.to_thread(place, user, side)
        wait = started + (n + 1) / RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
    deadline = time.monotonic() + 10
    while len(sockets.arrivals.keys() & committed.keys()) < len(committed) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    cpu_ms_per_order = {
        name: round((cpu_seconds(p.pid) - cpu_before[name]) * 1000 / max(1, len(committed)), 2)
        for name, p in procs.items()
    }
    latencies = [max(0.0, sockets.arrivals[o] - t) for o, t in committed.items() if o in sockets.arrivals]
    missing = len(committed) - len(latencies)
    # the two legs: commit → appended by the fan-out (relay, fan-out reads), appended → on the socket
    to_append = [max(0.0, sockets.appended[o] - t) for o, t in committed.items() if o in sockets.appended]
    to_socket = [
        max(0.0, sockets.arrivals[o] - sockets.appended[o]) for o in committed if o in sockets.arrivals
    ]
    for task in listeners:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in opened), return_exceptions=True)
    return {
        "users_connected": len(opened),
        "orders": len(committed),
        "fills_missing": missing,
        "error_frames": len(sockets.errors),
        "frames_received": sockets.frames,
        "fill_to_socket": percentiles(latencies) if latencies else {},
        "commit_to_append": percentiles(to_append) if to_append else {},
        "append_to_socket": percentiles(to_socket) if to_socket else {},
        "cpu_ms_per_order": cpu_ms_per_order,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "web_rss_kib_before": before,
        "web_rss_kib_after": after,
        "web_kib_per_idle_connection": round(per_connection, 1),
    }


def main() -> None:
    from sandbox.testing import SandboxProcess

    progress("setting up the benchmark database …")
    claim_redis_db()
    os.environ["DJANGO_SETTINGS_MODULE"] = os.environ.get("BENCH_SETTINGS", "xbit_admin.settings.test")
    setup_django(os.environ.get("BENCH_DB", "xbit_bench_stream"))
    from core.accounts.tokens import access_token_for

    with SandboxProcess(seed=7) as sb:
        request = urllib.request.Request(  # noqa: S310 - loopback sandbox
            sb.urls["hyperliquid"] + "/info",
            data=b'{"type":"meta"}',
            headers={"Content-Type": "application/json"},
        )
        meta = json.loads(urllib.request.urlopen(request, timeout=10).read())  # noqa: S310
    progress(f"seeding {USERS} funded traders …")
    users = seed(meta, traders=USERS, prefix="stream")
    tokens = [access_token_for(u) for u in users]
    stop = [False]
    threading.Thread(target=keep_quotes_fresh, args=(stop,), daemon=True).start()
    port = free_port()
    py = sys.executable
    web = start(
        "web",
        [
            py,
            "-m",
            "uvicorn",
            "xbit_admin.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--no-proxy-headers",
            "--ws",
            "websockets-sansio",
            "--log-level",
            "warning",
        ],
    )
    relay = start("relay", [py, "manage.py", "run_relay"])
    fanout = start("fan-out", [py, "manage.py", "run_user_stream"])
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", proc=web)
        time.sleep(2.0)  # the fan-out's consumer group exists before the first order
        result = asyncio.run(run(users, tokens, {"web": web, "relay": relay, "fanout": fanout}, port))
    finally:
        stop[0] = True
        for proc in (fanout, relay, web):
            stop_process(proc)
    lat = result["fill_to_socket"]
    progress(
        f"fill committed → fill frame on the socket, {result['users_connected']} users connected, "
        f"{result['orders']} orders at {RATE:g}/s: p50 {lat.get('p50_ms', float('nan')):.1f} ms, "
        f"p95 {lat.get('p95_ms', float('nan')):.1f} ms, p99 {lat.get('p99_ms', float('nan')):.1f} ms, "
        f"max {lat.get('max_ms', float('nan')):.1f} ms (goal p95 ≤ 50 ms); missing {result['fills_missing']}"
    )
    for leg in ("commit_to_append", "append_to_socket"):
        row = result[leg]
        progress(
            f"  {leg}: p50 {row.get('p50_ms', float('nan')):.1f} ms, p95 {row.get('p95_ms', float('nan')):.1f} ms"
        )
    progress(f"  CPU per order (ms): {result['cpu_ms_per_order']}; load {result['load_average']}")
    progress(f"web memory per idle connection: {result['web_kib_per_idle_connection']} KiB (goal ≤ 100 KiB)")
    path = save("user_stream", {"git": git_rev(), "rate_per_s": RATE, **result})
    progress(f"saved {path}")


if __name__ == "__main__":
    main()
