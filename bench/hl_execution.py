"""HYPERLIQUID execution benchmark (issue 6): the platform's added latency over a bare SDK call to the
same sandbox. Both sides send IOC market orders for the same size; the platform path includes
everything an API call does after the request is parsed (routing, hold, send, fetching HL's fills,
applying them to the ledger).

    python -m xbit_admin.devstack exec --test python bench/hl_execution.py
"""

from __future__ import annotations

import os
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import git_rev, percentiles, progress, save, setup_django
from bench.isolation import claim_redis_db

N = 300


def main() -> None:
    progress("setting up the benchmark database …")
    claim_redis_db()  # our own quote cache: other benchmarks write other ETH prices into database 0
    # production-like settings (DEBUG off: no query log), whatever the calling shell exported
    os.environ["DJANGO_SETTINGS_MODULE"] = os.environ.get("BENCH_SETTINGS", "xbit_admin.settings.test")
    setup_django(os.environ.get("BENCH_DB", "xbit_bench_hl"))
    import requests
    from django.conf import settings
    from eth_account import Account
    from hyperliquid.exchange import Exchange

    from core.accounts.models import User
    from routing.services import routing_config_update
    from sandbox.testing import SandboxProcess
    from trading.hl_accounts import hl_sandbox_accounts_setup
    from trading.marketdata import quote_update
    from trading.markets import hl_info, markets_sync
    from trading.orders.input import order_input
    from trading.orders.place import order_place
    from trading.venues.hl import meta_from_markets, reset_gateways
    from wallets.ledger import AccountRef, TransferSpec, ledger_post
    from wallets.models import AccountKind, TransferKind

    with SandboxProcess(seed=3, config={"hyperliquid": {"default_account_usdc": 50_000_000}}) as sb:
        url = sb.urls["hyperliquid"]
        settings.HL_API_URL = url
        reset_gateways()
        markets_sync(info=hl_info(base_url=url))
        routing_config_update(
            asset="*", changes={"global_internalization_enabled": True}, acting_user=None, reason="bench"
        )
        hl_sandbox_accounts_setup(base_url=url)
        user = User.objects.create_user("hl-bench@xbit.test", "bench-password-123")
        ledger_post(
            key="hl-bench-fund",
            transfers=[
                TransferSpec(
                    AccountRef.platform(AccountKind.DEPOSIT_CLEARING),
                    AccountRef.user(user.pk, AccountKind.CASH),
                    Decimal(50_000_000),
                    TransferKind.DEPOSIT,
                    "bench",
                    user.pk,
                )
            ],
        )
        accounts = requests.get(f"{url}/control/accounts", timeout=5).json()
        bare = Exchange(
            Account.from_key(accounts[2]["private_key"]),
            url,
            meta=meta_from_markets(),  # type: ignore[arg-type]
            spot_meta={"universe": [], "tokens": []},
            timeout=10,
        )

        def refresh() -> Decimal:
            book = requests.post(f"{url}/info", json={"type": "l2Book", "coin": "ETH"}, timeout=5).json()
            bid, ask = Decimal(book["levels"][0][0]["px"]), Decimal(book["levels"][1][0]["px"])
            mid = (bid + ask) / 2
            quote_update("ETH", mark=mid, oracle=mid, mid=mid, bid=bid, ask=ask, notify=False)
            return mid

        mid = refresh()
        size = (Decimal(12_000) / mid).quantize(Decimal("0.0001"))
        sdk, ours, outside = [], [], []
        venue_s = _time_venue_calls()
        profiler = _profiler()
        for i in range(N):
            is_buy = i % 2 == 0
            price = float(round(mid * (Decimal("1.05") if is_buy else Decimal("0.95")), 1))
            t0 = time.perf_counter()
            result = bare.order("ETH", is_buy, float(size), price, {"limit": {"tif": "Ioc"}})
            sdk.append(time.perf_counter() - t0)
            assert result["status"] == "ok", result
            venue_s.clear()
            if profiler is not None:
                profiler.start()
            t0 = time.perf_counter()
            order = order_place(
                user=user,
                inp=order_input(
                    asset="ETH",
                    side="BUY" if is_buy else "SELL",
                    order_type="MARKET",
                    size=str(size),
                    leverage=10,
                ),
            )
            ours.append(time.perf_counter() - t0)
            if profiler is not None:
                profiler.stop()
            # the same order minus what the bare SDK call also does (signing, the HTTP request)
            outside.append(ours[-1] - sum(venue_s))
            assert order.status == "FILLED", (order.status, order.error_message)
            if i % 50 == 0:
                mid = refresh()
                progress(f"{i}/{N}")
        # HL's per-trade details (trade ids, HL's fee) follow the answer asynchronously: what the user
        # stream does, here once for every order at the end
        from trading.models import Fill
        from trading.orders.hl_fills import backfill

        backfill(since_ms=0)
        pending = Fill.objects.filter(source="HYPERLIQUID", hl_fee__isnull=True).count()
        progress(f"HL trade details reconciled after the run; fills still without HL's fee: {pending}")
    if profiler is not None:
        Path(os.environ["BENCH_PROFILE"]).write_text(profiler.output_text(show_all=False))
    bare_p, ours_p, outside_p = percentiles(sdk), percentiles(ours), percentiles(outside)
    added = {k: round(ours_p[k] - bare_p[k], 3) for k in ("p50_ms", "p95_ms", "p99_ms")}
    progress(f"bare SDK order  p50 {bare_p['p50_ms']:.2f} ms  p99 {bare_p['p99_ms']:.2f} ms")
    progress(f"platform order  p50 {ours_p['p50_ms']:.2f} ms  p99 {ours_p['p99_ms']:.2f} ms")
    progress(f"added           p50 {added['p50_ms']:.2f} ms  p99 {added['p99_ms']:.2f} ms")
    progress(
        f"outside the HL call, per order  p50 {outside_p['p50_ms']:.2f} ms  p95 {outside_p['p95_ms']:.2f} ms"
        f"  p99 {outside_p['p99_ms']:.2f} ms"
    )
    save(
        "hl_execution",
        {
            "git": git_rev(),
            "bare_sdk": bare_p,
            "platform": ours_p,
            "added": added,
            "platform_outside_hl_call": outside_p,
            "orders": N,
        },
    )


def _time_venue_calls() -> list[float]:
    """Seconds the platform's order spends in what a bare SDK order also does — signing the action and
    the order's HTTP request — appended per call (timing wrappers only: the real code runs)."""
    from trading.venues import hl

    spent: list[float] = []
    sign, post = hl.sign_l1_action, hl.HLGateway._post

    def timed_sign(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return sign(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - t0)

    def timed_post(self: Any, path: str, payload: dict[str, Any], endpoint: str) -> Any:
        t0 = time.perf_counter()
        try:
            return post(self, path, payload, endpoint)
        finally:
            if endpoint == "order":  # other HL requests (a fills query) are the platform's own
                spent.append(time.perf_counter() - t0)

    hl.sign_l1_action = timed_sign  # type: ignore[assignment]
    hl.HLGateway._post = timed_post  # type: ignore[method-assign]
    return spent


def _profiler() -> Any:
    """``BENCH_PROFILE=out.txt``: pyinstrument over the platform's orders only (slower; for finding
    where the time goes, not for the figures)."""
    if not os.environ.get("BENCH_PROFILE"):
        return None
    from pyinstrument import Profiler

    return Profiler(interval=0.0002)


if __name__ == "__main__":
    main()
