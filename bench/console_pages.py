"""Console page response times with demo-like data: p50/p95 per page, server side (Django test client
through the full middleware stack, signed in as a Super Admin with a verified TOTP device).

    python -m xbit_admin.devstack exec --test python bench/console_pages.py
    python -m xbit_admin.devstack exec --test python bench/console_pages.py --profile "user page" --only "user page"

Each page's SQL query count (one request) is recorded beside its timings. ``--profile NAME`` prints
a pyinstrument profile of that page and its slowest queries; ``--only NAME`` measures just those pages
(both repeatable; a profiling run does not overwrite bench/results/).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import git_rev, percentiles, progress, save, setup_django

TRADERS = 200
ORDERS_PER_TRADER = 5
DECISIONS = 50_000
AUDIT_ENTRIES = 3_000
DEPOSITS = 4_000
WITHDRAWALS = 40
ALERTS = 60
SAMPLES = 40
PASSWORD = "bench-password-123"  # noqa: S105 - throw-away benchmark database


def seed(meta: dict[str, Any]) -> dict[str, Any]:
    from django.contrib.auth.models import Group
    from django.core import mail
    from django.db import transaction
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from core.accounts.models import User
    from core.alerts.services import alert_raise
    from core.audit.services import audit_record
    from core.defaults import ensure_all
    from routing.models import RoutingDecisionLog
    from routing.services import routing_config_update, routing_mode_switch
    from trading.marketdata import quote_update
    from trading.markets import markets_sync
    from trading.orders.input import order_input
    from trading.orders.place import order_place
    from wallets.ledger import AccountRef, TransferSpec, ledger_post
    from wallets.models import AccountKind, Deposit, TransferKind
    from wallets.services import withdrawal_confirm, withdrawal_request

    ensure_all()
    markets_sync(meta=meta)
    routing_config_update(
        asset="*", changes={"global_internalization_enabled": True}, acting_user=None, reason="bench"
    )

    def quotes() -> None:  # kept fresh: a book older than 5 s sends orders to HL (stale_price)
        for asset, mark in (("BTC", "80000"), ("ETH", "3000"), ("SOL", "150")):
            m = Decimal(mark)
            quote_update(
                asset,
                mark=m,
                oracle=m,
                mid=m,
                bid=m - 1,
                ask=m + 1,
                bid_size=Decimal(50),
                ask_size=Decimal(50),
            )

    quotes()
    admin = User.objects.create_user("bench-admin@xbit.test", PASSWORD, is_staff=True)
    admin.groups.add(Group.objects.get(name="Super Admin"))
    TOTPDevice.objects.create(user=admin, name="bench", confirmed=True)

    progress(f"{TRADERS} traders × {ORDERS_PER_TRADER} internal orders …")
    traders = []
    for i in range(TRADERS):
        quotes()
        user = User.objects.create_user(
            f"trader{i}@example.com", PASSWORD, wallet_address=f"0x{i:040x}", kyc_status="VERIFIED"
        )
        TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
        ledger_post(
            key=f"bench-fund:{user.pk}",
            transfers=[
                TransferSpec(
                    AccountRef.platform(AccountKind.DEPOSIT_CLEARING, sub="ETH:USDT"),
                    AccountRef.user(user.pk, AccountKind.CASH),
                    Decimal("500000"),
                    TransferKind.DEPOSIT,
                )
            ],
        )
        for j in range(ORDERS_PER_TRADER):
            order_place(
                user=user,
                inp=order_input(
                    asset=("BTC", "ETH")[j % 2],  # the launch whitelist: HL routing is not wired yet
                    side="BUY" if (i + j) % 2 else "SELL",
                    order_type="MARKET",
                    size=("0.01", "0.2")[j % 2],
                    leverage=10,
                    margin_mode="ISOLATED" if j % 3 else "CROSS",
                ),
            )
        traders.append(user)

    progress(f"{DECISIONS} decision-log rows, {DEPOSITS} deposits, {AUDIT_ENTRIES} audit entries …")
    RoutingDecisionLog.objects.bulk_create(
        (
            RoutingDecisionLog(
                order_id=10_000_000 + k,
                user_id=traders[k % TRADERS].pk,
                asset=("BTC", "ETH", "SOL", "DOGE")[k % 4],
                notional=Decimal(500 + k % 40_000),
                route="INTERNAL" if k % 3 else "HYPERLIQUID",
                mode="NORMAL_MODE",
                threshold=Decimal(10_000),
                reason="threshold" if k % 7 else "not_whitelisted",
                latency_us=30 + k % 50,
            )
            for k in range(DECISIONS)
        ),
        batch_size=5000,
    )
    Deposit.objects.bulk_create(
        (
            Deposit(
                chain="ETH",
                tx_hash=f"0x{k:064x}",
                log_index=0,
                user=traders[k % TRADERS],
                address=f"0x{k:040x}",
                asset="USDT",
                amount=Decimal(100 + k),
                confirmations=12,
                required_confirmations=12,
                status="CREDITED",
            )
            for k in range(DEPOSITS)
        ),
        batch_size=2000,
    )
    for k in range(0, AUDIT_ENTRIES, 100):
        with transaction.atomic():
            for n in range(k, k + 100):
                audit_record(
                    action=("routing.config_update", "wallets.withdrawal.ops_approve", "alert.acknowledge")[
                        n % 3
                    ],
                    actor=admin,
                    object_type="bench",
                    object_id=n,
                    before={"n": n},
                    after={"n": n + 1},
                    reason="bench",
                )
    for k in range(12):
        routing_mode_switch(
            asset="BTC",
            mode=("HL_MODE", "NORMAL_MODE")[k % 2],
            acting_user=admin,
            reason="bench",
            change_id=f"bench-{k}",
        )
    for k in range(ALERTS):
        alert_raise(
            rule=f"bench.rule{k % 6}",
            subject=f"S{k}",
            severity=("P0", "P1", "P2")[k % 3],
            message="bench alert",
        )

    progress(f"{WITHDRAWALS} withdrawals waiting for approval …")
    for k in range(WITHDRAWALS):
        user = traders[k]
        device = TOTPDevice.objects.get(user=user)
        code = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"
        withdrawal_request(
            user=user,
            chain="ETH",
            asset="USDT",
            address=f"0x{(k + 1) * 7919:040x}",
            amount=("20000", "150000")[k % 2],
            totp_code=code,
        )
        token = re.search(r"token=([\w\-]+)", mail.outbox[-1].body).group(1)  # type: ignore[union-attr,arg-type]
        withdrawal_confirm(token=token)
    progress("risk state: exposure rebuilt, 30 days of daily results, drift and liquidation rows …")
    risk_seed(traders)
    progress("desk state: notes, tags, restrictions, a day of venue samples and HL snapshots, proposals …")
    desk_seed(traders, admin)
    return {"admin": admin, "trader": traders[3]}


def risk_seed(traders: list[Any]) -> None:
    """What the overview and the risk pages read: exposure from the open positions, 30 days of
    ExposureDaily, a day of per-minute snapshots, drift records and liquidations."""
    from datetime import timedelta

    from django.utils import timezone

    from risk.exposure import exposure_recompute
    from risk.models import DeviationLog, ExposureDaily, ExposureSnapshot, LiquidationTrigger

    exposure_recompute(apply=True)
    now = timezone.now()
    ExposureDaily.objects.bulk_create(
        ExposureDaily(
            day=(now - timedelta(days=d)).date(),
            asset=asset,
            client_realized_pnl=Decimal(1000 - 37 * d),
            fees=Decimal(120 + d),
            liquidation_margin=Decimal(d * 3),
        )
        for d in range(1, 30)
        for asset in ("BTC", "ETH")
    )
    ExposureSnapshot.objects.bulk_create(
        (
            ExposureSnapshot(asset=asset, at=now - timedelta(minutes=m), net_notional=Decimal(m * 10))
            for m in range(1440)
            for asset in ("BTC", "ETH")
        ),
        batch_size=2000,
    )
    DeviationLog.objects.bulk_create(
        DeviationLog(
            ref=f"bench-drift-{k}",
            kind="CLOSE",
            asset=("BTC", "ETH", "SOL")[k % 3],
            xbit_pnl=Decimal(1000),
            hl_actual_pnl=Decimal(1000 + k % 40),
            deviation=Decimal(k % 40),
            deviation_rate=Decimal(k % 40) / 1000,
            level="ALERT" if k % 40 > 10 else "LOG",
            created_at=now - timedelta(hours=k % 700),
        )
        for k in range(2000)
    )
    LiquidationTrigger.objects.bulk_create(
        LiquidationTrigger(
            trigger_id=f"bench-liq-{k}",
            kind="ISOLATED",
            user=traders[k % len(traders)],
            position_version=k,
            asset=("BTC", "ETH")[k % 2],
            venue=("INTERNAL", "HYPERLIQUID")[k % 2],
            status="ESCALATED" if k % 97 == 0 else "COMPLETED",
            trigger_price=Decimal(70000),
            close_price=Decimal(69990),
            size=Decimal("0.01"),
            margin_zeroed=Decimal(80),
            detected_at=now - timedelta(minutes=k),
            completed_at=now - timedelta(minutes=k) + timedelta(milliseconds=40),
        )
        for k in range(1500)
    )


def desk_seed(traders: list[Any], admin: Any) -> None:
    """Issue #21's pages: notes, tags and restrictions on clients, a day of venue latency samples (every
    15 s as the beat writes them) and of both HL accounts' snapshots (every 5 s), open proposals."""
    from datetime import timedelta

    from django.utils import timezone

    from core.accounts.desk import client_note_add, client_restrict, client_tag_add
    from core.accounts.models import StaffProposal
    from trading.models import HLAccountSnapshot
    from xbit_admin.console.models import VenueLatencySample

    now = timezone.now()
    for k, trader in enumerate(traders[:40]):
        client_note_add(user_id=trader.pk, body=f"bench note {k}", acting_user=admin)
        client_tag_add(user_id=trader.pk, tag=("vip", "watch", "mm")[k % 3], acting_user=admin)
        if k % 4 == 0:
            client_restrict(user_id=trader.pk, kind="no_withdrawals", reason="bench", acting_user=admin)

    def ratio(k: int) -> Decimal:  # the k-th snapshot back (every 5 s)
        return Decimal(20) - Decimal(k % 500) / 100

    VenueLatencySample.objects.bulk_create(
        (
            VenueLatencySample(
                created_at=now - timedelta(seconds=15 * k),
                latency_ms=Decimal(150 + k % 90),
                connected=True,
                # as the beat rolls them up: the lowest of the three snapshots since the previous sample
                trading_margin_ratio=min(ratio(3 * k + i) for i in range(3)),
                hedge_margin_ratio=min(ratio(3 * k + i) for i in range(3)),
            )
            for k in range(5760)
        ),
        batch_size=2000,
    )
    HLAccountSnapshot.objects.bulk_create(
        (
            HLAccountSnapshot(
                account=name,
                account_value=Decimal(1_000_000),
                total_margin_used=Decimal(100_000),
                maintenance_margin_used=Decimal(50_000),
                withdrawable=Decimal(0),
                total_notional=Decimal(500_000),
                margin_ratio=Decimal(20) - Decimal(k % 500) / 100,
                created_at=now - timedelta(seconds=5 * k),
            )
            for k in range(17_280)
            for name in ("trading", "hedge")
        ),
        batch_size=4000,
    )
    StaffProposal.objects.bulk_create(
        StaffProposal(
            kind="risk_config",
            subject=f"risk:bench{k}",
            payload={"asset": "*", "changes": {"daily_loss_trip": {"t": "decimal", "v": str(400_000 + k)}}},
            reason="bench",
            proposed_by=admin,
        )
        for k in range(10)
    )


def sign_in(admin: Any) -> Any:
    from django.test import Client
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    client = Client()
    assert client.post("/login/", {"email": admin.email, "password": PASSWORD}).status_code == 302
    device = TOTPDevice.objects.get(user=admin)
    code = f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):06d}"
    assert client.post("/otp/", {"token": code}).status_code == 302
    return client


def profile_page(client: Any, name: str, url: str) -> None:
    """pyinstrument over a few requests, then the queries of one request, slowest first."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)
    with profiler:
        for _ in range(10):
            client.get(url)
    print(f"\n===== profile: {name} ({url}), 10 requests =====")
    print(profiler.output_text(unicode=False, color=False, show_all=False))
    with CaptureQueriesContext(connection) as ctx:
        client.get(url)
    queries = sorted(ctx.captured_queries, key=lambda q: -float(q["time"]))
    print(f"===== {name}: {len(queries)} queries, slowest first =====")
    for q in queries[:25]:
        print(f"{float(q['time']) * 1000:7.2f} ms  {q['sql'][:300]}")


def query_count(client: Any, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
        if getattr(response, "streaming", False):
            b"".join(response.streaming_content)
    return len(ctx.captured_queries)


def main() -> None:
    from django.test.utils import setup_test_environment

    from sandbox.testing import SandboxProcess

    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", action="append", default=[], help="page name to profile")
    parser.add_argument("--only", action="append", default=[], help="measure only these pages")
    args = parser.parse_args()
    progress("setting up the benchmark database …")
    setup_django("xbit_bench_console")
    setup_test_environment()  # locmem email (withdrawal links), ALLOWED_HOSTS for the test client
    with SandboxProcess(seed=7) as sb:
        request = urllib.request.Request(  # noqa: S310 - loopback sandbox
            sb.urls["hyperliquid"] + "/info",
            data=b'{"type":"meta"}',
            headers={"Content-Type": "application/json"},
        )
        meta = json.loads(urllib.request.urlopen(request, timeout=10).read())  # noqa: S310
    data = seed(meta)
    client = sign_in(data["admin"])
    trader = data["trader"]
    pages = {
        "overview": "/",
        "risk config": "/risk-config/",
        "liquidations": "/liquidations/",
        "drift": "/drift/",
        "hedge": "/hedge/",
        "routing": "/routing/",
        "routing (decision log filtered)": "/routing/?asset=ETH&reason=threshold&route=INTERNAL",
        "routing asset": "/routing/BTC/",
        "users search (deposit tx)": f"/users/?q=0x{5:064x}",
        "user page": f"/users/{trader.pk}/?range=all",
        "withdrawals": "/withdrawals/",
        "liquidity": "/liquidity/",
        "audit log": "/audit/",
        "audit log (filtered)": "/audit/?action=routing",
        "alerts": "/alerts/?state=all",
        "client list": "/users/",
        "client list (filtered, sorted)": "/users/?kyc=VERIFIED&sort=email&per=100",
        "user page journal (withdrawals)": f"/users/{trader.pk}/?range=all&kind=withdrawal",
        "client journal CSV": f"/users/{trader.pk}/journal.csv?range=all",
        "balance adjustment": f"/users/{trader.pk}/adjustments/",
        "platform state (banner)": "/platform-state.json",
        "runbooks": "/runbooks/",
        "runbook": "/runbooks/breaker/HL_LATENCY/",
        "venue health": "/venue/",
        "venue health (72 h)": "/venue/?hours=72",
        "staff": "/staff/",
        "staff member": f"/staff/{data['admin'].pk}/",
        "four eyes": "/proposals/",
        "switches": "/switches/",
        "client risk": "/client-risk/",
    }
    for name in args.profile + args.only:
        if name not in pages:
            raise SystemExit(f"unknown page {name!r}; pages: {', '.join(pages)}")
    for name in args.profile:
        profile_page(client, name, pages[name])
    if args.only:
        pages = {name: url for name, url in pages.items() if name in args.only}
    results: dict[str, dict[str, Any]] = {}
    for name, url in pages.items():
        for _ in range(3):  # warm caches
            client.get(url)
        samples = []
        for _ in range(SAMPLES):
            t0 = time.perf_counter()
            response = client.get(url)
            if getattr(response, "streaming", False):  # a CSV: the rows are produced while streaming
                b"".join(response.streaming_content)
            samples.append(time.perf_counter() - t0)
            assert response.status_code in (200, 302), (url, response.status_code)
        results[name] = {**percentiles(samples), "queries": query_count(client, url)}
        print(
            f"{name:34s} p50 {results[name]['p50_ms']:8.1f} ms   p95 {results[name]['p95_ms']:8.1f} ms"
            f"   {results[name]['queries']:3d} queries",
            flush=True,
        )
    if not args.only:
        # the overview's live region, rendered by the topics consumer once a second per open overview
        from xbit_admin.console.live_overview import overview_fragment

        samples = []
        for _ in range(SAMPLES):
            t0 = time.perf_counter()
            overview_fragment(data["admin"])
            samples.append(time.perf_counter() - t0)
        results["overview live push (fragment)"] = percentiles(samples)
        print(
            f"{'overview live push (fragment)':34s} p50 {results['overview live push (fragment)']['p50_ms']:8.1f} ms"
            f"   p95 {results['overview live push (fragment)']['p95_ms']:8.1f} ms",
            flush=True,
        )
    if args.profile or args.only:
        return  # a partial or profiling run is not the page's figure of record
    path = save(
        "console_pages",
        {
            "git": git_rev(),
            "data": {
                "traders": TRADERS,
                "orders": TRADERS * ORDERS_PER_TRADER,
                "decision_log_rows": DECISIONS,
                "deposits": DEPOSITS,
                "audit_entries": AUDIT_ENTRIES,
                "withdrawals_waiting": WITHDRAWALS,
                "alerts": ALERTS,
            },
            "samples_per_page": SAMPLES,
            "pages": results,
        },
    )
    progress(f"saved {path}")


if __name__ == "__main__":
    main()
