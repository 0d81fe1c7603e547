"""``make soak``: the whole platform as ``make run`` starts it, through a scripted market day.

    make soak                          # SOAK_MINUTES=30 by default
    SOAK_MINUTES=60 make soak
    python bench/soak.py --minutes 5   # the 5-minute soak (``.ci/run``: make soak SOAK_MINUTES=5)

What runs: every process of the Procfile under honcho (web, worker, beat, relay, sandbox, feed, the demo
traders on the real HTTP API, hlstream, risk, alerts, platform), each under ``xbit_admin.respawn`` as in
``make run``, after the same migrations and ``seed_demo``. The soak has its own PostgreSQL cluster and
Redis server (the devstack's helpers, free ports, data under ``.xbit/soak/``) and its own ports for the
web and the sandbox, so it never touches ``make run``'s data nor another run's tests, and its Redis can
be restarted.

The market day, at fixed fractions of the run: normal prices; a 10 % move in one asset (SOL); an HL
``/exchange`` 5xx burst; an HL websocket drop; a Redis restart; a ``kill -9`` of the Celery worker (its
respawn brings it back). Every fault names what it may explain: the alert rules it can raise and
whether it may close the order gate. Nothing explains a 5xx: the platform rides each fault out (a
cancel HL answers 5xx is sent again, an order waits for the quotes a restarted Redis lost) or refuses
with a 4xx; a 5xx is reported with the fault in whose window it fell, and fails the run.

The report (``bench/results/soak.json`` and a table): minutes ready / degraded / not ready, every alert
raised with the fault that explains it (none: a **false alarm**), every closing of the order gate and
why, orders by route, HTTP 5xx (each with the fault it fell during, if any), p50/p99 order latency per
minute (server time, from the web's ``http.request`` lines), ledger invariant violations and the trading account against HL,
reconciliation per dimension at the end, every process's memory after warm-up and at the end, and the
Celery backlog. Exit status 1 on any false alarm, any 5xx, invariant violation, unexplained gate
closure, reconciliation not OK at the end, no fill on either route, a process growing by more than 20 %,
a platform that is not ready within 60 s of its start, a fault that could not be injected (named), or a
web log in which no request was found (``report_failures``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, git_rev, machine, progress, save
from xbit_admin import devstack

# SOAK_NAME: another name runs a second soak beside one (its own folder and result file)
NAME = os.environ.get("SOAK_NAME", "soak")
STATE = ROOT / ".xbit" / NAME
READY_WITHIN_S = 60.0
MEMORY_GROWTH_LIMIT = 0.20  # of the figure after warm-up
MEMORY_GROWTH_FLOOR_MIB = 16.0  # below this a relative growth is allocator noise, not a leak
# The venue stand-ins keep the venue's history, as the venues do, and grow with it: reported with the
# rest, not judged as a leak. A chain node keeps every block it mines (one a second). The simulated HL
# keeps finished orders (orderStatus by oid/cloid, historicalOrders; at most 200,000), fills (at most
# 10,000 per account: userFills, userFillsByTime) and a day of trades (24 h volume) — measured at
# ~1.5-2.1 KB per order that fills, flat under 4,000 websocket connect/subscribe/drop cycles, and
# ~0.85 KB per order once the fill cap is reached (24,000 orders through the SDK). Our processes are judged.
GROWS_BY_DESIGN = {
    "evm": "chain history: grows by design",
    "sandbox": "HL's order and fill history: grows by design, capped",
}
SAMPLE_S = 2.0
# The consumer groups of the event stream, one per long-running reader (the names are the readers' own
# constants; tests/test_bench_soak_report.py checks them). A group missing at the end means its reader
# stopped reading — the user-stream fan-out did so after every Redis restart until a soak judged it.
CONSUMER_GROUPS = ("alerts.notifier", "risk-exposure", "risk-hedge", "risk-markouts", "user-stream")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


# ------------------------------------------------------------------------------------------ faults


@dataclass
class Fault:
    """One scripted event. ``explains``: alert rules (prefixes, ``rule`` or ``rule:subject``) it may
    raise while its window lasts; ``gate``: it may close the order gate. No fault explains an HTTP 5xx."""

    name: str
    at_fraction: float
    action: Callable[[Soak], None]
    explains: tuple[str, ...] = ()
    window_s: float = 120.0
    gate: bool = False
    at: float | None = None  # wall clock (epoch s) when injected
    error: str | None = None


def _sandbox(soak: Soak, path: str, body: dict[str, Any]) -> None:
    import requests

    requests.post(f"{soak.hl_url}/control/{path}", json=body, timeout=5).raise_for_status()


def price_move(soak: Soak) -> None:
    _sandbox(soak, "shock", {"coin": "SOL", "pct": -10})


def hl_5xx(soak: Soak) -> None:
    _sandbox(soak, "fail", {"mode": "5xx", "count": 10, "path": "exchange", "status": 502})


def ws_drop(soak: Soak) -> None:
    _sandbox(soak, "ws/drop", {"reject_s": 5})


def redis_restart(soak: Soak) -> None:
    devstack.redis_stop(soak.profile)
    time.sleep(2)
    devstack.redis_start(soak.profile)


def worker_kill(soak: Soak) -> None:
    pid = soak.platform.child_of("worker")
    if pid is None:
        raise RuntimeError("no worker process found")
    os.kill(pid, signal.SIGKILL)


# What a 10 % move may legitimately set off: its own breakers, liquidations and their drift, the hedge
# and exposure limits reacting to the new exposure.
MARKET_EFFECTS = (
    "risk.breaker.volatility:SOL",
    "risk.breaker.price_jump:SOL",
    "risk.breaker.daily_loss",
    "risk.liquidation",
    "risk.drift",
    "risk.hedge",
    "risk.exposure",
    "risk.auto_switch",
    "risk.max_internal_exposure",
)
# an HL outage shows as the feed's and the breakers' alerts
HL_DATA_EFFECTS = ("feed.down", "marketdata.", "risk.breaker.hl_disconnect", "risk.breaker.hl_latency")


def market_day() -> list[Fault]:
    return [
        Fault("10 % move in SOL", 0.20, price_move, MARKET_EFFECTS, window_s=300),
        Fault(
            "HL /exchange 5xx ×10",
            0.35,
            hl_5xx,
            ("risk.hedge.order_failed", "hl."),
            window_s=60,
        ),
        Fault("HL websocket drop (5 s)", 0.50, ws_drop, HL_DATA_EFFECTS, window_s=60),
        Fault("Redis restart", 0.65, redis_restart, HL_DATA_EFFECTS, window_s=60, gate=True),
        Fault("kill -9 celery worker", 0.80, worker_kill, (), window_s=60),
    ]


# ------------------------------------------------------------------------------------------ processes


def _proc_children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def _cmdline(pid: int) -> list[str]:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _rss_kib(pid: int) -> int:
    try:
        for line in (Path("/proc") / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Platform:
    """honcho with the Procfile, as ``make run`` starts it: the simulated venues first (the demo is
    seeded against them), then every other process, each honcho in its own session; the output of both
    goes to ``platform.log``."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []
        self.log_path = STATE / "platform.log"

    def _honcho(self, names: list[str]) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "honcho", "-f", str(ROOT / "Procfile"), "start", *names],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        log.close()

    def start_venues(self) -> None:
        self._honcho(list(devstack.VENUE_PROCESSES))

    def start_platform(self) -> None:
        self._honcho([n for n in devstack.procfile_names() if n not in devstack.VENUE_PROCESSES])

    def stop(self) -> None:
        for proc in reversed(self.procs):  # the platform first, the venues it talks to last
            if proc.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)

    def named(self) -> dict[str, int]:
        """Procfile name → the pid at the top of that process's tree (its respawn, or the command)."""
        children = _proc_children()
        out: dict[str, int] = {}
        stack = [pid for proc in self.procs for pid in children.get(proc.pid, [])]
        while stack:
            pid = stack.pop()
            argv = _cmdline(pid)
            name = None
            module = argv[argv.index("-m") + 1] if "-m" in argv[:-1] else ""
            if "xbit_admin.respawn" in argv and "--name" in argv:
                name = argv[argv.index("--name") + 1]
            elif module == "sandbox":  # not the venues' honcho, whose command line names "sandbox" too
                name = "sandbox"
            elif module == "sandbox.evm":
                name = "evm"  # the anvil nodes are its children
            elif "simulate_traders" in argv:
                name = "traders"
            if name is not None and name not in out:
                out[name] = pid
            else:
                stack.extend(children.get(pid, []))
        return out

    def child_of(self, name: str) -> int | None:
        """The command a respawn runs (what a crash would take down)."""
        top = self.named().get(name)
        if top is None:
            return None
        kids = _proc_children().get(top, [])
        return kids[0] if kids else None

    def memory_mib(self) -> dict[str, float]:
        children = _proc_children()
        out = {}
        for name, top in self.named().items():
            total, stack = 0, [top]
            while stack:
                pid = stack.pop()
                total += _rss_kib(pid)
                stack.extend(children.get(pid, []))
            out[name] = round(total / 1024, 1)
        return out


# ------------------------------------------------------------------------------------------ the run


@dataclass
class Soak:
    minutes: float
    profile: Any = None
    platform: Platform = field(default_factory=lambda: Platform({}))
    hl_url: str = ""
    web: str = ""
    started: float = 0.0
    ready_at: float | None = None
    readiness: dict[str, float] = field(default_factory=dict)  # status → seconds
    gate_events: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    memory_start: dict[str, float] = field(default_factory=dict)
    memory_end: dict[str, float] = field(default_factory=dict)


def _readyz(base: str) -> str:
    import requests

    try:
        return str(requests.get(f"{base}/readyz", timeout=3).json().get("status", "unknown"))
    except (requests.RequestException, ValueError):
        return "unreachable"


def _gate() -> tuple[bool, str]:
    from django.db import close_old_connections

    from core.platform.models import PlatformState

    try:
        row = PlatformState.objects.filter(key="orders").values("ready", "reason").first()
    except Exception:  # the database or this process's connection: asked again next sample
        close_old_connections()
        return True, ""
    return (True, "") if row is None else (bool(row["ready"]), str(row["reason"]))


def _gate_opened_since(started: float) -> bool:
    """Whether the platform process has opened the order gate since ``started`` (a Unix time)."""
    from django.db import close_old_connections

    from core.platform.models import PlatformState

    try:
        row = PlatformState.objects.filter(key="orders").values("ready", "changed_at").first()
    except Exception:  # the database or this process's connection: asked again next sample
        close_old_connections()
        return False
    return row is not None and bool(row["ready"]) and row["changed_at"].timestamp() >= started


def _fault_at(soak: Soak, at: float, *, gate: bool = False) -> Fault | None:
    """The fault whose window ``at`` falls in (with ``gate``: only one that may close the gate)."""
    for fault in soak.faults:
        if fault.at is None or not (fault.at - 2 <= at <= fault.at + fault.window_s):
            continue
        if fault.gate or not gate:
            return fault
    return None


def _explained_by(soak: Soak, rule: str, subject: str, at: float) -> str | None:
    for fault in soak.faults:
        if fault.at is None or not (fault.at - 2 <= at <= fault.at + fault.window_s):
            continue
        for pattern in fault.explains:
            want_rule, _, want_subject = pattern.partition(":")
            if rule.startswith(want_rule) and (not want_subject or want_subject == subject):
                return fault.name
    return None


def run_day(soak: Soak) -> None:
    duration = soak.minutes * 60
    for fault in soak.faults:
        fault.at = None
    pending = sorted(soak.faults, key=lambda f: f.at_fraction)
    begin = time.time()
    warm = begin + min(60.0, duration * 0.25)
    gate_open = True
    last_minute = -1
    while (now := time.time()) < begin + duration:
        if pending and now >= begin + pending[0].at_fraction * duration:
            fault = pending.pop(0)
            fault.at = time.time()
            progress(f"fault: {fault.name}")
            try:
                fault.action(soak)
            except Exception as exc:  # reported: a fault that was not injected explains nothing
                fault.error = f"{type(exc).__name__}: {exc}"
                progress(f"  could not inject it: {fault.error}")
        if not soak.memory_start and now >= warm:
            soak.memory_start = soak.platform.memory_mib()
        status = _readyz(soak.web)
        soak.readiness[status] = soak.readiness.get(status, 0.0) + SAMPLE_S
        ready, reason = _gate()
        if ready != gate_open:
            soak.gate_events.append({"at": now, "open": ready, "reason": reason})
            progress(f"order gate {'opened' if ready else 'closed'}{': ' + reason if reason else ''}")
            gate_open = ready
        minute = int((now - begin) // 60)
        if minute != last_minute:
            last_minute = minute
            progress(
                f"minute {minute + 1}/{soak.minutes:g}: /readyz {status}, gate {'open' if gate_open else 'closed'}"
            )
        time.sleep(max(0.0, SAMPLE_S - (time.time() - now)))
    soak.memory_end = soak.platform.memory_mib()


# ------------------------------------------------------------------------------------------ report


_LINE = re.compile(r"^\d\d:\d\d:\d\d (\S+?)\.\d+\s+\| (.*)$")


def http_lines(log_path: Path, since: float) -> list[dict[str, Any]]:
    """The web's ``http.request`` lines (JSON) after ``since``."""
    out = []
    with open(log_path, errors="replace") as fh:
        for raw in fh:
            match = _LINE.match(raw.rstrip("\n"))
            if not match or match.group(1) != "web" or '"http.request"' not in match.group(2):
                continue
            with contextlib.suppress(ValueError, KeyError):
                line = json.loads(match.group(2))
                at = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()
                if at >= since:
                    line["at"] = at
                    out.append(line)
    return out


def traders_summary(log_path: Path) -> str:
    last = ""
    with open(log_path, errors="replace") as fh:
        for raw in fh:
            if "simulate_traders" in raw and ("simulate_traders:" in raw or "stopped:" in raw):
                last = raw.split("|", 1)[-1].strip()
    return last


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))], 1)


def report(soak: Soak) -> dict[str, Any]:
    from django.db import close_old_connections
    from django.db.models import Count
    from django.utils import timezone

    from bench.drills import celery_backlog, events_behind, invariants
    from core.alerts.models import Alert
    from risk.reconciliation import reconciliation_run
    from trading.models import Order

    close_old_connections()
    since = datetime.fromtimestamp(soak.started, tz=UTC)
    # alerts: every one raised during the soak, with the fault that explains it
    alerts = []
    for alert in Alert.objects.filter(first_seen__gte=since).order_by("first_seen"):
        at = alert.first_seen.timestamp()
        alerts.append(
            {
                "rule": alert.rule,
                "subject": alert.subject,
                "severity": alert.severity,
                "state": alert.state,
                "count": alert.count,
                "first_seen": alert.first_seen.isoformat(),
                "message": alert.message[:300],
                "explained_by": _explained_by(soak, alert.rule, alert.subject, at),
            }
        )
    closures = []
    for event in soak.gate_events:
        if not event["open"]:
            fault = _fault_at(soak, event["at"], gate=True)
            closures.append({**event, "explained_by": fault.name if fault else None})
    routes = {
        f"{r['route'] or 'NONE'} {r['status']}": r["n"]
        for r in Order.objects.filter(created_at__gte=since)
        .values("route", "status")
        .annotate(n=Count("id"))
        .order_by()
    }
    filled = {
        route: Order.objects.filter(created_at__gte=since, route=route, filled_size__gt=0).count()
        for route in ("INTERNAL", "HYPERLIQUID")
    }
    lines = http_lines(soak.platform.log_path, soak.started)
    server_errors = []
    for line in lines:
        if int(line.get("status", 0)) >= 500:
            fault = _fault_at(soak, line["at"])
            server_errors.append(
                {
                    "at": datetime.fromtimestamp(line["at"], tz=UTC).isoformat(),
                    "route": line.get("route"),
                    "status": line.get("status"),
                    "code": line.get("code"),
                    "during": fault.name if fault else None,
                }
            )
    per_minute: dict[int, list[float]] = {}
    for line in lines:
        if line.get("method") == "POST" and str(line.get("route", "")).startswith("api/v1/orders"):
            per_minute.setdefault(int((line["at"] - soak.started) // 60), []).append(
                float(line["duration_ms"])
            )
    latency = [
        {"minute": m + 1, "orders": len(v), "p50_ms": _pct(v, 50), "p99_ms": _pct(v, 99)}
        for m, v in sorted(per_minute.items())
    ]
    time.sleep(3)
    inv = invariants()
    recon: dict[str, str] = {}
    severity = {"OK": 0, "WARN": 1, "CRITICAL": 2}
    for row in reconciliation_run():
        status = str(row.status)
        if severity[status] >= severity[recon.get(row.dimension, "OK")]:
            recon[row.dimension] = status
    memory: dict[str, dict[str, Any]] = {
        name: {
            "start_mib": soak.memory_start.get(name),
            "end_mib": mib,
            "growth": (round(mib / soak.memory_start[name] - 1, 3) if soak.memory_start.get(name) else None),
        }
        for name, mib in sorted(soak.memory_end.items())
    }
    leaking = memory_growing(memory)
    try:
        behind: dict[str, int] | None = events_behind()
    except Exception:
        behind = None
    ready_after = None if soak.ready_at is None else round(soak.ready_at - soak.started, 1)
    result = {
        "minutes": soak.minutes,
        "git": git_rev(),
        "machine": machine(),
        "ready_after_s": ready_after,
        "readiness_minutes": {k: round(v / 60, 2) for k, v in sorted(soak.readiness.items())},
        "faults": [
            {
                "name": f.name,
                "at": f.at and datetime.fromtimestamp(f.at, tz=UTC).isoformat(),
                "error": f.error,
            }
            for f in soak.faults
        ],
        "alerts": alerts,
        "false_alarms": [a for a in alerts if a["explained_by"] is None],
        "gate_closures": closures,
        "orders": routes,
        "orders_filled_by_route": filled,
        "http_requests_logged": len(lines),
        "http_5xx": server_errors,
        "order_latency_per_minute": latency,
        "traders": traders_summary(soak.platform.log_path),
        "invariant_violations": inv["count"],
        "invariants": inv,
        "reconciliation_at_end": recon,
        "memory": memory,
        "memory_growing": leaking,
        "celery_backlog_at_end": celery_backlog(),
        "events_behind_at_end": behind,
        "finished_at": timezone.now().isoformat(),
    }
    result["failures"] = report_failures(result)
    return result


def memory_growing(memory: dict[str, dict[str, Any]]) -> list[str]:
    """The processes whose memory grew past the limit (and the floor) — our own, not the stand-ins."""
    return [
        name
        for name, m in memory.items()
        if name not in GROWS_BY_DESIGN
        and m["growth"] is not None
        and m["growth"] > MEMORY_GROWTH_LIMIT
        and m["end_mib"] - (m["start_mib"] or 0) > MEMORY_GROWTH_FLOOR_MIB
    ]


def _describe_5xx(e: dict[str, Any]) -> str:
    code = f" {e['code']}" if e.get("code") else ""
    at = f" at {str(e['at'])[11:19]}" if e.get("at") else ""
    return f"{e.get('status')}{code} {e.get('route') or '?'}{at} during {e.get('during') or 'no fault'}"


def report_failures(result: dict[str, Any]) -> list[str]:
    """Why the soak fails, from its report alone (empty: it passes). A fault that could not be
    injected fails the run by name: a market day without its faults proves nothing about them. So does
    a web log in which no request was found: a changed log format would otherwise read as "0 5xx"."""
    failures = []
    ready_after = result["ready_after_s"]
    if ready_after is None or ready_after > READY_WITHIN_S:
        failures.append(f"not ready within {READY_WITHIN_S:.0f} s of the start ({ready_after})")
    for fault in result["faults"]:
        if fault["error"]:
            failures.append(f"fault not injected: {fault['name']} ({fault['error']})")
        elif not fault["at"]:
            failures.append(f"fault not injected: {fault['name']} (the run ended before it)")
    if not result["http_requests_logged"]:
        failures.append(
            "no HTTP request found in the web log: 5xx and latency were not measured (log format changed?)"
        )
    if result["false_alarms"]:
        failures.append(f"{len(result['false_alarms'])} false alarm(s)")
    if result["http_5xx"]:
        # each named (the first three), so that the last lines of a failed run say what failed
        named = "; ".join(_describe_5xx(e) for e in result["http_5xx"][:3])
        failures.append(f"{len(result['http_5xx'])} HTTP 5xx ({named})")
    violations = result["invariant_violations"]
    if violations:
        failures.append(f"{violations} invariant violation(s)")
    unexplained_gate = [c for c in result["gate_closures"] if c["explained_by"] is None]
    if unexplained_gate:
        failures.append(f"order gate closed {len(unexplained_gate)} time(s) without a cause")
    not_ok = {d: s for d, s in result["reconciliation_at_end"].items() if s != "OK"}
    if not_ok:
        failures.append(f"reconciliation not OK at the end: {not_ok}")
    filled = result["orders_filled_by_route"]
    if not filled.get("INTERNAL") or not filled.get("HYPERLIQUID"):
        failures.append(f"orders filled by route {filled}: both must be > 0")
    behind = result.get("events_behind_at_end")
    if behind is None:
        failures.append("the event stream's consumer groups were not read at the end")
    else:
        missing = [group for group in CONSUMER_GROUPS if group not in behind]
        if missing:
            failures.append(
                f"consumer group(s) missing at the end, their readers stopped: {', '.join(missing)}"
            )
    growing = memory_growing(result["memory"])
    if growing:
        failures.append(f"memory growing > {MEMORY_GROWTH_LIMIT:.0%}: {', '.join(growing)}")
    return failures


def print_report(r: dict[str, Any]) -> None:
    print()
    print(f"soak: {r['minutes']:g} minutes at {r['git']}, ready {r['ready_after_s']} s after the start")
    print(f"  /readyz minutes: {r['readiness_minutes']}")
    print(f"  orders filled by route: {r['orders_filled_by_route']}   all orders: {r['orders']}")
    print(f"  traders: {r['traders']}")
    print(f"  {'fault':<28} {'injected at':<34} error")
    for f in r["faults"]:
        print(f"  {f['name']:<28} {f['at'] or '—':<34} {f['error'] or ''}")
    print(f"  {'alert':<40} {'sev':<4} {'first seen':<34} explained by")
    for a in r["alerts"]:
        print(
            f"  {a['rule'] + ':' + a['subject']:<40} {a['severity']:<4} {a['first_seen']:<34} "
            f"{a['explained_by'] or 'FALSE ALARM — ' + a['message'][:80]}"
        )
    if not r["alerts"]:
        print("  (no alert)")
    for c in r["gate_closures"]:
        print(f"  gate closed: {c['reason']} — {c['explained_by'] or 'NO CAUSE'}")
    print(
        f"  HTTP 5xx: {len(r['http_5xx'])}"
        + "".join(
            f"\n    {e['at']} {e['status']} {e.get('code') or '-'} {e['route']} (during {e.get('during')})"
            for e in r["http_5xx"]
        )
    )
    print(f"  {'minute':>6} {'orders':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for row in r["order_latency_per_minute"]:
        print(f"  {row['minute']:>6} {row['orders']:>7} {row['p50_ms']!s:>8} {row['p99_ms']!s:>8}")
    print(f"  invariant violations: {r['invariant_violations']}")
    print(f"  reconciliation at the end: {r['reconciliation_at_end']}")
    print(f"  {'process':<10} {'start MiB':>10} {'end MiB':>9} {'growth':>7}")
    for name, m in r["memory"].items():
        growth = "—" if m["growth"] is None else f"{m['growth']:+.1%}"
        note = f"  ({GROWS_BY_DESIGN[name]})" if name in GROWS_BY_DESIGN else ""
        print(f"  {name:<10} {m['start_mib']!s:>10} {m['end_mib']:>9} {growth:>7}{note}")
    print(
        f"  celery backlog at the end: {r['celery_backlog_at_end']}; events behind: {r['events_behind_at_end']}"
    )
    print("  result: " + ("PASS" if not r["failures"] else "FAIL — " + "; ".join(r["failures"])))


# ------------------------------------------------------------------------------------------ main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "30")))
    parser.add_argument(
        "--judge",
        metavar="REPORT",
        help="judge a saved report (bench/results/*.json) by this code's rules, print it, exit 0 or 1",
    )
    args = parser.parse_args()
    if args.judge:
        saved = json.loads(Path(args.judge).read_text())
        saved["memory_growing"] = memory_growing(saved["memory"])
        saved["failures"] = report_failures(saved)
        print_report(saved)
        return 1 if saved["failures"] else 0
    signal.signal(signal.SIGTERM, _raise_interrupt)
    soak = Soak(minutes=args.minutes, faults=market_day())
    soak.profile = devstack.Profile(
        NAME, STATE / "pg", free_port(), STATE / "redis", free_port(), durable=False
    )
    devstack.pg_stop(soak.profile)  # left running by an interrupted soak
    devstack.redis_stop(soak.profile)
    for leftover in ("pg", "redis", "sandbox", "evm", "platform.log", "celerybeat-schedule"):
        path = STATE / leftover
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    STATE.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] | None = None
    try:
        database_url = devstack.pg_start(soak.profile)
        redis_url = devstack.redis_start(soak.profile)
        port, hl_port, hooks_port = free_port(), free_port(), free_port()
        eth_port, arbitrum_port = free_port(), free_port()
        tron_port, solana_port = free_port(), free_port()
        soak.web, soak.hl_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{hl_port}"
        hooks = f"http://127.0.0.1:{hooks_port}"
        env = dict(
            os.environ,
            DATABASE_URL=database_url,
            REDIS_URL=redis_url,
            DJANGO_SETTINGS_MODULE="xbit_admin.settings.local",
            XBIT_PORT=str(port),
            XBIT_STATE_DIR=str(STATE),
            SANDBOX_HL_PORT=str(hl_port),
            SANDBOX_WEBHOOKS_PORT=str(hooks_port),
            SANDBOX_ETH_PORT=str(eth_port),
            SANDBOX_ARBITRUM_PORT=str(arbitrum_port),
            SANDBOX_TRON_PORT=str(tron_port),
            SANDBOX_SOLANA_PORT=str(solana_port),
            HL_API_URL=soak.hl_url,
            ETH_RPC_URL=f"http://127.0.0.1:{eth_port}",
            ARBITRUM_RPC_URL=f"http://127.0.0.1:{arbitrum_port}",
            TRON_RPC_URL=f"http://127.0.0.1:{tron_port}",
            SOLANA_RPC_URL=f"http://127.0.0.1:{solana_port}",
            SLACK_WEBHOOK_URL=f"{hooks}/slack/xbit-alerts",
            PAGERDUTY_EVENTS_URL=f"{hooks}/pagerduty/v2/enqueue",
            ALERTS_CONSOLE_URL=soak.web,
            LOG_JSON="1",  # the web's http.request lines are read back for 5xx and latency
            LOG_REQUESTS="1",
            PYTHONUNBUFFERED="1",
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        os.environ.update(
            {
                k: env[k]
                for k in (
                    "DATABASE_URL",
                    "REDIS_URL",
                    "DJANGO_SETTINGS_MODULE",
                    "HL_API_URL",
                    "ETH_RPC_URL",
                    "ARBITRUM_RPC_URL",
                    "TRON_RPC_URL",
                    "SOLANA_RPC_URL",
                )
            }
        )
        manage = [sys.executable, str(ROOT / "manage.py")]
        progress(f"soak: {args.minutes:g} minutes; logs in {STATE.relative_to(ROOT)}/platform.log")
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], check=True, env=env, cwd=ROOT)
        soak.platform = Platform(env)
        soak.started = time.time()
        soak.platform.start_venues()
        for p in (hl_port, eth_port, arbitrum_port, tron_port, solana_port):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not devstack._port_open(p):
                time.sleep(0.1)
        # as make run: the demo's capital, hot wallets and traders exist before any check looks at them
        seeded = subprocess.run([*manage, "seed_demo"], env=env, cwd=ROOT, capture_output=True, text=True)
        if seeded.returncode != 0:
            raise RuntimeError(f"seed_demo failed:\n{seeded.stdout[-2000:]}\n{seeded.stderr[-2000:]}")
        soak.platform.start_platform()
        import django

        django.setup()
        # ready = /readyz ready and the order gate opened by the platform's start-up (HL resync and the
        # first reconciliation): a gate still closed by the start-up is not a closing during the day
        # (the row itself, written by the platform process after this start: before that process has
        # run, no row reads as "open", and its first write — "starting" — would look like a closing)
        deadline = time.time() + 180
        while time.time() < deadline:
            if _readyz(soak.web) == "ready" and _gate_opened_since(soak.started):
                soak.ready_at = time.time()
                break
            time.sleep(0.5)
        progress(
            "platform ready (and its order gate open) after "
            + (f"{soak.ready_at - soak.started:.1f} s" if soak.ready_at else "— (never, within 180 s)")
        )
        run_day(soak)
        progress("market day over: checking the books …")
        time.sleep(10)  # HL orders sent just before the end settle; the outbox drains
        result = report(soak)
    except KeyboardInterrupt:
        progress("interrupted: stopping every process …")
    finally:
        soak.platform.stop()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        devstack.redis_stop(soak.profile)
        devstack.pg_stop(soak.profile)
    if result is None:
        return 1
    print_report(result)
    path = save(NAME, result)
    progress(f"saved {path.relative_to(ROOT)}")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
