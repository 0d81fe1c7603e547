"""The order path's write cost with and without the ten indexes migrations ``trading 0009`` and
``wallets 0007`` dropped, alternately, in one run on one database.

The dropped indexes: single-column foreign-key indexes that a composite index already leads with
(order, position, fill and balance-log ``user``; order-event ``order``; ledger-account ``user``), and
the pattern-matching (``varchar_pattern_ops``) copies Django adds to unique text fields (order
``cloid``; ledger account, batch and transfer keys, now unique constraints), which no query uses.

After a warm-up, each round places ``--orders`` internal market orders through the service (``order_place``) with the
schema as migrated ("lean"), then recreates the ten indexes and places as many again ("before"),
dropping them again for the next round. Per mode: latency p50 / p99 of the service call and the
PostgreSQL backend's CPU per order (its ``/proc`` counters: the server runs on this machine).

    python -m xbit_admin.devstack exec --test python bench/lean_indexes.py [--rounds 4] [--orders 1500]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import git_rev, percentiles, progress, save, setup_django
from bench.isolation import claim_redis_db

# the indexes as the migrations before trading 0009 / wallets 0007 made them (names of our own)
BEFORE = [
    "CREATE INDEX bench_order_user ON trading_order (user_id)",
    "CREATE INDEX bench_order_cloid_like ON trading_order (cloid varchar_pattern_ops)",
    "CREATE INDEX bench_orderevent_order ON trading_orderevent (order_id)",
    "CREATE INDEX bench_position_user ON trading_position (user_id)",
    "CREATE INDEX bench_fill_user ON trading_fill (user_id)",
    "CREATE INDEX bench_account_key_like ON ledger_accounts (key varchar_pattern_ops)",
    "CREATE INDEX bench_account_user ON ledger_accounts (user_id)",
    "CREATE INDEX bench_batch_key_like ON ledger_batches (key varchar_pattern_ops)",
    "CREATE INDEX bench_transfer_key_like ON ledger_transfers (idempotency_key varchar_pattern_ops)",
    "CREATE INDEX bench_balance_log_user ON balance_logs (user_id)",
]


def set_schema(before: bool) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for sql in BEFORE:
            cursor.execute(f"DROP INDEX IF EXISTS {sql.split()[2]}")
            if before:
                cursor.execute(sql)


def backend_cpu_s() -> float:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--orders", type=int, default=1500)
    args = parser.parse_args()
    progress("setting up the benchmark database …")
    claim_redis_db()
    os.environ["DJANGO_SETTINGS_MODULE"] = os.environ.get("BENCH_SETTINGS", "xbit_admin.settings.test")
    setup_django(os.environ.get("BENCH_DB", "xbit_bench_indexes"))
    from bench.order_http import seed
    from bench.trading_core import keep_quotes_fresh
    from trading.orders.input import order_input
    from trading.orders.place import order_place

    users = seed()  # the HTTP benchmark's markets and funded traders (a fixed universe: no simulator)
    stop = [False]
    threading.Thread(target=keep_quotes_fresh, args=(stop,), daemon=True).start()
    rows: dict[str, list[dict[str, float]]] = {"lean": [], "before": []}
    n = 0

    def place(count: int) -> list[float]:
        nonlocal n
        samples: list[float] = []
        for _ in range(count):
            user = users[n % len(users)]
            side = "BUY" if (n // len(users)) % 2 == 0 else "SELL"
            n += 1
            inp = order_input(
                asset="BTC", side=side, order_type="MARKET", size="0.01", leverage=10, margin_mode="CROSS"
            )
            t0 = time.perf_counter()
            order = order_place(user=user, inp=inp)
            samples.append(time.perf_counter() - t0)
            assert order.status == "FILLED", order.error_message
        return samples

    progress("warming up (caches, prepared statements, every trader's first position) …")
    place(2 * len(users))
    for round_no in range(args.rounds):
        for mode in ("lean", "before") if round_no % 2 == 0 else ("before", "lean"):  # neither always first
            set_schema(before=mode == "before")
            cpu_before = backend_cpu_s()
            samples = place(args.orders)
            row = percentiles(samples)
            row["postgres_cpu_ms_per_order"] = round((backend_cpu_s() - cpu_before) * 1000 / args.orders, 3)
            rows[mode].append(row)
            progress(
                f"round {round_no + 1} {mode:<6}: p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms  "
                f"PostgreSQL {row['postgres_cpu_ms_per_order']:.3f} ms CPU per order"
            )
    stop[0] = True
    summary: dict[str, Any] = {"git": git_rev(), "orders_per_round": args.orders, "rounds": rows}
    for mode, runs in rows.items():
        summary[mode] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        progress(
            f"=> {mode:<6} median: p50 {summary[mode]['p50_ms']:.2f} ms  p99 {summary[mode]['p99_ms']:.2f} ms  "
            f"PostgreSQL {summary[mode]['postgres_cpu_ms_per_order']:.3f} ms CPU per order"
        )
    save("lean_indexes", summary)


if __name__ == "__main__":
    main()
