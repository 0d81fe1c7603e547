"""Markout benchmark: can the markout loop keep up with 100,000 fills a day in real time?

Two phases, on a database and Redis database of its own:

1. **Real time** (``--seconds``, ``--rate`` fills/s; default 11.6/s = 100,000 fills a day × 10, a peak
   hour's pace): this process plays the fill path (fill rows plus their ``trading.fill`` events on the
   stream, as the relay publishes them) and the feed (a mid per asset four times a second); a real
   ``manage.py run_markouts`` process does the rest. A poller records when each fill's markout row
   and each horizon's value first appear: lag = that moment − (fill time + horizon). Polling every
   0.2 s adds up to 0.2 s to each figure. Horizons longer than the run are not measured here.
2. **Backlog** (``--backlog``, default 100,000 = a whole day at once): the day's fill events wait on
   the stream and their horizons are all due; the loop's code (intake, then the due horizons in
   batches) processes them in this process. Fills/s here is the headroom over the real-time rate.

    python -m xbit_admin.devstack exec --test python bench/markouts.py [--seconds 90] [--rate 11.6]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import git_rev, percentiles, progress, save, setup_django, stop_process

D = Decimal
ASSETS = {"BTC": D("80000"), "ETH": D("3000"), "SOL": D("180")}
DAY = 100_000


def _isolated_redis() -> tuple[str, int, int]:
    """A Redis database of our own (the devstack's claim protocol)."""
    from xbit_admin.devstack import _claim_redis_db  # the dev tooling's own claim (tests use it too)

    base = os.environ["REDIS_URL"].rpartition("/")[0]
    run_id = os.getpid()
    index = _claim_redis_db(base, run_id)
    os.environ["REDIS_URL"] = f"{base}/{index}"
    os.environ.pop("CELERY_BROKER_URL", None)
    return base, index, run_id


class World:
    """Users with one position per asset (fills need one) and a random walk of mids."""

    def __init__(self, n_users: int) -> None:
        from django.contrib.auth.hashers import make_password
        from django.utils import timezone

        from core.accounts.models import User
        from trading.models import Market, Position

        self.rng = random.Random(11)
        password = make_password("bench-password-123")
        users = User.objects.bulk_create(
            [User(email=f"mo-bench-{i}@xbit.test", password=password) for i in range(n_users)]
        )
        now = timezone.now()
        for i, asset in enumerate(ASSETS):
            Market.objects.get_or_create(
                asset=asset,
                defaults={"hl_index": i, "sz_decimals": 4, "max_leverage": 50, "margin_table_id": 50},
            )
        positions = Position.objects.bulk_create(
            [
                Position(
                    user=u,
                    asset=a,
                    source="INTERNAL",
                    margin_mode="CROSS",
                    direction="LONG",
                    size=D(1),
                    entry_price=m,
                    leverage=5,
                    opened_at=now,
                    updated_at=now,
                )
                for u in users
                for a, m in ASSETS.items()
            ]
        )
        self.positions = [(p.pk, p.user_id, p.asset) for p in positions]
        self.mids = dict(ASSETS)

    def step_mids(self) -> dict[str, D]:
        for asset, mid in self.mids.items():
            self.mids[asset] = (mid * D(str(1 + self.rng.gauss(0, 0.0002)))).quantize(D("0.01"))
        return self.mids

    def fills(self, n: int, at: Any) -> list[Any]:
        from trading.models import Fill

        rows = []
        for _ in range(n):
            pid, uid, asset = self.rng.choice(self.positions)
            price = self.mids[asset] + D(self.rng.choice([-1, 1]))
            size = (D(str(self.rng.uniform(50, 5000))) / price).quantize(D("0.0001")) or D("0.0001")
            rows.append(
                Fill(
                    user_id=uid,
                    position_id=pid,
                    asset=asset,
                    source="INTERNAL",
                    side=self.rng.choice(["BUY", "SELL"]),
                    size=size,
                    price=price,
                    liquidity="TAKER",
                    fee=D(0),
                    fee_rate=D(0),
                    created_at=at,
                )
            )
        return Fill.objects.bulk_create(rows)


def publish(fills: list[Any]) -> None:
    """What the relay does with the fills' outbox rows: one ``trading.fill`` event per fill."""
    from core.events.services import STREAM, redis_client

    pipe = redis_client().pipeline(transaction=False)
    for f in fills:
        payload = {"fill_ids": [f.pk], "user_id": f.user_id, "asset": f.asset, "source": f.source}
        pipe.xadd(
            STREAM,
            {
                "event_id": str(uuid.uuid4()),
                "topic": "trading.fill",
                "aggregate": "",
                "payload": json.dumps(payload),
            },
        )
    pipe.execute()


def realtime(world: World, seconds: float, rate: float) -> dict[str, Any]:
    from django.utils import timezone

    from risk.client_risk.midhistory import mid_newest
    from risk.client_risk.models import HORIZONS, FillMarkout
    from trading.marketdata import quote_update_many

    env = dict(os.environ, XBIT_PROCESS="markouts", DJANGO_DEBUG="0")
    loop = subprocess.Popen(
        [sys.executable, "manage.py", "run_markouts"], cwd=Path(__file__).resolve().parent.parent, env=env
    )
    started = time.time()
    first_seen: dict[tuple[int, int], float] = {}
    due: dict[int, float] = {}
    made = 0.0
    next_mid = next_poll = started
    try:
        # the loop's start-up (Django, the consumer group): measured from its first mid sample on
        deadline = time.time() + 60
        while mid_newest("BTC") is None:
            if loop.poll() is not None or time.time() > deadline:
                raise RuntimeError("run_markouts did not start")
            quote_update_many({a: {"mid": m} for a, m in world.step_mids().items()}, notify=False)
            time.sleep(0.25)
        time.sleep(1.0)  # and its first consumer-group read
        started = time.time()
        next_mid = next_poll = started
        while (now := time.time()) - started < seconds:
            if now >= next_mid:
                quote_update_many({a: {"mid": m} for a, m in world.step_mids().items()}, notify=False)
                next_mid += 0.25
            target = int((now - started) * rate) - int(made)
            if target > 0:
                fills = world.fills(target, timezone.now())
                publish(fills)
                made += target
                for f in fills:
                    due[f.pk] = f.created_at.timestamp()
            if now >= next_poll:
                _poll(first_seen, due, now)
                next_poll += 0.2
            time.sleep(0.02)
        # let the horizons that fit in the run finish (the feed goes on: no new fills)
        tail = time.time() + max(h for h in HORIZONS if h < seconds) + 3
        while (now := time.time()) < tail:
            if now >= next_mid:
                quote_update_many({a: {"mid": m} for a, m in world.step_mids().items()}, notify=False)
                next_mid += 0.25
            if now >= next_poll:
                _poll(first_seen, due, now)
                next_poll += 0.2
            time.sleep(0.02)
    finally:
        stop_process(loop)
    lags: dict[str, list[float]] = {"intake": []}
    for (fill_id, horizon), seen in first_seen.items():
        t0 = due[fill_id]
        key = "intake" if horizon == 0 else f"{horizon}s"
        lags.setdefault(key, []).append(max(0.0, seen - (t0 + horizon)))
    measured = {h for h in HORIZONS if h < seconds}
    out = {
        "fills": int(made),
        "rate_per_s": rate,
        "times_100k_per_day": round(rate * 86400 / DAY, 1),
        "lag_s": {k: _pct_s(v) for k, v in lags.items() if v},
        "missing": FillMarkout.objects.filter(missing__gt=0).count(),
        "horizons_measured": sorted(measured),
    }
    return out


def _pct_s(samples: list[float]) -> dict[str, float]:
    p = percentiles(samples)
    return {
        "n": p["n"],
        "p50_s": round(p["p50_ms"] / 1000, 3),
        "p99_s": round(p["p99_ms"] / 1000, 3),
        "max_s": round(p["max_ms"] / 1000, 3),
    }


def _poll(first_seen: dict[tuple[int, int], float], due: dict[int, float], now: float) -> None:
    from risk.client_risk.models import HORIZONS, FillMarkout

    open_ids = [fid for fid in due if (fid, HORIZONS[-1]) not in first_seen]
    cols = [f"mo_{h}_bp" for h in HORIZONS]
    for start in range(0, len(open_ids), 5000):
        for fid, *values in FillMarkout.objects.filter(
            fill_id__in=open_ids[start : start + 5000]
        ).values_list("fill_id", *cols):
            first_seen.setdefault((fid, 0), now)
            for h, v in zip(HORIZONS, values, strict=True):
                if v is not None:
                    first_seen.setdefault((fid, h), now)


def backlog(world: World, n: int) -> dict[str, Any]:
    """A day's fills at once: all events on the stream, all horizons due."""
    from datetime import timedelta

    from django.utils import timezone

    from risk.client_risk.markouts import markouts_consume, markouts_process_due
    from risk.client_risk.midhistory import mid_record_many
    from risk.client_risk.models import FillMarkout

    span = 3600.0  # the fills' times spread over the last hour (inside the mid history kept)
    end = time.time() - 400
    samples: dict[str, list[tuple[float, D]]] = {a: [] for a in ASSETS}
    t = end - span - 10
    while t < end + 400:
        for a, m in world.step_mids().items():
            samples[a].append((t, m))
        t += 0.5
    mid_record_many(samples)
    made = 0
    while made < n:
        k = min(5000, n - made)
        at = timezone.now() - timedelta(seconds=400 + span * (1 - made / n))
        publish(world.fills(k, at))
        made += k
    progress(f"backlog: {n} fill events on the stream")
    t0 = time.perf_counter()
    taken = 0
    while True:
        got = markouts_consume(consumer_name="bench", block_ms=1, count=1000)
        taken += got
        if got == 0:
            break
    intake_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    rows = 0
    while (done := markouts_process_due(limit=2000)) > 0:
        rows += done
    horizons_s = time.perf_counter() - t1
    done = FillMarkout.objects.filter(next_due_at__isnull=True).count()
    return {
        "fills": n,
        "intake_s": round(intake_s, 2),
        "intake_fills_per_s": round(taken / intake_s, 1) if intake_s else None,
        "horizons_s": round(horizons_s, 2),
        "horizon_rows_per_s": round(rows / horizons_s, 1) if horizons_s else None,
        "day_processed_in_s": round(intake_s + horizons_s, 1),
        "rows_complete": done,
    }


def routing_with_groups(n_clients: int = 10_000, n: int = 200_000) -> dict[str, Any]:
    """The routing decision as the order path now makes it: the client's group from the process cache
    (``n_clients`` assigned, mode LIVE) and ``decide`` with it — ≤ 0.1 ms p99 is the target."""
    from routing.client_groups import CLIENT_GROUPS_CACHE, client_routing
    from routing.decision import ClientGroup, decide
    from routing.models import ClientGroupAssignment, ClientGroupConfig
    from routing.selectors import asset_routing

    ClientGroupConfig.objects.update_or_create(key="default", defaults={"mode": "LIVE"})
    ClientGroupAssignment.objects.bulk_create(
        [
            ClientGroupAssignment(user_id=i, group=("A", "B")[i % 2], reason="bench")
            for i in range(1, n_clients + 1)
        ]
    )
    CLIENT_GROUPS_CACHE.invalidate_local()
    asset_routing("BTC")
    client_routing(1)  # warm the caches
    samples = []
    groups = dict.fromkeys(ClientGroup, 0)
    for i in range(n):
        notional = D(1000 + (i % 20000))
        uid = 1 + i % (2 * n_clients)  # half the users have no group row (HYBRID)
        t0 = time.perf_counter()
        client = client_routing(uid)
        decision = decide(
            notional=notional,
            config=asset_routing("BTC"),
            client_group=client.group,
            shadow_group=client.shadow_group,
        )
        samples.append(time.perf_counter() - t0)
        groups[decision.client_group] += 1
    return {**percentiles(samples), "by_group": {g.value: c for g, c in groups.items()}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--rate", type=float, default=DAY * 10 / 86400)
    parser.add_argument("--backlog", type=int, default=DAY)
    parser.add_argument("--users", type=int, default=500)
    args = parser.parse_args()
    os.environ["DJANGO_DEBUG"] = "0"
    redis_base, redis_db, run_id = _isolated_redis()
    try:
        setup_django("xbit_bench_markouts")
        world = World(args.users)
        progress(f"real time: {args.rate:.1f} fills/s for {args.seconds:.0f} s")
        rt = realtime(world, args.seconds, args.rate)
        progress(json.dumps(rt))
        from risk.client_risk.models import FillMarkout
        from trading.models import Fill

        FillMarkout.objects.all().delete()
        Fill.objects.all().delete()
        bl = backlog(world, args.backlog) if args.backlog else {}
        progress(json.dumps(bl))
        routing = routing_with_groups()
        progress(f"routing decision with the client's group: {json.dumps(routing)}")
        worst = max(v["p99_s"] for v in rt["lag_s"].values())
        print(
            f"markouts: lag p99 {worst:.2f} s behind the fill at {rt['rate_per_s']:.1f} fills/s "
            f"({rt['times_100k_per_day']}× 100,000/day); a whole day's backlog in {bl.get('day_processed_in_s')} s"
        )
        print(f"routing decision with the client's group: p99 {routing['p99_ms']:.4f} ms (target 0.1 ms)")
        save(
            "markouts",
            {
                "git": git_rev(),
                "realtime": rt,
                "backlog": bl,
                "routing_with_groups": routing,
                "target_lag_p99_s": 5.0,
            },
        )
    finally:
        from xbit_admin.devstack import _release_redis_db

        _release_redis_db(redis_base, redis_db, run_id)


if __name__ == "__main__":
    main()
