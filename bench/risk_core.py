"""Risk-core benchmarks (issue 7): with N open positions (default 100,000)

1. building the detection index from PostgreSQL;
2. mark change → liquidation committed (watcher detection + trigger row + INTERNAL execution and
   commit, in-process, one liquidation per update), p50/p99;
3. a 15 % shock that makes ~10 % of the positions liquidatable: time until all are liquidated, with
   W parallel executors (what W ``critical`` Celery workers do);
4. one funding settlement over every open position.

    python -m xbit_admin.devstack exec --test python bench/risk_core.py [--positions 100000] [--workers 8]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
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

    from routing.services import routing_config_update
    from trading import margin
    from trading.account import margin_table_for_asset
    from trading.marketdata import quote_update
    from trading.markets import markets_sync
    from trading.models import Position
    from wallets.ledger import AccountRef, TransferSpec, ledger_post
    from wallets.models import AccountKind, TransferKind
    from xbit_admin.accounts.models import User

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


def bench_latency(watcher: Any, samples: int) -> dict[str, Any]:
    """Step the BTC mark down through the longs' liquidation prices, one position per update."""
    from trading.marketdata import Quote
    from trading.models import Position

    prices = list(
        Position.objects.filter(
            status="OPEN",
            asset="ETH",
            margin_mode="ISOLATED",
            direction="LONG",
            liquidation_price__isnull=False,
        )
        .order_by("-liquidation_price")
        .values_list("liquidation_price", flat=True)[: samples + 1]
    )
    latencies = []
    for i in range(min(samples, len(prices) - 1)):
        # a mark between this price and the next: exactly one more position crosses
        mark = ((prices[i] + prices[i + 1]) / 2).quantize(D("0.01"))
        if mark > prices[i]:
            continue
        started = time.perf_counter()
        watcher.on_mark("ETH", Quote("ETH", mark=mark))
        watcher.process()
        latencies.append(time.perf_counter() - started)
    return percentiles(latencies)


def bench_shock(watcher: Any, workers: int) -> dict[str, Any]:
    from django.db import close_old_connections

    from risk.liquidation import liquidations_drain
    from risk.models import LiquidationTrigger
    from trading.marketdata import Quote

    watcher.execute_inline = False
    before = LiquidationTrigger.objects.filter(status="COMPLETED").count()
    started = time.perf_counter()
    for asset, mark in ASSETS.items():
        watcher.on_mark(asset, Quote(asset, mark=(mark * D("0.85")).quantize(D("0.01"))))
    watcher.process()
    detected_s = time.perf_counter() - started
    triggered = LiquidationTrigger.objects.filter(status="PENDING").count()

    def run() -> None:
        try:
            while liquidations_drain(worker=f"bench-{threading.get_ident()}", budget_s=60):
                pass
        finally:
            close_old_connections()

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--positions", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    from sandbox.testing import SandboxProcess

    setup_django("xbit_bench_risk")
    with SandboxProcess(seed=7) as sb:
        request = urllib.request.Request(  # noqa: S310 - loopback sandbox
            sb.urls["hyperliquid"] + "/info",
            data=b'{"type":"meta"}',
            headers={"Content-Type": "application/json"},
        )
        meta = json.loads(urllib.request.urlopen(request, timeout=10).read())  # noqa: S310
    from wallets.ledger import ledger_invariant_violations
    from xbit_admin.defaults import ensure_all

    ensure_all()
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

    latency = bench_latency(watcher, args.samples)
    progress(
        f"mark change → liquidation committed: p50 {latency['p50_ms']:.2f} ms, p99 {latency['p99_ms']:.2f} ms (n={latency['n']})"
    )
    funding = bench_funding()
    progress(
        f"funding for {funding['positions']} positions: {funding['seconds']:.2f} s ({funding['per_second']}/s)"
    )
    watcher.reload()  # funding moved margins: the new versions
    shock = bench_shock(watcher, args.workers)
    progress(
        f"15% shock: {shock['triggers']} triggers, all liquidated in {shock['all_liquidated_s']:.2f} s "
        f"with {shock['workers']} executors ({shock['per_second']}/s); detection+record {shock['detect_and_record_s']:.2f} s"
    )
    problems = ledger_invariant_violations()
    progress(f"ledger invariants: {'OK' if not problems else problems[:3]}")
    path = save(
        "risk_core",
        {
            "git": git_rev(),
            "positions": seeded["positions"],
            "index_build_s": round(load_s, 3),
            "mark_to_liquidation_committed": latency,
            "shock_15pct": shock,
            "funding": funding,
            "ledger_invariants_ok": not problems,
            "goals": {"p99_ms": 100, "shock_s": 10},
        },
    )
    progress(f"saved {path}")


if __name__ == "__main__":
    main()
