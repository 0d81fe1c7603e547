"""Restart recovery benchmark (spec 04: consistent and serving ≤ 10 s after start): on a seeded
database (N positions, default 100,000, as ``bench/reconciliation.py``), the wall time of
``manage.py platform_ready --once`` in a fresh process — interpreter and Django start, HL resync of
both accounts, a full reconciliation run — until it prints that it serves.

    python -m xbit_admin.devstack exec --test python bench/recovery.py [--positions 100000]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, git_rev, progress, save, setup_django

DB = "xbit_bench_recovery"


def restart(urls: dict[str, str], timeout: float) -> tuple[float, float | None, str]:
    """(wall seconds, the command's own "serving after" seconds, its output)."""
    env = dict(os.environ)
    env.update(
        {"HL_API_URL": urls["hyperliquid"], "TRON_RPC_URL": urls["tron"], "SOLANA_RPC_URL": urls["solana"]}
    )
    t = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "manage.py", "platform_ready", "--once"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    wall = time.perf_counter() - t
    found = re.search(r"serving ([0-9.]+) s", done.stdout)
    return wall, float(found.group(1)) if found else None, (done.stdout + done.stderr)[-2000:]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--positions", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    from sandbox.testing import SandboxProcess

    setup_django(DB)  # points DATABASE_URL (inherited by the subprocess) at the seeded database
    with SandboxProcess(seed=9) as sb:
        from bench.reconciliation import prepare

        seeded = prepare(sb.urls, args.positions)
        from django.db import connections

        connections.close_all()
        samples = []
        for i in range(args.repeat):
            wall, inner, output = restart(sb.urls, args.timeout)
            if inner is None:
                progress(f"restart {i + 1}: not serving: {output}")
                raise SystemExit(1)
            samples.append({"wall_s": round(wall, 3), "checks_s": inner})
            progress(f"restart {i + 1}: serving {wall:.2f} s after process start (checks {inner:.2f} s)")
    path = save(
        "recovery",
        {
            "git": git_rev(),
            "positions": seeded["positions"],
            "restarts": samples,
            "best_wall_s": min(s["wall_s"] for s in samples),
            "goal_s": 10,
        },
    )
    progress(f"saved {path}")


if __name__ == "__main__":
    main()
