"""API fuzzing (issue 10): schemathesis against the OpenAPI schema (``/api/schema/``) of a live web
process, authenticated as a funded trader with a JWT; every check (schemathesis's default: ``--checks all``
would override the per-operation exceptions of the config file) in every phase, stateful included (issue
#17), a bounded number of examples per operation, a bounded wall time. The web process runs with the
general rate limits lifted (``bench/common.py``), as the benchmarks do.

    make fuzz        # or: python -m xbit_admin.devstack exec --test python bench/fuzz.py [--examples 20]

Set-up as the benchmarks: a throw-away database (``xbit_fuzz``) on the embedded test cluster, a free
Redis database index (claimed like ``make test`` does), markets synced from a sandbox. Schemathesis reads
``bench/schemathesis.toml`` (the trader's JWT as the ``jwt`` scheme's credential, and the few
operation/check exceptions, each with its reason). The findings are printed by schemathesis, its JUnit
report is written to ``.xbit/fuzz/junit.xml`` and the run's figures to ``bench/results/fuzz.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, progress, setup_django

STATE = ROOT / ".xbit" / "fuzz"
CONFIG = ROOT / "bench" / "schemathesis.toml"
RESULTS = ROOT / "bench" / "results" / "fuzz.json"


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def seed(hl_url: str) -> str:
    from django.conf import settings

    from core.accounts.models import User
    from core.accounts.tokens import access_token_for
    from routing.services import routing_config_update
    from trading.hl_accounts import hl_sandbox_accounts_setup
    from trading.markets import hl_info, markets_sync
    from trading.orders.algo_config import algo_config_update
    from trading.venues.hl import reset_gateways
    from wallets.ledger import AccountRef, TransferSpec, ledger_post
    from wallets.models import AccountKind, TransferKind

    settings.HL_API_URL = hl_url
    reset_gateways()
    markets_sync(info=hl_info(base_url=hl_url))
    routing_config_update(
        asset="*", changes={"global_internalization_enabled": True}, acting_user=None, reason="fuzz"
    )
    hl_sandbox_accounts_setup(base_url=hl_url)  # orders routed to HL reach funded sandbox accounts
    # TWAP and split orders are off by default (503 SERVICE_UNAVAILABLE): switched on, they are fuzzed
    algo_config_update(changes={"enabled": True}, acting_user=None, reason="fuzz")
    user = User.objects.create_user("fuzz@xbit.test", "fuzz-password-123")
    ledger_post(
        key=f"fuzz-fund:{user.pk}",
        transfers=[
            TransferSpec(
                AccountRef.platform(AccountKind.DEPOSIT_CLEARING),
                AccountRef.user(user.pk, AccountKind.CASH),
                Decimal("100000"),
                TransferKind.DEPOSIT,
                "fuzz",
                user.pk,
            )
        ],
    )
    return access_token_for(user)


def wait_quotes(timeout: float) -> bool:
    from trading.marketdata import get_quote

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all((q := get_quote(asset)) is not None and q.mark for asset in ("BTC", "ETH")):
            return True
        time.sleep(0.5)
    return False


def summary(output: str) -> dict[str, object]:
    """The figures of schemathesis's summary (its plain-text output; the JUnit report has no check
    counts)."""

    def number(pattern: str) -> int | None:
        found = re.search(pattern, output)
        return int(found.group(1)) if found else None

    failures = {
        code: int(count)
        for code, count in re.findall(r"(ST\d+) [^\n:]+: (\d+)\n", output.split("Failures:")[-1])
    }
    return {
        "operations_selected": number(r"Operations:\s+(\d+) selected"),
        "operations_total": number(r"Operations:\s+\d+ selected / (\d+) total"),
        "operations_tested": number(r"Tested: (\d+)"),
        "test_cases": number(r"(\d+) generated"),
        "unique_failures": number(r"(\d+) unique failures") or 0,
        "failures_by_check": failures if "Failures:" in output else {},
        "warnings": re.findall(r"⚠️ ([^\n]+)", output),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=20, help="examples per operation (default 20)")
    parser.add_argument("--seconds", type=float, default=300, help="wall-time bound for schemathesis")
    parser.add_argument("extra", nargs="*", help="extra schemathesis arguments (after --)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _raise_interrupt)
    from xbit_admin import devstack

    base, _, _db = os.environ["REDIS_URL"].rpartition("/")
    run_id = os.getpid()
    redis_db = devstack._claim_redis_db(base, run_id)
    os.environ["REDIS_URL"] = f"{base}/{redis_db}"
    STATE.mkdir(parents=True, exist_ok=True)
    web: subprocess.Popen[bytes] | None = None
    feed: subprocess.Popen[bytes] | None = None
    code = 1
    try:
        progress("setting up the fuzz database …")
        setup_django("xbit_fuzz")
        from sandbox.testing import SandboxProcess

        with SandboxProcess(seed=5, config={"hyperliquid": {"default_account_usdc": 50_000_000}}) as sb:
            token = seed(sb.urls["hyperliquid"])
            port = free_port()
            env = dict(
                os.environ,
                DJANGO_SETTINGS_MODULE="bench.chains_settings",  # the test settings, TRON/Solana from here
                HL_API_URL=sb.urls["hyperliquid"],
                TRON_RPC_URL=sb.urls["tron"],
                SOLANA_RPC_URL=sb.urls["solana"],
                DB_POOL_MAX="8",
            )
            with open(STATE / "web.log", "wb") as log:
                web = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "xbit_admin.asgi:application",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--no-access-log",
                        "--log-level",
                        "warning",
                        "--no-proxy-headers",  # as the Procfile's web line
                    ],
                    env=env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                # live quotes (the feed, as the Procfile runs it): orders are placed, filled and chained by
                # the stateful phase instead of all stopping at STALE_PRICE
                feed = subprocess.Popen(
                    [sys.executable, str(ROOT / "manage.py"), "run_feed"],
                    env=env,
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            import requests

            if not wait_quotes(60):
                progress("no live quotes after 60 s: orders will answer STALE_PRICE")
            for _ in range(300):
                with contextlib.suppress(requests.RequestException):
                    if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok:
                        break
                time.sleep(0.2)
            schemathesis = Path(sys.executable).parent / "schemathesis"
            cmd = [
                str(schemathesis),
                "--config-file",
                str(CONFIG),
                "--no-color",
                "run",
                f"http://127.0.0.1:{port}/api/schema/",
                "--max-examples",
                str(args.examples),
                "--request-timeout",
                "10",
                "--workers",
                "2",
                "--seed",
                "10",
                # every phase, stateful included: links inferred from the schema (dependency analysis)
                # and Location headers chain the trader's own objects (place → get → cancel, …)
                "--phases",
                "examples,coverage,fuzzing,stateful",
                # signing out (or changing the password) would revoke the fuzzer's own token
                "--exclude-path-regex",
                "auth/logout|security/password|security/email",
                "--report",
                "junit",
                "--report-junit-path",
                str(STATE / "junit.xml"),
                *args.extra,
            ]
            progress(f"schemathesis: {args.examples} examples per operation, at most {args.seconds:.0f} s …")
            started = time.monotonic()
            with subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=dict(os.environ, XBIT_FUZZ_TOKEN=token),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ) as run:
                assert run.stdout is not None
                # the wall-time bound holds even if schemathesis stops printing
                watchdog = threading.Timer(args.seconds, run.kill)
                watchdog.start()
                lines: list[str] = []
                for line in run.stdout:  # shown as it comes, kept for the summary
                    sys.stdout.write(line)
                    lines.append(line)
                code = run.wait()
                watchdog.cancel()
                if time.monotonic() - started >= args.seconds:
                    progress("time bound reached: schemathesis stopped")
                    code = 1
            figures = summary("".join(lines))
            RESULTS.write_text(
                json.dumps(
                    {
                        "command": "make fuzz",
                        "schemathesis": _schemathesis_version(schemathesis),
                        "examples_per_operation": args.examples,
                        "seed": 10,
                        "checks": "all (exceptions: bench/schemathesis.toml)",
                        "wall_seconds": round(time.monotonic() - started, 1),
                        "exit_code": code,
                        **figures,
                    },
                    indent=2,
                )
                + "\n"
            )
            progress(f"figures: {RESULTS.relative_to(ROOT)}")
    except KeyboardInterrupt:
        progress("interrupted")
    finally:
        for child in (web, feed):
            if child is not None and child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGTERM)
                try:
                    child.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
        devstack._release_redis_db(base, redis_db, run_id)
    progress(f"web log: {(STATE / 'web.log').relative_to(ROOT)}")
    return code


def _schemathesis_version(executable: Path) -> str:
    out = subprocess.run([str(executable), "--version"], capture_output=True, text=True, check=False).stdout
    return out.strip().rsplit(" ", 1)[-1]


if __name__ == "__main__":
    raise SystemExit(main())
