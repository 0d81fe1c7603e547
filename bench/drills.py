"""Disaster-recovery drills (issue 10, spec 08): the real processes under sustained trader load while
each fault is injected, then the books are checked.

    make drills      # or: python -m xbit_admin.devstack exec --test python bench/drills.py [--seconds 20]

Set-up as the benchmarks: a throw-away database (``xbit_drills``), markets synced from a sandbox, HL
agents approved, internalization on, N funded traders. The drills get their own PostgreSQL cluster and
Redis server (the devstack helpers on free ports, data under ``.xbit/drills/pg`` and
``.xbit/drills-redis``) so that the PostgreSQL and Redis restart drills never pull the floor from under
another run's tests on the shared test services (port 54339 / 63809).
Processes (as the Procfile, but run directly — not under ``xbit_admin.respawn`` — so that a process
that dies is seen): uvicorn web, a celery worker on every queue, beat, relay, feed, hlstream, risk
consumer, alert notifier, readiness gate. Everything is bounded (≤ 10 minutes) and every child is
stopped on exit, Ctrl-C included.

Per drill: requests, errors (5xx / connection failures per attempt; clients retry with the same
client_order_id), recovery (``judge_recovery``: orders must be succeeding again in the last seconds of
the window — one order after the fault is not enough — and the recovery time, from the fault to the
start of that serving stretch, must stay within ``RECOVERY_BOUND_S``; otherwise the run fails, naming
the drill and why), duplicate effects (must be 0), invariant violations (must be 0: the ledger
invariants and the trading account's positions against HL), the first order after the fault (reported
beside the recovery time), the worker's recovery (seconds from the fault to its
first answer to a broker ping, and the Celery backlog at the end: a worker that stopped consuming
leaves beat's ticks piling up) and the processes that exited by themselves (which the drill then
restarts: must be none).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, git_rev, progress, save, setup_django

TOTAL_BUDGET_S = 600.0
# Recovery (``judge_recovery``): the platform must be serving orders again at the end of each drill's
# window, not merely have served one. Serving: in each of the last RECOVERY_TAIL_BUCKETS one-second
# buckets at least one order placement succeeded, and over the last RECOVERY_TAIL_S seconds at least
# RECOVERY_MIN_SHARE of the placements that were answered (or failed to be) succeeded. The recovery time
# is measured from the fault to the start of the unbroken run of serving seconds that ends the window;
# above RECOVERY_BOUND_S the drill fails. 15 s: every fault here heals by itself within a few seconds
# (the slowest measured so far, a web kill or a Redis restart, ~3 s), it leaves the default 20 s window
# 5 s to show the platform serving again, and a trader whose orders are refused for longer than that has
# seen an outage, not a blip.
RECOVERY_BOUND_S = 15.0
RECOVERY_TAIL_BUCKETS = 2
RECOVERY_TAIL_S = 5.0
RECOVERY_MIN_SHARE = 0.5
STATE = ROOT / ".xbit" / "drills"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


# ------------------------------------------------------------------------------------------ processes


class Stack:
    """The real processes as subprocesses, each in its own process group (kill -9 takes the group,
    pool children included, as a dying pod would)."""

    def __init__(self, env: dict[str, str], port: int) -> None:
        self.env = env
        self.port = port
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        STATE.mkdir(parents=True, exist_ok=True)
        py, manage = sys.executable, str(ROOT / "manage.py")
        self.commands = {
            "web": [
                py,
                "-m",
                "uvicorn",
                "xbit_admin.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-access-log",
                "--log-level",
                "warning",
                "--ws",
                "websockets-sansio",
                "--no-proxy-headers",  # as the Procfile's web line
            ],
            "worker": [
                py,
                "-m",
                "celery",
                "-A",
                "xbit_admin",
                "worker",
                "-Q",
                "critical,hedge,default,wallets",
                "--concurrency",
                "2",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "WARNING",
            ],
            "beat": [
                py,
                "-m",
                "celery",
                "-A",
                "xbit_admin",
                "beat",
                "-s",
                str(STATE / "celerybeat-schedule"),
                "-l",
                "WARNING",
            ],
            "relay": [py, manage, "run_relay"],
            "feed": [py, manage, "run_feed"],
            "hlstream": [py, manage, "run_hl_user_stream"],
            "risk": [py, manage, "run_risk_consumer"],
            "alerts": [py, manage, "run_alert_notifier"],
            "platform": [py, manage, "platform_ready"],
        }

    def start(self, name: str) -> None:
        log = open(STATE / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        env = dict(self.env)
        if name != "web":  # as the Procfile and the manifests: only the ASGI web process uses a pool
            env.pop("DB_POOL_MAX", None)
        self.procs[name] = subprocess.Popen(
            self.commands[name],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def start_all(self) -> None:
        for name in self.commands:
            self.start(name)

    def kill9(self, name: str) -> None:
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def alive(self) -> dict[str, bool]:
        return {name: proc.poll() is None for name, proc in self.procs.items()}

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 8
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def wait_http(self, timeout: float = 60) -> bool:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return True
            time.sleep(0.2)
        return False


# ------------------------------------------------------------------------------------------ load


@dataclass
class LoadStats:
    requests: int = 0
    errors: int = 0  # attempts answered 5xx or not answered at all
    rejected: int = 0  # 4xx: the house said no (margin, stale price, nothing to close…)
    gave_up: int = 0  # operations that never succeeded within their retry budget
    successes: list[tuple[float, float]] = field(default_factory=list)  # (sent, answered) of 201s
    # when an order placement (or close) was answered 5xx or not at all: each attempt, retries included
    failures: list[float] = field(default_factory=list)
    client_ids: dict[str, set[int]] = field(default_factory=dict)  # client_order_id → order ids seen
    codes: dict[str, int] = field(default_factory=dict)  # "503 STALE_PRICE" → count, for non-2xx answers
    lock: threading.Lock = field(default_factory=threading.Lock)


class Load:
    """Traders through the HTTP API: small market orders (internal), large ones (HYPERLIQUID), resting
    limit orders then cancelled, closes. Every order carries a client_order_id that retries reuse."""

    def __init__(self, base: str, tokens: list[str], rng_seed: int = 1) -> None:
        self.base = base
        self.tokens = tokens
        self.stop_flag = threading.Event()
        self.stats = LoadStats()
        self.rng_seed = rng_seed
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        self.stop_flag.clear()
        self.stats = LoadStats()
        self.threads = [
            threading.Thread(target=self._trader, args=(i,), daemon=True) for i in range(len(self.tokens))
        ]
        for t in self.threads:
            t.start()

    def stop(self) -> LoadStats:
        self.stop_flag.set()
        for t in self.threads:
            t.join(30)
        return self.stats

    def _call(
        self, session: Any, method: str, path: str, body: dict[str, Any] | None, retries: int = 40
    ) -> tuple[int, Any]:
        import requests

        stats = self.stats
        placement = (path == "/api/v1/orders" and method == "POST") or path.endswith("/close")
        for _ in range(retries):
            sent = time.monotonic()
            with stats.lock:
                stats.requests += 1
            try:
                resp = session.request(method, self.base + path, json=body, timeout=10)
            except requests.RequestException:
                with stats.lock:
                    stats.errors += 1
                    if placement:
                        stats.failures.append(time.monotonic())
                time.sleep(0.5)
                continue
            if resp.status_code >= 400:
                try:
                    code = f"{resp.status_code} {resp.json().get('code', '')}"
                except ValueError:
                    code = str(resp.status_code)
                with stats.lock:
                    stats.codes[code] = stats.codes.get(code, 0) + 1
            if resp.status_code >= 500:
                with stats.lock:
                    stats.errors += 1
                    if placement:
                        stats.failures.append(time.monotonic())
                time.sleep(0.5)
                continue
            payload = resp.json() if resp.content else None
            if resp.status_code in (200, 201):
                if placement:
                    with stats.lock:
                        stats.successes.append((sent, time.monotonic()))
                        if body and body.get("client_order_id") and isinstance(payload, dict):
                            stats.client_ids.setdefault(body["client_order_id"], set()).add(payload["id"])
            else:
                with stats.lock:
                    stats.rejected += 1
            return resp.status_code, payload
        with stats.lock:
            stats.gave_up += 1
        return 0, None

    def _trader(self, idx: int) -> None:
        import requests

        rng = random.Random(self.rng_seed * 1000 + idx)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.tokens[idx]}"
        while not self.stop_flag.is_set():
            roll = rng.random()
            asset = rng.choice(["BTC", "ETH"])
            side = rng.choice(["BUY", "SELL"])
            cid = f"drill-{uuid.uuid4().hex[:24]}"
            if roll < 0.6:  # small market order: internal
                size = "0.01" if asset == "BTC" else "0.2"
                body = {"symbol": asset, "side": side, "type": "MARKET", "size": size, "client_order_id": cid}
                self._call(session, "POST", "/api/v1/orders", body)
            elif roll < 0.72:  # large market order: HYPERLIQUID (above the 10,000 USD threshold)
                size = "0.15" if asset == "BTC" else "4"
                body = {"symbol": asset, "side": side, "type": "MARKET", "size": size, "client_order_id": cid}
                self._call(session, "POST", "/api/v1/orders", body)
            elif roll < 0.86:  # resting limit far from the market, then cancelled
                price = "50000" if asset == "BTC" else "2000"
                body = {
                    "symbol": asset,
                    "side": "BUY",
                    "type": "LIMIT",
                    "size": "0.01" if asset == "BTC" else "0.2",
                    "limit_price": price,
                    "client_order_id": cid,
                }
                status, order = self._call(session, "POST", "/api/v1/orders", body)
                if status == 201 and order and order.get("status") in ("OPEN", "NEW", "ACCEPTED"):
                    self._call(session, "POST", f"/api/v1/orders/{order['id']}/cancel", None)
            else:  # close one open position
                status, positions = self._call(session, "GET", "/api/v1/positions", None)
                if status == 200 and positions:
                    pos = rng.choice(positions)
                    self._call(
                        session, "POST", f"/api/v1/positions/{pos['id']}/close", {"client_order_id": cid}
                    )
            self.stop_flag.wait(rng.uniform(0.05, 0.25))


# ------------------------------------------------------------------------------------------ checks


@dataclass(frozen=True)
class Recovery:
    """How a drill's platform came back. ``recovery_s``: seconds from the fault to the start of the
    serving run that ends the window (None: not serving at the end); ``first_success_s``: to the first
    order that succeeded after the fault (what one lucky order shows, reported beside it); ``failure``:
    why the drill fails on recovery (None: it recovered within the bound)."""

    recovery_s: float | None
    first_success_s: float | None
    failure: str | None


def judge_recovery(
    *,
    fault_at: float,
    end: float,
    successes: list[float],
    failures: list[float],
    bound_s: float = RECOVERY_BOUND_S,
) -> Recovery:
    """Judge a drill's recovery from its timeline: ``successes`` and ``failures`` are the times (same
    clock as ``fault_at`` and ``end``, the end of the load window) at which order placements succeeded,
    or were answered 5xx / not answered. A platform that serves one order after the fault and then halts
    has not recovered: it must be serving in the window's last seconds (see RECOVERY_* above)."""
    ok = sorted(t for t in successes if fault_at <= t <= end)
    bad = sorted(t for t in failures if fault_at <= t <= end)
    first = round(ok[0] - fault_at, 2) if ok else None

    def count(times: list[float], lo: float, hi: float) -> int:
        return sum(1 for t in times if lo <= t < hi or (hi == end and t == end))

    def serving(lo: float, hi: float) -> bool:
        good, failed = count(ok, lo, hi), count(bad, lo, hi)
        return good > 0 and good >= RECOVERY_MIN_SHARE * (good + failed)

    # the unbroken run of serving one-second buckets that ends the window, walked back from its end
    start: float | None = None
    hi = end
    while hi > fault_at:
        lo = max(fault_at, hi - 1.0)
        if not serving(lo, hi):
            break
        start = lo
        hi = lo
    recovery = None
    if start is not None:
        recovery = round(next(t for t in ok if t >= start) - fault_at, 2)
    summary = f"{len(ok)} orders ok and {len(bad)} failed after the fault"
    empty = [k for k in range(RECOVERY_TAIL_BUCKETS) if not count(ok, max(fault_at, end - k - 1.0), end - k)]
    if empty:
        return Recovery(
            None,
            first,
            f"not serving at the end: no order succeeded in {len(empty)} of the last "
            f"{RECOVERY_TAIL_BUCKETS} seconds ({summary})",
        )
    tail_lo = max(fault_at, end - RECOVERY_TAIL_S)
    good, failed = count(ok, tail_lo, end), count(bad, tail_lo, end)
    if good < RECOVERY_MIN_SHARE * (good + failed):
        return Recovery(
            None,
            first,
            f"not serving at the end: {good} of {good + failed} order placements succeeded in the last "
            f"{end - tail_lo:.0f} s, below {RECOVERY_MIN_SHARE:.0%} ({summary})",
        )
    if recovery is None:
        return Recovery(
            None,
            first,
            f"not serving at the end: below {RECOVERY_MIN_SHARE:.0%} of the order placements in the "
            f"window's last second succeeded ({summary})",
        )
    if recovery > bound_s:
        return Recovery(
            recovery, first, f"recovered in {recovery} s, above the {bound_s:g} s bound ({summary})"
        )
    return Recovery(recovery, first, None)


def duplicate_effects(stats: LoadStats) -> dict[str, int]:
    from django.db import connection

    queries = {
        "orders_per_client_order_id": """SELECT count(*) FROM (SELECT 1 FROM trading_order
            WHERE client_order_id IS NOT NULL GROUP BY user_id, client_order_id HAVING count(*) > 1) d""",
        "hl_fills_applied_twice": """SELECT count(*) FROM (SELECT 1 FROM trading_fill
            WHERE hl_tid IS NOT NULL GROUP BY hl_tid HAVING count(*) > 1) d""",
        "overfilled_orders": """SELECT count(*) FROM (SELECT o.id FROM trading_order o
            JOIN trading_fill f ON f.order_id = o.id GROUP BY o.id, o.size HAVING sum(f.size) > o.size) d""",
        "positions_liquidated_twice": """SELECT count(*) FROM (SELECT 1 FROM risk_liquidationrecord
            GROUP BY position_id HAVING count(*) > 1) d""",
    }
    out = {}
    with connection.cursor() as cur:
        for name, sql in queries.items():
            cur.execute(sql)
            out[name] = int(cur.fetchone()[0])
    out["client_ids_answered_with_two_orders"] = sum(1 for ids in stats.client_ids.values() if len(ids) > 1)
    return out


def invariants(timeout: float = 20.0) -> dict[str, Any]:
    """Ledger invariants, and the trading account's positions against HL (retried while HL orders sent
    just before the load stopped settle)."""
    from django.db import close_old_connections

    from trading.hl_accounts import positions_sync
    from wallets.ledger import ledger_invariant_violations

    close_old_connections()
    ledger = ledger_invariant_violations()
    deadline = time.monotonic() + timeout
    mismatched: list[str] = []
    while True:
        try:
            rows = positions_sync()
            mismatched = [f"{r.asset}: ours {r.expected} HL {r.actual}" for r in rows if r.status != "OK"]
        except Exception as exc:  # HL unreachable counts as unknown, retried
            mismatched = [f"positions_sync failed: {type(exc).__name__}: {exc}"]
        if not mismatched or time.monotonic() > deadline:
            break
        time.sleep(2)
    return {"ledger": ledger, "positions_vs_hl": mismatched, "count": len(ledger) + len(mismatched)}


# ------------------------------------------------------------------------------------------ drills


@dataclass
class Ctx:
    stack: Stack
    hl_url: str
    redis_profile: Any
    pg_profile: Any


def _post(url: str, body: dict[str, Any]) -> None:
    import requests

    requests.post(url, json=body, timeout=5).raise_for_status()


def drill_worker(ctx: Ctx) -> None:
    ctx.stack.kill9("worker")
    time.sleep(2)
    ctx.stack.start("worker")


def drill_feed(ctx: Ctx) -> None:
    ctx.stack.kill9("feed")
    time.sleep(2)
    ctx.stack.start("feed")


def drill_web(ctx: Ctx) -> None:
    ctx.stack.kill9("web")
    time.sleep(1)
    ctx.stack.start("web")


def drill_hl_5xx(ctx: Ctx) -> None:
    _post(ctx.hl_url + "/control/fail", {"mode": "5xx", "count": 10, "path": "exchange", "status": 502})


def drill_hl_timeout(ctx: Ctx) -> None:
    _post(ctx.hl_url + "/control/fail", {"mode": "timeout", "count": 3, "path": "exchange", "hang_s": 12})


def drill_ws_drop(ctx: Ctx) -> None:
    _post(ctx.hl_url + "/control/ws/drop", {"reject_s": 5})


def drill_shock(ctx: Ctx) -> None:
    _post(ctx.hl_url + "/control/shock", {"coin": "ETH", "pct": -15})


def drill_redis(ctx: Ctx) -> None:
    from xbit_admin import devstack

    devstack.redis_stop(ctx.redis_profile)
    time.sleep(2)
    devstack.redis_start(ctx.redis_profile)


def pg_restart(profile: Any) -> None:
    """``pg_ctl restart -m fast`` of the drills' own cluster: every connection is cut, the server stops
    and starts again (devstack's helpers run it as the cluster's owner, a non-root user under root)."""
    from xbit_admin import devstack

    pg_ctl = str(devstack._pg_bin("pg_ctl"))
    log = str(profile.pg_dir / "server.log")
    devstack._run_pg(
        [pg_ctl, "-D", str(profile.pg_dir), "-m", "fast", "-w", "-t", "60", "-l", log, "restart"],
        devstack._pg_user(),
    )


def drill_postgres(ctx: Ctx) -> None:
    pg_restart(ctx.pg_profile)


DRILLS = [
    ("baseline (no fault)", None),
    ("kill -9 celery worker", drill_worker),
    ("kill -9 feed", drill_feed),
    ("kill -9 web (clients retry)", drill_web),
    ("HL /exchange 5xx ×10", drill_hl_5xx),
    ("HL /exchange timeouts ×3 (applied)", drill_hl_timeout),
    ("HL websocket drop", drill_ws_drop),
    ("15 % price shock (ETH)", drill_shock),
    ("Redis restart", drill_redis),
    ("PostgreSQL restart (pg_ctl -m fast)", drill_postgres),
]


class WorkerProbe:
    """Pings the Celery worker through the broker every 0.5 s from the fault on; the first answer after
    the fault is the worker's recovery (a worker that is gone, or connected but wedged, never answers)."""

    def __init__(self) -> None:
        self.stop_flag = threading.Event()
        self.answered_at: float | None = None
        self.thread: threading.Thread | None = None

    def start(self, fault_at: float) -> None:
        self.stop_flag.clear()
        self.answered_at = None
        self.thread = threading.Thread(target=self._run, args=(fault_at,), daemon=True)
        self.thread.start()

    def _run(self, fault_at: float) -> None:
        from xbit_admin.celery import app

        while not self.stop_flag.is_set():
            sent = time.monotonic()
            try:
                replies = app.control.ping(timeout=0.5)
            except Exception:  # broker away: try again
                replies = []
            if replies and sent >= fault_at:
                self.answered_at = time.monotonic()
                return
            self.stop_flag.wait(max(0.0, 0.5 - (time.monotonic() - sent)))

    def stop(self) -> None:
        self.stop_flag.set()
        if self.thread is not None:
            self.thread.join(5)


def celery_backlog() -> int | None:
    """Tasks waiting in the broker, every queue (beat adds ~4 a second: a stalled worker shows)."""
    from xbit_admin.collectors import celery_queues

    try:
        families = celery_queues()
    except Exception:
        return None
    return int(
        sum(
            sample.value
            for fam in families
            if fam.name == "xbit_celery_queue_length"
            for sample in fam.samples
        )
    )


def events_behind() -> dict[str, int]:
    """Work the long-running loops have not done yet, once the load has stopped: outbox rows the relay
    has not published, and per consumer group (risk exposure, alert notifier) stream entries not yet
    delivered plus delivered but not acknowledged. A loop that died or wedged leaves these growing."""
    from core.events.models import OutboxEvent
    from core.events.services import STREAM, redis_client

    out = {"outbox_unpublished": OutboxEvent.objects.filter(published_at__isnull=True).count()}
    client = redis_client()
    for group in client.xinfo_groups(STREAM):
        entries: list[Any] = client.xrange(STREAM, min=f"({group['last-delivered-id']}", count=100_000)  # type: ignore[assignment]
        undelivered = len(entries)
        out[str(group["name"])] = undelivered + int(group["pending"])
    return out


def run_drill(ctx: Ctx, load: Load, name: str, action: Any, seconds: float) -> dict[str, Any]:
    import requests

    from core.loops import db_recover

    progress(f"drill: {name}")
    load.start()
    time.sleep(min(4.0, seconds / 4))
    fault_at = time.monotonic()
    probe = WorkerProbe()
    probe.start(fault_at)
    error = None
    if action is not None:
        try:
            action(ctx)
        except Exception as exc:  # a drill that could not be injected is reported, not fatal
            error = f"{type(exc).__name__}: {exc}"
    time.sleep(max(0.0, seconds - (time.monotonic() - fault_at)))
    end = time.monotonic()
    stats = load.stop()
    with contextlib.suppress(requests.RequestException):
        requests.post(ctx.hl_url + "/control/faults/clear", timeout=5)
    judged = judge_recovery(
        fault_at=fault_at,
        end=end,
        successes=[answered for sent, answered in stats.successes if sent >= fault_at],
        failures=stats.failures,
    )
    recovery = judged.recovery_s
    exited = [proc_name for proc_name, alive in ctx.stack.alive().items() if not alive]
    for proc_name in exited:
        progress(f"  {proc_name} exited; restarting it")
        ctx.stack.start(proc_name)
    ctx.stack.wait_http(30)
    time.sleep(3)  # HL orders sent just before the stop settle; outbox drains
    probe.stop()  # the worker's answer may come after the load window (a restart under a loaded machine)
    backlog = celery_backlog()
    worker_recovery = None if probe.answered_at is None else round(probe.answered_at - fault_at, 2)
    db_recover()  # this process's own connection did not survive a PostgreSQL restart either
    dups = duplicate_effects(stats)
    inv = invariants()
    try:
        behind: dict[str, int] | None = events_behind()
    except Exception as exc:  # reported, not fatal
        progress(f"  could not read the event backlog: {type(exc).__name__}: {exc}")
        behind = None
    row = {
        "drill": name,
        "seconds": seconds,
        "requests": stats.requests,
        "errors": stats.errors,
        "rejected_4xx": stats.rejected,
        "gave_up": stats.gave_up,
        "orders_ok": len(stats.successes),
        "duplicate_effects": sum(dups.values()),
        "duplicates": dups,
        "invariant_violations": inv["count"],
        "invariants": inv,
        "recovery_s": recovery,
        "first_order_after_fault_s": judged.first_success_s,
        "recovery_failure": judged.failure,
        "worker_recovery_s": worker_recovery,
        "celery_backlog_at_end": backlog,
        "exited_by_themselves": exited,
        "events_behind": behind,
        "answers_by_code": stats.codes,
        "injection_error": error,
    }
    progress(
        f"  requests {row['requests']}  errors {row['errors']}  orders ok {row['orders_ok']}  "
        f"duplicates {row['duplicate_effects']}  violations {row['invariant_violations']}  "
        f"recovery {recovery if recovery is not None else '—'} s  worker {worker_recovery if worker_recovery is not None else '—'} s  "
        f"backlog {backlog}  events behind {behind}  exited {exited or 'none'}  codes {stats.codes}"
    )
    if judged.failure:
        progress(f"  FAIL: {judged.failure}")
    return row


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'drill':<36} {'requests':>8} {'errors':>6} {'4xx':>5} {'ok':>5} {'dup':>4} {'viol':>4} "
        f"{'recovery s':>10} {'worker s':>8} {'backlog':>7} {'behind':>6}  exited"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        rec = "—" if r["recovery_s"] is None else f"{r['recovery_s']:.2f}"
        wrk = "—" if r["worker_recovery_s"] is None else f"{r['worker_recovery_s']:.2f}"
        print(
            f"{r['drill']:<36} {r['requests']:>8} {r['errors']:>6} {r['rejected_4xx']:>5} {r['orders_ok']:>5} "
            f"{r['duplicate_effects']:>4} {r['invariant_violations']:>4} {rec:>10} {wrk:>8} "
            f"{r['celery_backlog_at_end'] if r['celery_backlog_at_end'] is not None else '—':>7} "
            f"{sum(r['events_behind'].values()) if r['events_behind'] is not None else '—':>6}  "
            f"{', '.join(r['exited_by_themselves']) or '—'}"
        )


# ------------------------------------------------------------------------------------------ set-up


def seed(hl_url: str, traders: int) -> list[str]:
    from django.conf import settings

    from core.accounts.models import User
    from core.accounts.tokens import access_token_for
    from routing.services import routing_config_update
    from trading.hl_accounts import hl_sandbox_accounts_setup
    from trading.markets import hl_info, markets_sync
    from trading.venues.hl import reset_gateways
    from wallets.ledger import AccountRef, TransferSpec, ledger_post
    from wallets.models import AccountKind, TransferKind

    settings.HL_API_URL = hl_url
    reset_gateways()
    markets_sync(info=hl_info(base_url=hl_url))
    routing_config_update(
        asset="*", changes={"global_internalization_enabled": True}, acting_user=None, reason="drills"
    )
    hl_sandbox_accounts_setup(base_url=hl_url)
    tokens = []
    for i in range(traders):
        user = User.objects.create_user(f"drill{i}@xbit.test", "drill-password-123")
        ledger_post(
            key=f"drill-fund:{user.pk}",
            transfers=[
                TransferSpec(
                    AccountRef.platform(AccountKind.DEPOSIT_CLEARING),
                    AccountRef.user(user.pk, AccountKind.CASH),
                    Decimal("1000000"),
                    TransferKind.DEPOSIT,
                    "drills",
                    user.pk,
                )
            ],
        )
        tokens.append(access_token_for(user))
    return tokens


def wait_quotes(timeout: float = 60) -> bool:
    from trading.marketdata import get_quote

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        quotes = [get_quote(a) for a in ("BTC", "ETH")]
        if all(q is not None and q.mark for q in quotes):
            return True
        time.sleep(0.5)
    return False


def wait_gate_open(timeout: float = 90) -> bool:
    from core.platform.models import PlatformState

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = PlatformState.objects.filter(key="orders").values("ready").first()
        if row is not None and row["ready"]:
            return True
        time.sleep(0.5)
    return False


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="load per drill (default 20)")
    parser.add_argument("--traders", type=int, default=6)
    parser.add_argument("--only", default="", help="comma-separated substrings of drill names")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _raise_interrupt)
    started = time.monotonic()

    from xbit_admin import devstack

    # the drills' own services: restarting them never disturbs another run's tests
    profile = devstack.Profile(
        "drills", STATE / "pg", free_port(), ROOT / ".xbit" / "drills-redis", free_port(), durable=False
    )
    devstack.pg_stop(profile)  # a cluster left running by an interrupted run (its port is stale)
    stack: Stack | None = None
    rows: list[dict[str, Any]] = []
    try:
        os.environ["DATABASE_URL"] = devstack.pg_start(profile)
        os.environ["REDIS_URL"] = devstack.redis_start(profile)
        progress("setting up the drills database …")
        setup_django("xbit_drills")
        from django.core.cache import cache

        cache.clear()
        from sandbox.testing import SandboxProcess

        with SandboxProcess(seed=11, config={"hyperliquid": {"default_account_usdc": 50_000_000}}) as sb:
            hl_url = sb.urls["hyperliquid"]
            tokens = seed(hl_url, args.traders)
            port = free_port()
            env = dict(
                os.environ,
                DJANGO_SETTINGS_MODULE="bench.drills_settings",  # test settings, JSON logs as in production
                HL_API_URL=hl_url,
                TRON_RPC_URL=sb.urls["tron"],
                SOLANA_RPC_URL=sb.urls["solana"],
                DB_POOL_MAX="8",
                PYTHONUNBUFFERED="1",
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            )
            stack = Stack(env, port)
            progress(f"starting the processes (logs in {STATE.relative_to(ROOT)}/) …")
            stack.start_all()
            if not stack.wait_http(90):
                raise RuntimeError("web did not come up")
            if not wait_quotes(60):
                raise RuntimeError("the feed published no quotes")
            if not wait_gate_open(120):
                raise RuntimeError("the readiness gate did not open (see .xbit/drills/platform.log)")
            ctx = Ctx(stack, hl_url, profile, profile)
            load = Load(f"http://127.0.0.1:{port}", tokens)
            wanted = [w.strip().lower() for w in args.only.split(",") if w.strip()]
            for name, action in DRILLS:
                if wanted and not any(w in name.lower() for w in wanted):
                    continue
                if time.monotonic() - started + args.seconds + 40 > TOTAL_BUDGET_S:
                    progress(f"time budget reached: skipping {name}")
                    continue
                rows.append(run_drill(ctx, load, name, action, args.seconds))
    except KeyboardInterrupt:
        progress("interrupted: stopping every process …")
    finally:
        if stack is not None:
            stack.stop_all()
        with contextlib.suppress(Exception):  # Django may not be set up yet
            from django.db import connections

            connections.close_all()
        devstack.redis_stop(profile)
        devstack.pg_stop(profile)
    if not rows:
        return 1
    print()
    print_table(rows)
    load_avg = os.getloadavg()
    path = save(
        "drills",
        {
            "git": git_rev(),
            "traders": args.traders,
            "seconds_per_drill": args.seconds,
            "load_average": [round(x, 2) for x in load_avg],
            "elapsed_s": round(time.monotonic() - started, 1),
            "drills": rows,
        },
    )
    progress(
        f"load average {load_avg[0]:.2f} {load_avg[1]:.2f} {load_avg[2]:.2f}; saved {path.relative_to(ROOT)}"
    )
    bad = sum(r["duplicate_effects"] + r["invariant_violations"] for r in rows)
    # a drill the platform did not come back from (not serving orders at the end of its window, or only
    # after RECOVERY_BOUND_S) is a failure, however clean its books: a halted platform has no duplicates
    stuck = {r["drill"]: r["recovery_failure"] for r in rows if r["recovery_failure"]}
    print(json.dumps({"duplicate_effects_plus_violations": bad, "not_recovered": stuck}))
    for drill, why in stuck.items():
        progress(f"FAIL: {drill}: {why}")
    return 1 if bad or stuck else 0


if __name__ == "__main__":
    raise SystemExit(main())
