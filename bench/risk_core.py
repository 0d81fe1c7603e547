"""Risk-core benchmarks (issues 7 and 10): with N open positions (default 100,000)

1. building the detection index from PostgreSQL;
2. mark change → liquidation committed, one liquidation per update, p50/p99, two ways:
   * in process: the watcher detects, records the trigger and executes it itself (``execute_inline``);
   * through a real Celery worker (``critical`` queue, solo pool): the watcher records and wakes the
     queue as in production; measured until the trigger is seen COMPLETED (committed);
3. a 15 % shock that makes ~10 % of the positions liquidatable: time until all are liquidated, with
   W executor PROCESSES (what W ``critical`` Celery worker processes do; each drains batches of
   ``liquidation_batch_size``);
4. one funding settlement over every open position.

Runs with production-like settings (DEBUG off: no query log) on its own database and its own Redis
database (claimed like a test run's, flushed at the end).

    python -m xbit_admin.devstack exec --test python bench/risk_core.py [--positions 100000] [--workers 4]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import git_rev, percentiles, progress, save, setup_django

D = Decimal
ASSETS = {"BTC": D("80000"), "ETH": D("3000"), "SOL": D("180")}


def seed(meta: dict[str, Any], n_positions: int) -> dict[str, Any]:
    """Users with one isolated position per asset plus a cross BTC position; ~10 % at 10x (they
    liquidate on a 15 % shock), the rest at 2–4x. Rows are bulk-inserted with their ledger balances
    (the order path's cost is not what this benchmark measures)."""
    from django.contrib.auth.hashers import make_password
    from django.db import transaction
    from django.utils import timezone

    from core.accounts.models import User
    from routing.services import routing_config_update
    from trading import margin
    from trading.account import margin_table_for_asset
    from trading.marketdata import quote_update
    from trading.markets import markets_sync
    from trading.models import Position
    from wallets.ledger import AccountRef, TransferSpec, ledger_post
    from wallets.models import AccountKind, TransferKind

    markets_sync(meta=meta)
    routing_config_update(
        asset="*", changes={"global_internalization_enabled": True}, acting_user=None, reason="bench"
    )
    for asset, mark in ASSETS.items():
        quote_update(
            asset, mark=mark, oracle=mark, mid=mark, bid=mark - 1, ask=mark + 1, funding_rate=D("0.0000125")
        )
    rng = random.Random(7)
    per_user = len(ASSETS) + 1
    n_users = max(1, n_positions // per_user)
    password = make_password("bench-password-123")
    users = User.objects.bulk_create(
        [User(email=f"risk-bench-{i}@xbit.test", password=password) for i in range(n_users)], batch_size=5000
    )
    now = timezone.now()
    rows: list[Position] = []
    for user in users:
        for asset, mark in ASSETS.items():
            leverage = 10 if rng.random() < 0.1 else rng.choice([2, 3, 4])
            entry = (mark * D(str(1 + rng.uniform(-0.02, 0.02)))).quantize(D("0.01"))
            size = (D(str(rng.uniform(500, 5000))) / entry).quantize(D("0.0001"))
            im = (size * entry / leverage).quantize(D("0.000001"))
            side = margin.Side.LONG if rng.random() < 0.7 else margin.Side.SHORT
            liq = margin.isolated_liquidation_price(side, entry, size, im, margin_table_for_asset(asset))
            rows.append(
                Position(
                    user=user,
                    asset=asset,
                    source="INTERNAL",
                    margin_mode="ISOLATED",
                    direction="LONG" if side == margin.Side.LONG else "SHORT",
                    size=size,
                    entry_price=entry,
                    leverage=leverage,
                    isolated_margin=im,
                    liquidation_price=liq.quantize(D("0.00000001")) if liq else None,
                    opened_at=now,
                    updated_at=now,
                )
            )
        rows.append(
            Position(
                user=user,
                asset="BTC",
                source="INTERNAL",
                margin_mode="CROSS",
                direction="LONG",
                size=D("0.01"),
                entry_price=ASSETS["BTC"],
                leverage=5,
                opened_at=now,
                updated_at=now,
            )
        )
    with transaction.atomic():
        Position.objects.bulk_create(rows, batch_size=5000)
    positions = list(
        Position.objects.filter(status="OPEN").values_list("id", "user_id", "margin_mode", "isolated_margin")
    )
    transfers = []
    for pid, uid, mode, im in positions:
        if mode == "ISOLATED":
            transfers.append(
                TransferSpec(
                    AccountRef.platform(AccountKind.DEPOSIT_CLEARING),
                    AccountRef.user(uid, AccountKind.ISOLATED_MARGIN, sub=f"position:{pid}"),
                    im,
                    TransferKind.MARGIN_FREEZE,
                    "bench",
                    pid,
                )
            )
        else:
            transfers.append(
                TransferSpec(
                    AccountRef.platform(AccountKind.DEPOSIT_CLEARING),
                    AccountRef.user(uid, AccountKind.CASH),
                    D("5000"),
                    TransferKind.DEPOSIT,
                    "bench",
                    pid,
                )
            )
    for i in range(0, len(transfers), 5000):
        ledger_post(key=f"bench-seed:{i}", transfers=transfers[i : i + 5000])
    return {"users": n_users, "positions": len(positions)}


def _crossing_marks(samples: int, asset: str = "ETH") -> list[tuple[int, Decimal]]:
    """(position id, mark) pairs stepping the mark down through the longs' liquidation prices: each
    mark lies between one position's price and the next, so exactly one more position crosses."""
    from trading.models import Position

    rows = list(
        Position.objects.filter(
            status="OPEN",
            asset=asset,
            margin_mode="ISOLATED",
            direction="LONG",
            liquidation_price__isnull=False,
        )
        .order_by("-liquidation_price")
        .values_list("id", "liquidation_price")[: samples + 1]
    )
    out = []
    for (pid, price), (_next_id, next_price) in zip(rows, rows[1:], strict=False):
        mark = ((price + next_price) / 2).quantize(D("0.01"))
        if mark <= price:
            out.append((pid, mark))
    return out


def bench_latency(watcher: Any, steps: list[tuple[int, Decimal]]) -> dict[str, Any]:
    """In process: the watcher records the trigger and executes it (``execute_inline``)."""
    from trading.marketdata import Quote

    watcher.execute_inline = True
    latencies = []
    for _pid, mark in steps:
        started = time.perf_counter()
        watcher.on_mark("ETH", Quote("ETH", mark=mark))
        watcher.process()
        latencies.append(time.perf_counter() - started)
    return percentiles(latencies)


def bench_latency_celery(watcher: Any, steps: list[tuple[int, Decimal]]) -> dict[str, Any]:
    """Through a real Celery worker on the ``critical`` queue: the watcher records the trigger and
    wakes the queue on commit (production's path); measured until the trigger reads COMPLETED."""
    from django.db import connection

    from trading.marketdata import Quote

    watcher.execute_inline = False
    worker = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "xbit_admin",
            "worker",
            "-Q",
            "critical",
            "--pool",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "WARNING",
        ],
        env={
            **os.environ,
            "XBIT_PROCESS": "worker",
            "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        },
        cwd=Path(__file__).resolve().parent.parent,
    )
    latencies = []
    try:
        time.sleep(3)  # the worker connects to the broker

        def completed(pid: int, deadline: float) -> bool:
            with connection.cursor() as cursor:
                while time.perf_counter() < deadline:
                    cursor.execute(
                        "SELECT 1 FROM risk_liquidationtrigger WHERE position_id = %s AND status = 'COMPLETED'",
                        [pid],
                    )
                    if cursor.fetchone():
                        return True
                    time.sleep(0.0005)
            return False

        for i, (pid, mark) in enumerate(steps):
            started = time.perf_counter()
            watcher.on_mark("ETH", Quote("ETH", mark=mark))
            watcher.process()
            if not completed(pid, started + 30):
                raise RuntimeError(f"position {pid} was not liquidated within 30 s")
            if i >= 5:  # the first tasks warm the worker up (imports, caches)
                latencies.append(time.perf_counter() - started)
    finally:
        worker.terminate()
        worker.wait(30)
    return percentiles(latencies)


def _drain_forever(n: int) -> None:
    """One executor process (forked): drain until nothing is due."""
    from django.db import connection

    from risk.liquidation_background import background_flush
    from risk.liquidation_execute import liquidations_drain

    try:
        while liquidations_drain(worker=f"bench-{os.getpid()}", budget_s=60):
            pass
        background_flush()  # the console pushes of the last batch, before this process exits
    finally:
        connection.close()


def bench_shock(watcher: Any, workers: int) -> dict[str, Any]:
    from django.db import connections

    from risk.config import risk_config
    from risk.models import LiquidationTrigger
    from trading.marketdata import Quote

    watcher.execute_inline = False
    before = LiquidationTrigger.objects.filter(status="COMPLETED").count()
    connections.close_all()  # the executors are forked: none may inherit this process's connection
    ctx = multiprocessing.get_context("fork")
    started = time.perf_counter()
    for asset, mark in ASSETS.items():
        watcher.on_mark(asset, Quote(asset, mark=(mark * D("0.85")).quantize(D("0.01"))))
    watcher.process()
    detected_s = time.perf_counter() - started
    triggered = LiquidationTrigger.objects.filter(status="PENDING").count()  # the workers are not started
    connections.close_all()
    procs = [ctx.Process(target=_drain_forever, args=(n,)) for n in range(workers)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    total_s = time.perf_counter() - started
    completed = LiquidationTrigger.objects.filter(status="COMPLETED").count() - before
    left = LiquidationTrigger.objects.filter(status__in=LiquidationTrigger.OPEN).count()
    return {
        "triggers": triggered,
        "completed": completed,
        "left_open": left,
        "detect_and_record_s": round(detected_s, 3),
        "all_liquidated_s": round(total_s, 3),
        "workers": workers,
        "executor": "processes",
        "batch_size": getattr(risk_config(), "liquidation_batch_size", 1),  # 1: before issue 10
        "per_second": round(completed / total_s, 1) if total_s else None,
    }


def bench_funding() -> dict[str, Any]:
    from django.utils import timezone

    from risk.funding import funding_run
    from trading.models import Position

    open_positions = Position.objects.filter(status="OPEN").count()
    started = time.perf_counter()
    run = funding_run(funding_time=timezone.now(), chunk=1000)
    elapsed = time.perf_counter() - started
    return {
        "positions": open_positions,
        "settled": run.positions_settled,
        "seconds": round(elapsed, 3),
        "per_second": round(run.positions_settled / elapsed, 1) if elapsed else None,
    }


def _isolated_redis() -> tuple[str, int, int]:
    """A Redis database of our own (the devstack's claim protocol): broker, caches and channels of
    this run stay apart from every other run's."""
    from xbit_admin.devstack import _claim_redis_db  # the dev tooling's own claim (tests use it too)

    base = os.environ["REDIS_URL"].rpartition("/")[0]
    run_id = os.getpid()
    index = _claim_redis_db(base, run_id)
    os.environ["REDIS_URL"] = f"{base}/{index}"
    os.environ.pop("CELERY_BROKER_URL", None)
    return base, index, run_id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--positions", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--samples", type=int, default=300, help="in-process latency samples")
    parser.add_argument("--celery-samples", type=int, default=100, help="latency samples via a Celery worker")
    parser.add_argument("--batch-size", type=int, default=None, help="liquidation_batch_size for the run")
    parser.add_argument("--no-funding", action="store_true", help="skip the funding run (iterating)")
    parser.add_argument("--debug", action="store_true", help="keep DEBUG (query log) on, as before issue 10")
    args = parser.parse_args()
    if not args.debug:
        os.environ["DJANGO_DEBUG"] = "0"
    redis_base, redis_db, run_id = _isolated_redis()
    try:
        run(args)
    finally:
        from xbit_admin.devstack import _release_redis_db

        _release_redis_db(redis_base, redis_db, run_id)


def run(args: argparse.Namespace) -> None:
    from sandbox.testing import SandboxProcess

    setup_django("xbit_bench_risk")
    with SandboxProcess(seed=7) as sb:
        request = urllib.request.Request(  # noqa: S310 - loopback sandbox
            sb.urls["hyperliquid"] + "/info",
            data=b'{"type":"meta"}',
            headers={"Content-Type": "application/json"},
        )
        meta = json.loads(urllib.request.urlopen(request, timeout=10).read())  # noqa: S310
    from django.conf import settings

    from core.defaults import ensure_all
    from risk.config import risk_config, risk_config_update
    from wallets.ledger import ledger_invariant_violations

    ensure_all()
    if args.batch_size is not None:
        risk_config_update(
            changes={"liquidation_batch_size": args.batch_size}, acting_user=None, reason="bench"
        )
    progress(f"seeding {args.positions} positions …")
    t = time.perf_counter()
    seeded = seed(meta, args.positions)
    progress(f"seeded {seeded} in {time.perf_counter() - t:.1f} s")

    from risk.watcher import LiquidationWatcher

    watcher = LiquidationWatcher(execute_inline=True, price_jump=False)
    t = time.perf_counter()
    watcher.reload()
    for asset, mark in ASSETS.items():
        watcher.index.marks[asset] = mark
    load_s = time.perf_counter() - t
    progress(f"index built from PostgreSQL: {len(watcher.index)} positions in {load_s:.2f} s")

    steps = _crossing_marks(args.samples + args.celery_samples + 5)
    latency = None
    if args.samples:
        latency = bench_latency(watcher, steps[: args.samples])
        progress(
            f"mark change → liquidation committed, in process: p50 {latency['p50_ms']:.2f} ms, "
            f"p99 {latency['p99_ms']:.2f} ms (n={latency['n']})"
        )
    via_celery = None
    if args.celery_samples:
        via_celery = bench_latency_celery(watcher, steps[args.samples :])
        progress(
            f"mark change → liquidation committed, via a Celery worker: p50 {via_celery['p50_ms']:.2f} ms, "
            f"p99 {via_celery['p99_ms']:.2f} ms (n={via_celery['n']})"
        )
    funding = None
    if not args.no_funding:
        funding = bench_funding()
        progress(
            f"funding for {funding['positions']} positions: {funding['seconds']:.2f} s ({funding['per_second']}/s)"
        )
        watcher.reload()  # funding moved margins: the new versions
    shock = bench_shock(watcher, args.workers)
    progress(
        f"15% shock: {shock['triggers']} triggers, all liquidated in {shock['all_liquidated_s']:.2f} s "
        f"with {shock['workers']} executor processes, batches of {shock['batch_size']} ({shock['per_second']}/s); "
        f"detection+record {shock['detect_and_record_s']:.2f} s"
    )
    problems = ledger_invariant_violations()
    progress(f"ledger invariants: {'OK' if not problems else problems[:3]}")
    path = save(
        "risk_core",
        {
            "git": git_rev(),
            "settings": {
                "debug": settings.DEBUG,
                "liquidation_batch_size": getattr(risk_config(), "liquidation_batch_size", 1),
            },
            "positions": seeded["positions"],
            "index_build_s": round(load_s, 3),
            "mark_to_liquidation_committed": latency,
            "mark_to_liquidation_committed_via_celery": via_celery,
            "shock_15pct": shock,
            "funding": funding,
            "ledger_invariants_ok": not problems,
            "goals": {"p99_ms": 100, "shock_s": 10},
        },
    )
    progress(f"saved {path}")
    from risk.liquidation_background import background_flush

    background_flush()


if __name__ == "__main__":
    main()
