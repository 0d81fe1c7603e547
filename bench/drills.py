"""Disaster-recovery drills (issue 10, spec 08): the real processes under sustained trader load while
each fault is injected, then the books are checked.

    make drills      # or: python -m xbit_admin.devstack exec --test python bench/drills.py [--seconds 20]

Set-up as the benchmarks: a throw-away database (``xbit_drills``) on the embedded TEST cluster, markets
synced from a sandbox, HL agents approved, internalization on, N funded traders. The drills get their
own Redis server (the devstack helpers on a free port, data under ``.xbit/drills-redis``) so that the
Redis restart drill never pulls the floor from under another run's tests on the shared test Redis.
Processes (as the Procfile): uvicorn web, a celery worker on every queue, beat, relay, feed, hlstream,
risk consumer. Everything is bounded (≤ 10 minutes) and every child is stopped on exit, Ctrl-C included.

Per drill: requests, errors (5xx / connection failures per attempt; clients retry with the same
client_order_id), duplicate effects (must be 0), invariant violations (must be 0: the ledger
invariants and the trading account's positions against HL) and recovery time (seconds from the fault
to the first successful order placed after it).
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
        }

    def start(self, name: str) -> None:
        log = open(STATE / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        self.procs[name] = subprocess.Popen(
            self.commands[name],
            env=self.env,
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
        for _ in range(retries):
            sent = time.monotonic()
            with stats.lock:
                stats.requests += 1
            try:
                resp = session.request(method, self.base + path, json=body, timeout=10)
            except requests.RequestException:
                with stats.lock:
                    stats.errors += 1
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
                time.sleep(0.5)
                continue
            payload = resp.json() if resp.content else None
            if resp.status_code in (200, 201):
                if path == "/api/v1/orders" and method == "POST" or path.endswith("/close"):
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
]


def run_drill(ctx: Ctx, load: Load, name: str, action: Any, seconds: float) -> dict[str, Any]:
    import requests

    progress(f"drill: {name}")
    load.start()
    time.sleep(min(4.0, seconds / 4))
    fault_at = time.monotonic()
    error = None
    if action is not None:
        try:
            action(ctx)
        except Exception as exc:  # a drill that could not be injected is reported, not fatal
            error = f"{type(exc).__name__}: {exc}"
    time.sleep(max(0.0, seconds - (time.monotonic() - fault_at)))
    stats = load.stop()
    with contextlib.suppress(requests.RequestException):
        requests.post(ctx.hl_url + "/control/faults/clear", timeout=5)
    after = [answered - fault_at for sent, answered in stats.successes if sent >= fault_at]
    recovery = round(min(after), 2) if after else None
    for proc_name, alive in ctx.stack.alive().items():
        if not alive:
            progress(f"  {proc_name} exited; restarting it")
            ctx.stack.start(proc_name)
    ctx.stack.wait_http(30)
    time.sleep(3)  # HL orders sent just before the stop settle; outbox drains
    dups = duplicate_effects(stats)
    inv = invariants()
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
        "answers_by_code": stats.codes,
        "injection_error": error,
    }
    progress(
        f"  requests {row['requests']}  errors {row['errors']}  orders ok {row['orders_ok']}  "
        f"duplicates {row['duplicate_effects']}  violations {row['invariant_violations']}  "
        f"recovery {recovery if recovery is not None else '—'} s  codes {stats.codes}"
    )
    return row


def print_table(rows: list[dict[str, Any]]) -> None:
    head = f"{'drill':<36} {'requests':>8} {'errors':>6} {'4xx':>5} {'ok':>5} {'dup':>4} {'viol':>4} {'recovery s':>10}"
    print(head)
    print("-" * len(head))
    for r in rows:
        rec = "—" if r["recovery_s"] is None else f"{r['recovery_s']:.2f}"
        print(
            f"{r['drill']:<36} {r['requests']:>8} {r['errors']:>6} {r['rejected_4xx']:>5} {r['orders_ok']:>5} "
            f"{r['duplicate_effects']:>4} {r['invariant_violations']:>4} {rec:>10}"
        )


# ------------------------------------------------------------------------------------------ set-up


def seed(hl_url: str, traders: int) -> list[str]:
    from django.conf import settings

    from routing.services import routing_config_update
    from trading.hl_accounts import hl_sandbox_accounts_setup
    from trading.markets import hl_info, markets_sync
    from trading.venues.hl import reset_gateways
    from wallets.ledger import AccountRef, TransferSpec, ledger_post
    from wallets.models import AccountKind, TransferKind
    from xbit_admin.accounts.models import User
    from xbit_admin.accounts.tokens import access_token_for

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

    redis_profile = devstack.Profile(
        "drills", STATE / "pg-unused", 0, ROOT / ".xbit" / "drills-redis", free_port(), durable=False
    )
    os.environ["REDIS_URL"] = devstack.redis_start(redis_profile)
    stack: Stack | None = None
    rows: list[dict[str, Any]] = []
    try:
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
                DJANGO_SETTINGS_MODULE="xbit_admin.settings.test",
                HL_API_URL=hl_url,
                CHAINS_API_URL=sb.urls["chains"],
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
            ctx = Ctx(stack, hl_url, redis_profile)
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
        devstack.redis_stop(redis_profile)
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
    print(json.dumps({"duplicate_effects_plus_violations": bad}))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
