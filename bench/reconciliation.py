"""Reconciliation engine benchmark (issue 8): one full ``reconciliation_run`` (every dimension, HL and
the chains on the local sandboxes) with N open positions (default 100,000, seeded like
``bench/risk_core.py``), plus each dimension on its own.

    python -m xbit_admin.devstack exec --test python bench/reconciliation.py [--positions 100000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import git_rev, progress, save, setup_django


def sandbox_meta(url: str) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - loopback sandbox
        url + "/info", data=b'{"type":"meta"}', headers={"Content-Type": "application/json"}
    )
    return json.loads(urllib.request.urlopen(request, timeout=10).read())  # type: ignore[no-any-return]  # noqa: S310


def prepare(urls: dict[str, str], positions: int) -> dict[str, Any]:
    """Seeded platform wired to the sandboxes: positions + ledger, exposure rebuilt, HL accounts."""
    from django.conf import settings

    from bench.risk_core import seed
    from core.defaults import ensure_all
    from risk.exposure import exposure_recompute
    from trading.hl_accounts import hl_sandbox_accounts_setup

    settings.HL_API_URL = urls["hyperliquid"]
    settings.TRON_RPC_URL = urls["tron"]
    settings.SOLANA_RPC_URL = urls["solana"]
    ensure_all()
    t = time.perf_counter()
    seeded = seed(sandbox_meta(urls["hyperliquid"]), positions)
    exposure_recompute(apply=True)  # the seed bypasses the exposure consumer
    hl_sandbox_accounts_setup(base_url=urls["hyperliquid"])
    progress(f"seeded {seeded} in {time.perf_counter() - t:.1f} s")
    return seeded


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--positions", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from sandbox.testing import SandboxProcess

    setup_django("xbit_bench_reconciliation")
    with SandboxProcess(seed=8) as sb:
        seeded = prepare(sb.urls, args.positions)
        from risk.reconciliation import DIMENSIONS, reconciliation_run

        runs = []
        rows: list[Any] = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            rows = reconciliation_run()
            runs.append(time.perf_counter() - t)
        progress(f"full run ({len(rows)} rows): {', '.join(f'{s:.3f}' for s in runs)} s")
        per_dimension = {}
        for name in DIMENSIONS:
            t = time.perf_counter()
            found = reconciliation_run(dimensions=[name])
            per_dimension[name] = {
                "seconds": round(time.perf_counter() - t, 4),
                "statuses": sorted({str(r.status) for r in found}),
            }
            progress(f"  {name}: {per_dimension[name]['seconds']:.3f} s {per_dimension[name]['statuses']}")
    path = save(
        "reconciliation",
        {
            "git": git_rev(),
            "positions": seeded["positions"],
            "users": seeded["users"],
            "full_run_s": [round(s, 4) for s in runs],
            "best_full_run_s": round(min(runs), 4),
            "per_dimension": per_dimension,
            "goal": "every 5 min (spec 04)",
        },
    )
    progress(f"saved {path}")


if __name__ == "__main__":
    main()
