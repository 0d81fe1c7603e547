"""The EVM deposit scanner on a real local node (issue #22): anvil (ETH, chain id 1) filled with
``--transfers`` ERC-20 transfers (default 10,000) to ``--addresses`` users' deposit addresses,
``--per-block`` per block (one ``batchTransfer`` transaction each, every transfer its own Transfer log).

Measures
(a) the adapter alone: ``eth_getLogs`` over bounded ranges (+ the native-coin pass over the same blocks)
    → blocks/s and logs/s;
(b) the whole ``deposits_scan``: the same blocks read, 10,000 deposits recorded and credited at 12
    confirmations (ledger postings included) → deposits/s;
(c) N-th confirmation → credit: a deposit reaches its 12th confirmation (``evm_mine``) while a scanner
    runs as beat drives it (``deposits_scan`` every ``--interval`` s, the beat's interval); the time from
    the mined block to the credit committed. Goal ≤ 2 s.

    python -m xbit_admin.devstack exec --test python bench/evm_scanner.py [--transfers 10000]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import git_rev, percentiles, progress, save, setup_django

DB = "xbit_bench_evm"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--transfers", type=int, default=10_000)
    parser.add_argument("--per-block", type=int, default=10)
    parser.add_argument("--addresses", type=int, default=1_000)
    parser.add_argument("--latency-samples", type=int, default=20)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    setup_django(DB)
    from django.conf import settings

    from core.accounts.models import User
    from sandbox.evm.node import TOKENS, AnvilNode
    from wallets.chains import adapter_for
    from wallets.config import chain_config
    from wallets.models import ChainConfig, Deposit
    from wallets.services import deposit_address_get_or_create, deposits_scan

    with AnvilNode(chain_id=1) as node:
        settings.CHAIN_ADAPTERS = {**settings.CHAIN_ADAPTERS, "ETH": "evm"}
        settings.EVM_CHAINS = {
            **settings.EVM_CHAINS,
            "ETH": {"rpc_url": node.url, "chain_id": 1, "tokens": dict(TOKENS), "timeout": 30.0},
        }
        config = chain_config("ETH")
        progress(f"{args.addresses} users and their HD deposit addresses …")
        users = User.objects.bulk_create([User(email=f"bench{i}@evm.bench") for i in range(args.addresses)])
        addresses = [deposit_address_get_or_create(user=u, chain="ETH").address for u in users]
        start_height = node.height() + 1
        deposits_scan(chain="ETH")  # the scanner's starting point: the chain before the transfers

        progress(f"filling the chain: {args.transfers} USDT transfers, {args.per_block} per block …")
        node.mint("USDT", "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266", Decimal(args.transfers) * 100)
        node.automine(False)
        sent = 0
        while sent < args.transfers:
            batch = [
                addresses[(sent + i) % len(addresses)]
                for i in range(min(args.per_block, args.transfers - sent))
            ]
            node.batch_transfer("USDT", batch, "10.5", wait=False)
            node.mine(1)
            sent += len(batch)
        node.automine(True)
        end_height = node.height()
        node.mine(12)
        blocks = end_height - start_height + 1

        adapter = adapter_for("ETH")
        results: dict[str, Any] = {"blocks": blocks, "transfers": args.transfers, "per_block": args.per_block}
        for native in (False, True):
            adapter.scan_native = native  # type: ignore[attr-defined]
            logs = 0
            began = time.perf_counter()
            height = start_height
            while height <= end_height:
                result = adapter.scan(
                    "ETH",
                    from_height=height,
                    to_height=min(end_height, height + config.scan_range_blocks - 1),
                )
                logs += sum(1 for t in result.transfers if t.asset == "USDT")
                height = result.covered_height + 1
            took = time.perf_counter() - began
            label = "adapter_scan_with_native_pass" if native else "adapter_scan_logs_only"
            results[label] = {
                "seconds": round(took, 3),
                "blocks_per_s": round(blocks / took),
                "logs_per_s": round(logs / took),
                "logs": logs,
            }
            progress(f"{label}: {blocks} blocks, {logs} logs in {took:.2f} s")

        began = time.perf_counter()
        report = deposits_scan(chain="ETH")
        took = time.perf_counter() - began
        credited = Deposit.objects.filter(status="CREDITED").count()
        results["deposits_scan_full"] = {
            "seconds": round(took, 3),
            "credited": credited,
            "report_credited": report.credited,
            "blocks_per_s": round(blocks / took),
            "deposits_per_s": round(credited / took),
        }
        progress(f"deposits_scan: {credited} deposits recorded and credited in {took:.2f} s")

        progress(
            f"N-th confirmation → credit, {args.latency_samples} samples, scanner every {args.interval} s …"
        )
        ChainConfig.objects.filter(chain="ETH").update(confirmations=12)
        stop = threading.Event()

        def scanner() -> None:
            from django.db import connection

            while not stop.is_set():
                deposits_scan(chain="ETH")
                stop.wait(args.interval)
            connection.close()

        samples = []
        worker = threading.Thread(target=scanner, daemon=True)
        worker.start()
        for i in range(args.latency_samples):
            user = users[i]
            tx_hash = node.transfer("USDT", addresses[i], "77.7")
            node.mine(10)  # 11 confirmations
            time.sleep(args.interval * 1.5)  # the scanner has seen it pending
            node.mine(1)  # the 12th
            mined = time.perf_counter()
            while not Deposit.objects.filter(user=user, tx_hash=tx_hash, status="CREDITED").exists():
                time.sleep(0.01)
            samples.append(time.perf_counter() - mined)
        stop.set()
        worker.join()
        results["nth_confirmation_to_credit"] = {**percentiles(samples), "scan_interval_s": args.interval}
        progress(f"N-th confirmation → credit: {percentiles(samples)}")
        node.automine(True)
    path = save("evm_scanner", {"git": git_rev(), "anvil": "1.7.1", **results})
    progress(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
