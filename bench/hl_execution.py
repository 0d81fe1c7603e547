"""HYPERLIQUID execution benchmark (issue 6): the platform's added latency over a bare SDK call to the
same sandbox. Both sides send IOC market orders for the same size; the platform path includes
everything an API call does after the request is parsed (routing, hold, send, fetching HL's fills,
applying them to the ledger).

    python -m xbit_admin.devstack exec --test python bench/hl_execution.py
"""

from __future__ import annotations

import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import git_rev, percentiles, progress, save, setup_django

N = 300


def main() -> None:
    progress("setting up the benchmark database …")
    setup_django("xbit_bench_hl")
    import requests
    from django.conf import settings
    from eth_account import Account
    from hyperliquid.exchange import Exchange

    from routing.services import routing_config_update
    from sandbox.testing import SandboxProcess
    from trading.hl_accounts import hl_sandbox_accounts_setup
    from trading.marketdata import quote_update
    from trading.markets import hl_info, markets_sync
    from trading.services import order_input, order_place
    from trading.venues.hl import meta_from_markets, reset_gateways
    from wallets.ledger import AccountRef, TransferSpec, ledger_post
    from wallets.models import AccountKind, TransferKind
    from xbit_admin.accounts.models import User

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
        sdk, ours = [], []
        for i in range(N):
            is_buy = i % 2 == 0
            price = float(round(mid * (Decimal("1.05") if is_buy else Decimal("0.95")), 1))
            t0 = time.perf_counter()
            result = bare.order("ETH", is_buy, float(size), price, {"limit": {"tif": "Ioc"}})
            sdk.append(time.perf_counter() - t0)
            assert result["status"] == "ok", result
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
            assert order.status == "FILLED", (order.status, order.error_message)
            if i % 50 == 0:
                mid = refresh()
                progress(f"{i}/{N}")
    bare_p, ours_p = percentiles(sdk), percentiles(ours)
    added = {k: round(ours_p[k] - bare_p[k], 3) for k in ("p50_ms", "p95_ms", "p99_ms")}
    progress(f"bare SDK order  p50 {bare_p['p50_ms']:.2f} ms  p99 {bare_p['p99_ms']:.2f} ms")
    progress(f"platform order  p50 {ours_p['p50_ms']:.2f} ms  p99 {ours_p['p99_ms']:.2f} ms")
    progress(f"added           p50 {added['p50_ms']:.2f} ms  p99 {added['p99_ms']:.2f} ms")
    save(
        "hl_execution",
        {"git": git_rev(), "bare_sdk": bare_p, "platform": ours_p, "added": added, "orders": N},
    )


if __name__ == "__main__":
    main()
