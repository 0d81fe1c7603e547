"""Trading-core benchmarks (issue 5): routing decision, internal market order through the service,
and through the HTTP API under increasing concurrency.

    make bench            # or: python -m xbit_admin.devstack exec --test python bench/trading_core.py
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import git_rev, percentiles, progress, save, setup_django
from bench.isolation import claim_redis_db

TRADERS = 64
SERVICE_ORDERS = 2000


def seed(meta: dict[str, Any], *, traders: int = TRADERS, prefix: str = "bench") -> list[Any]:
    from django.db import transaction

    from core.accounts.models import User
    from routing.services import routing_config_update
    from trading.marketdata import quote_update
    from trading.markets import markets_sync
    from wallets.ledger import AccountRef, TransferSpec, ledger_post
    from wallets.models import AccountKind, TransferKind

    markets_sync(meta=meta)
    routing_config_update(
        asset="*", changes={"global_internalization_enabled": True}, acting_user=None, reason="bench"
    )
    for asset, mark in (("BTC", "80000"), ("ETH", "3000")):
        m = Decimal(mark)
        quote_update(
            asset, mark=m, oracle=m, mid=m, bid=m - 1, ask=m + 1, bid_size=Decimal(50), ask_size=Decimal(50)
        )
    users = []
    with transaction.atomic():
        for i in range(traders):
            user = User.objects.create_user(f"{prefix}{i}@xbit.test", "bench-password-123")
            ledger_post(
                key=f"bench-fund:{user.pk}",
                transfers=[
                    TransferSpec(
                        AccountRef.platform(AccountKind.DEPOSIT_CLEARING),
                        AccountRef.user(user.pk, AccountKind.CASH),
                        Decimal("10000000"),
                        TransferKind.DEPOSIT,
                        "bench",
                        user.pk,
                    )
                ],
            )
            users.append(user)
    return users


def keep_quotes_fresh(stop: list[bool]) -> None:
    from trading.marketdata import quote_update

    while not stop[0]:
        for asset, mark in (("BTC", Decimal("80000")), ("ETH", Decimal("3000"))):
            quote_update(asset, mark=mark, bid=mark - 1, ask=mark + 1, mid=mark, notify=False)
        time.sleep(0.5)


def bench_routing() -> dict[str, Any]:
    from routing.decision import decide
    from routing.selectors import asset_routing

    asset_routing("BTC")  # warm the cache
    samples = []
    for i in range(200_000):
        notional = Decimal(1000 + (i % 20000))
        t0 = time.perf_counter()
        decide(notional=notional, config=asset_routing("BTC"))
        samples.append(time.perf_counter() - t0)
    return percentiles(samples)


def bench_service(users: list[Any]) -> dict[str, Any]:
    from trading.orders.input import order_input
    from trading.orders.place import order_place

    samples: list[float] = []
    cpu: list[float] = []  # this process's CPU per order: Python's share, whatever the machine's load
    profiler = None
    if os.environ.get("BENCH_PROFILE"):  # where the time goes (slower; not for the figures)
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
    for i in range(SERVICE_ORDERS):
        user = users[i % len(users)]
        side = "BUY" if (i // len(users)) % 2 == 0 else "SELL"
        inp = order_input(
            asset="BTC" if i % 3 else "ETH",
            side=side,
            order_type="MARKET",
            size="0.01" if i % 3 else "0.1",
            leverage=10,
            margin_mode="CROSS",
        )
        if profiler is not None:
            profiler.start()
        t0, c0 = time.perf_counter(), time.thread_time()
        order = order_place(user=user, inp=inp)
        samples.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
        if profiler is not None:
            profiler.stop()
        assert order.status == "FILLED", order.error_message
        if i % 250 == 0:
            progress(f"service orders {i}/{SERVICE_ORDERS}")
    if profiler is not None:
        Path(os.environ["BENCH_PROFILE"]).write_text(profiler.output_text(show_all=False))
    result = percentiles(samples)
    result["client_cpu_p50_ms"] = percentiles(cpu)["p50_ms"]
    result["load_1min_after"] = round(os.getloadavg()[0], 2)  # the machine's other work meanwhile
    return result


async def _http_load(base: str, tokens: list[str], concurrency: int, duration: float) -> dict[str, Any]:
    import aiohttp

    samples: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration
    counter = 0

    async def worker(idx: int) -> None:
        nonlocal errors, counter
        headers = {"Authorization": f"Bearer {tokens[idx % len(tokens)]}", "Content-Type": "application/json"}
        async with aiohttp.ClientSession(headers=headers) as session:
            while time.perf_counter() < deadline:
                counter += 1
                side = "BUY" if counter % 2 else "SELL"
                body = json.dumps({"symbol": "BTC", "side": side, "type": "MARKET", "size": "0.01"})
                t0 = time.perf_counter()
                async with session.post(base + "/api/v1/orders", data=body) as resp:
                    await resp.read()
                    if resp.status != 201:
                        errors += 1
                samples.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    result = percentiles(samples)
    result.update(
        {"concurrency": concurrency, "orders_per_s": round(len(samples) / elapsed, 1), "errors": errors}
    )
    return result


def bench_http(users: list[Any], server: str, workers: int) -> list[dict[str, Any]]:
    port = 18765
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="xbit_admin.settings.test")
    env.setdefault("DB_POOL_MAX", "8")  # as the Procfile's web line
    if server == "uvicorn-wsgi":
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "xbit_admin.wsgi:application",
            "--interface",
            "wsgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    elif server == "uvicorn":
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            "xbit_admin.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
    else:
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "xbit_admin.wsgi:application",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(workers),
            "--log-level",
            "warning",
        ]
    proc = subprocess.Popen(cmd, env=env, cwd=str(Path(__file__).resolve().parent.parent))
    try:
        import urllib.request

        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        from core.accounts.tokens import access_token_for

        tokens = [access_token_for(u) for u in users[:32]]
        results = []
        for concurrency in [int(c) for c in os.environ.get("BENCH_HTTP_CONCURRENCY", "1,8,32,64").split(",")]:
            progress(f"http {server} x{workers}: concurrency {concurrency}")
            results.append(asyncio.run(_http_load(f"http://127.0.0.1:{port}", tokens, concurrency, 8.0)))
        return results
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    from sandbox.testing import SandboxProcess

    progress("setting up the benchmark database …")
    claim_redis_db()  # our own quote cache: other benchmarks write other prices into database 0
    # production-like settings (DEBUG off: no query log), whatever the calling shell exported
    os.environ["DJANGO_SETTINGS_MODULE"] = os.environ.get("BENCH_SETTINGS", "xbit_admin.settings.test")
    setup_django(os.environ.get("BENCH_DB", "xbit_bench"))
    import threading
    import urllib.request

    with SandboxProcess(seed=7) as sb:
        request = urllib.request.Request(  # noqa: S310 - loopback sandbox
            sb.urls["hyperliquid"] + "/info",
            data=b'{"type":"meta"}',
            headers={"Content-Type": "application/json"},
        )
        meta = json.loads(urllib.request.urlopen(request, timeout=10).read())  # noqa: S310
    users = seed(meta)
    stop = [False]
    threading.Thread(target=keep_quotes_fresh, args=(stop,), daemon=True).start()
    progress("routing decision …")
    routing = bench_routing()
    progress(f"routing decision p50 {routing['p50_ms'] * 1000:.1f} µs, p99 {routing['p99_ms'] * 1000:.1f} µs")
    progress("internal market orders through the service …")
    service = bench_service(users)
    progress(
        f"internal order service p50 {service['p50_ms']:.2f} ms, p95 {service['p95_ms']:.2f} ms, "
        f"p99 {service['p99_ms']:.2f} ms; client CPU p50 {service['client_cpu_p50_ms']:.2f} ms "
        f"(load {os.getloadavg()[0]:.1f})"
    )
    if os.environ.get("BENCH_SKIP_HTTP"):  # quick runs while working on the service path: nothing saved
        stop[0] = True
        return
    workers = int(os.environ.get("BENCH_WEB_WORKERS", "2"))
    server = os.environ.get("BENCH_WEB_SERVER", "uvicorn")  # uvicorn (ASGI) | uvicorn-wsgi | gunicorn
    http = bench_http(users, server, workers)
    stop[0] = True
    for row in http:
        progress(
            f"HTTP c={row['concurrency']:>3}: {row['orders_per_s']:>7} orders/s  p50 {row['p50_ms']:.1f} ms  "
            f"p95 {row['p95_ms']:.1f} ms  p99 {row['p99_ms']:.1f} ms  errors {row['errors']}"
        )
    path = save(
        "trading_core",
        {
            "git": git_rev(),
            "routing_decision": routing,
            "internal_order_service": service,
            "http_orders": {
                "server": server,
                "workers": workers,
                "db_pool_max": int(os.environ.get("DB_POOL_MAX", "8")),
                "runs": http,
            },
        },
    )
    progress(f"saved {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


if __name__ == "__main__":
    main()
