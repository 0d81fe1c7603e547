"""Orders per second through the unmodified hyperliquid-python-sdk against the local HL sandbox.

    .venv/bin/python bench/sandbox_orders.py                      # default scenarios, own sandbox
    .venv/bin/python bench/sandbox_orders.py --procs 2 --batch 20 --seconds 10
    .venv/bin/python bench/sandbox_orders.py --url http://127.0.0.1:3001   # an already running sandbox

Each client process signs with its own funded wallet (nonces are per signer) and sends IOC orders
that cross the book (alternating buy/sell 0.001 BTC, so positions stay small) or, with
``--resting``, GTC bids far below the market. Besides client-side throughput and latency it reports
the sandbox process's CPU time per order, i.e. what the simulator alone could sustain.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _worker(url: str, key: str, seconds: float, batch: int, resting: bool, out: Any) -> None:
    import eth_account
    import requests
    from hyperliquid.exchange import Exchange

    meta = requests.post(url + "/info", json={"type": "meta"}, timeout=10).json()
    spot = requests.post(url + "/info", json={"type": "spotMeta"}, timeout=10).json()
    ex = Exchange(eth_account.Account.from_key(key), url, meta=meta, spot_meta=spot, timeout=10)
    mid = float(ex.info.all_mids()["BTC"])
    order_type: Any = {"limit": {"tif": "Gtc" if resting else "Ioc"}}
    lat: list[float] = []
    orders = errors = nonce_errors = 0
    i = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        reqs: Any = []
        for _ in range(batch):
            buy = resting or i % 2 == 0
            px = round(mid * (0.9 if resting else (1.02 if buy else 0.98)))
            reqs.append(
                {
                    "coin": "BTC",
                    "is_buy": buy,
                    "sz": 0.001,
                    "limit_px": px,
                    "order_type": order_type,
                    "reduce_only": False,
                }
            )
            i += 1
        t0 = time.perf_counter()
        resp = ex.bulk_orders(reqs)
        lat.append(time.perf_counter() - t0)
        if resp.get("status") != "ok":
            errors += batch
            nonce_errors += "nonce" in str(resp.get("response"))
            continue
        for st in resp["response"]["data"]["statuses"]:
            if "error" in st:
                errors += 1
            else:
                orders += 1
    out.put({"orders": orders, "errors": errors, "nonce_errors": nonce_errors, "lat": lat})


def run(
    url: str, procs: int, seconds: float, batch: int, resting: bool, keys: list[str], pid: int | None
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q: Any = ctx.Queue()
    workers = [
        ctx.Process(target=_worker, args=(url, keys[i], seconds, batch, resting, q)) for i in range(procs)
    ]
    cpu0 = _cpu_seconds(pid) if pid else 0.0
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    results = [q.get() for _ in workers]
    for w in workers:
        w.join()
    wall = time.perf_counter() - t0
    cpu = (_cpu_seconds(pid) - cpu0) if pid else 0.0
    orders = sum(r["orders"] for r in results)
    lat = sorted(x for r in results for x in r["lat"])
    # throughput over the measured window (each worker runs `seconds` after its start-up)
    return {
        "procs": procs,
        "batch": batch,
        "mode": "GTC resting" if resting else "IOC crossing",
        "orders": orders,
        "orders_per_s": orders / seconds,
        "requests_per_s": len(lat) / seconds,
        "errors": sum(r["errors"] for r in results),
        "nonce_errors": sum(r["nonce_errors"] for r in results),
        "p50_ms": statistics.median(lat) * 1000 if lat else 0.0,
        "p99_ms": lat[int(len(lat) * 0.99) - 1] * 1000 if lat else 0.0,
        "server_cpu_ms_per_order": cpu * 1000 / orders if orders and pid else None,
        "wall_s": wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="use a running sandbox instead of starting one")
    parser.add_argument("--procs", type=int, help="client processes (default: scenarios 1 and 2)")
    parser.add_argument("--batch", type=int, help="orders per signed request (default: scenarios 1 and 20)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--resting", action="store_true", help="GTC bids far from the market instead of IOC")
    args = parser.parse_args()

    import eth_account
    import requests

    from sandbox.testing import SandboxProcess

    sb = None
    pid: int | None = None
    url = args.url
    if url is None:
        sb = SandboxProcess(seed=1, config={"hyperliquid": {"default_accounts": 0}}).start()
        url = sb.urls["hyperliquid"]
        assert sb.proc is not None
        pid = sb.proc.pid
    try:
        procs_list = [args.procs] if args.procs else [1, 2]
        batch_list = [args.batch] if args.batch else [1, 20]
        n_keys = max(procs_list)
        print(f"sandbox {url}  cpus={os.cpu_count()}  seconds/scenario={args.seconds}")
        header = f"{'procs':>5} {'batch':>5} {'mode':>13} {'orders/s':>9} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'srv cpu ms/order':>16}"
        print(header)
        for batch in batch_list:
            for procs in procs_list:
                keys = []
                for _ in range(n_keys):
                    acct = eth_account.Account.create()
                    requests.post(
                        url + "/control/fund", json={"address": acct.address, "usdc": "100000000"}, timeout=10
                    )
                    keys.append(acct.key.hex())
                r = run(url, procs, args.seconds, batch, args.resting, keys, pid)
                cpu = (
                    f"{r['server_cpu_ms_per_order']:.3f}"
                    if r["server_cpu_ms_per_order"] is not None
                    else "n/a"
                )
                print(
                    f"{r['procs']:>5} {r['batch']:>5} {r['mode']:>13} {r['orders_per_s']:>9.0f} {r['requests_per_s']:>7.0f} "
                    f"{r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} {r['errors']:>6} {cpu:>16}",
                    flush=True,
                )
    finally:
        if sb is not None:
            sb.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
