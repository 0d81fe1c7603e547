"""Which ASGI server for the web process (issue #10): uvicorn (the Procfile's) and daphne, each as ONE
process as the Procfile runs the web line (DB_POOL_MAX=8), serving the same HTTP order load as
``bench/trading_core.py`` (its seeding and its load: internal market orders alternating buy/sell,
JWT, c concurrent keep-alive clients) at c=1 and c=8. The servers take turns, ``--rounds`` times, so
a change in the machine's background load hits both alike.

    python -m xbit_admin.devstack exec --test python bench/web_servers.py [--seconds 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    ROOT,
    free_port,
    git_rev,
    own_redis_db,
    progress,
    save,
    setup_django,
    stop_process,
    wait_for_http,
)

DB = "xbit_bench_web"
SERVERS = ("uvicorn", "daphne")


def server_command(server: str, port: int) -> list[str]:
    app = "xbit_admin.asgi:application"
    if server == "uvicorn":  # the Procfile's web line
        return [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)] + [
            "--no-access-log",
            "--ws",
            "websockets-sansio",
            "--log-level",
            "warning",
        ]
    if server == "daphne":  # -v 0: no access log either
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0", app]
    raise ValueError(server)


def load(server: str, tokens: list[str], concurrencies: list[int], seconds: float) -> list[dict[str, Any]]:
    from bench.trading_core import _http_load

    port = free_port()
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="xbit_admin.settings.test", DB_POOL_MAX="8")
    proc = subprocess.Popen(server_command(server, port), cwd=ROOT, env=env)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=180, proc=proc)
        asyncio.run(_http_load(f"http://127.0.0.1:{port}", tokens, 1, 1.0))  # warm the process
        runs = []
        for c in concurrencies:
            row = asyncio.run(_http_load(f"http://127.0.0.1:{port}", tokens, c, seconds))
            row["server"] = server
            row["load_average"] = [round(x, 2) for x in os.getloadavg()]
            progress(
                f"{server:>7} c={c}: {row['orders_per_s']:>6} orders/s  p50 {row['p50_ms']:.1f} ms  "
                f"p95 {row['p95_ms']:.1f} ms  errors {row['errors']}  (load {row['load_average'][0]})"
            )
            runs.append(row)
        return runs
    finally:
        stop_process(proc)


def compare(runs: list[dict[str, Any]], concurrencies: list[int]) -> dict[str, Any]:
    """Per server and concurrency the median over rounds; the faster server wins more of the
    (concurrency) comparisons on orders/s, ties going to the current default (uvicorn)."""
    table: dict[str, dict[str, Any]] = {}
    for server in SERVERS:
        table[server] = {}
        for c in concurrencies:
            mine = [r for r in runs if r["server"] == server and r["concurrency"] == c]
            table[server][f"c{c}"] = {
                "orders_per_s": round(statistics.median(r["orders_per_s"] for r in mine), 1),
                "p50_ms": round(statistics.median(r["p50_ms"] for r in mine), 2),
                "p95_ms": round(statistics.median(r["p95_ms"] for r in mine), 2),
                "errors": sum(r["errors"] for r in mine),
                "rounds": len(mine),
            }
    ratios = {
        f"c{c}": round(
            table["daphne"][f"c{c}"]["orders_per_s"] / table["uvicorn"][f"c{c}"]["orders_per_s"], 3
        )
        for c in concurrencies
        if table["uvicorn"][f"c{c}"]["orders_per_s"]
    }
    daphne_wins = sum(1 for r in ratios.values() if r > 1.05)  # within 5 %: noise on this machine
    uvicorn_wins = sum(1 for r in ratios.values() if r < 1 / 1.05)
    return {
        "median": table,
        "daphne_over_uvicorn_orders_per_s": ratios,
        "faster": "daphne" if daphne_wins > uvicorn_wins else "uvicorn",
        "rule": "median orders/s over rounds per concurrency; a server wins a concurrency by > 5 %; "
        "more wins is faster, a tie keeps uvicorn (the default)",
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", default="1,8")
    args = parser.parse_args()
    from bench.reconciliation import sandbox_meta
    from sandbox.testing import SandboxProcess

    started = time.perf_counter()
    progress("setting up the web-server database …")
    own_redis_db()  # our own quote cache
    os.environ["DJANGO_SETTINGS_MODULE"] = "xbit_admin.settings.test"
    setup_django(DB)
    from bench.trading_core import keep_quotes_fresh, seed
    from core.accounts.tokens import access_token_for

    with SandboxProcess(seed=13) as sb:
        meta = sandbox_meta(sb.urls["hyperliquid"])
    users = seed(meta)
    tokens = [access_token_for(u) for u in users[:32]]
    stop = [False]
    threading.Thread(target=keep_quotes_fresh, args=(stop,), daemon=True).start()
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    runs: list[dict[str, Any]] = []
    try:
        for i in range(args.rounds):
            for server in SERVERS if i % 2 == 0 else tuple(reversed(SERVERS)):
                progress(f"round {i + 1}/{args.rounds}: {server} …")
                for row in load(server, tokens, concurrencies, args.seconds):
                    row["round"] = i + 1
                    runs.append(row)
    finally:
        stop[0] = True
    verdict = compare(runs, concurrencies)
    for server in SERVERS:
        for c in concurrencies:
            m = verdict["median"][server][f"c{c}"]
            progress(
                f"{server:>7} c={c}: median {m['orders_per_s']} orders/s, p50 {m['p50_ms']} ms, p95 {m['p95_ms']} ms"
            )
    progress(
        f"faster: {verdict['faster']} (daphne/uvicorn orders/s: {verdict['daphne_over_uvicorn_orders_per_s']})"
    )
    path = save(
        "web_servers",
        {
            "git": git_rev(),
            "processes": 1,
            "db_pool_max": 8,
            "seconds_per_run": args.seconds,
            "rounds": args.rounds,
            "runs": runs,
            **verdict,
            "elapsed_s": round(time.perf_counter() - started, 1),
        },
    )
    progress(f"saved {path}")


if __name__ == "__main__":
    main()
