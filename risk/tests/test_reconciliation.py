"""Reconciliation: each dimension detects an injected mismatch and fails closed (sandbox for HL)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from core.alerts.models import Alert
from risk.hedge_engine import hedge_evaluate
from risk.reconciliation import reconciliation_latest, reconciliation_run
from risk.tests.test_hedge import Venue, set_exposure
from routing.models import RoutingState
from sandbox.testing import SandboxProcess
from trading.hl_accounts import hl_capital_book, hl_sandbox_accounts_setup
from trading.markets import hl_info, markets_sync
from trading.venues.hl import reset_gateways

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
D = Decimal


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with SandboxProcess(seed=44, config={"hyperliquid": {"clock": "real"}}) as sb:
        yield sb.urls["hyperliquid"]


def book_hl_capital() -> None:
    """Book each HL account's value as injected capital, as an operator does when funding it."""
    for name in ("trading", "hedge"):
        hl_capital_book(name=name, key=f"test-capital:{name}")


@pytest.fixture
def venue(
    sandbox_url: str,
    tron: Any,
    sol: Any,
    evm: Any,
    evm_arbitrum: Any,
    settings: Any,
    internalization_on: None,
) -> Iterator[Venue]:
    """HL on the sandbox, TRON and SOL on their stand-ins, ETH and Arbitrum on anvil (the hot wallets'
    dimension reads every chain). Hot wallets come from the HD seed (the same addresses in every test):
    the ``tron`` and ``sol`` stand-ins start each test from genesis, the anvil nodes are reverted."""
    settings.HL_API_URL = sandbox_url
    settings.HL_TIMEOUT_SECONDS = 3.0
    v = Venue(sandbox_url)
    v.control("reset")
    v.control("prices/pause")
    reset_gateways()
    markets_sync(info=hl_info(base_url=sandbox_url))
    hl_sandbox_accounts_setup(base_url=sandbox_url)
    v.refresh_quote("BTC")
    book_hl_capital()
    yield v
    reset_gateways()


def statuses(rows: list[Any], dimension: str) -> dict[str, str]:
    return {r.subject: r.status for r in rows if r.dimension == dimension}


def test_a_clean_platform_reconciles_ok_on_every_dimension(venue: Venue) -> None:
    rows = reconciliation_run()
    assert {r.dimension for r in rows} == {
        "ledger",
        "exposure",
        "hl_trading",
        "hl_hedge",
        "user_assets",
        "hl_account_value",
        "funding_mirror",
        "bbook",
        "hot_wallets",
    }
    assert all(r.status == "OK" for r in rows), [(r.dimension, r.subject, r.details) for r in rows]
    assert reconciliation_latest()["run_id"] == rows[0].run_id


def test_a_hedge_position_changed_directly_on_hl_is_critical_and_stops_internalizing_the_asset(
    venue: Venue,
) -> None:
    mark = venue.refresh_quote("BTC")
    set_exposure("BTC", D(103_000), mark)
    hedge_evaluate(assets=["BTC"])
    assert statuses(reconciliation_run(dimensions=["hl_hedge"]), "hl_hedge") == {"BTC": "OK"}
    size = venue.hedge_size("BTC")
    venue.control("position", {"address": venue.hedge_address, "coin": "BTC", "szi": str(size * 2)})
    (row,) = reconciliation_run(dimensions=["hl_hedge"])
    assert row.status == "CRITICAL" and row.expected == size and row.actual == size * 2
    assert "hedge_capacity" in RoutingState.objects.get(asset="BTC").force_hl_reasons
    assert (
        Alert.objects.filter(rule="reconciliation.hl_hedge", severity="P0").exclude(state="RESOLVED").exists()
    )
    # HL is the source of truth: restoring HL's position clears it on the next run, nothing was plugged
    venue.control("position", {"address": venue.hedge_address, "coin": "BTC", "szi": str(size)})
    assert reconciliation_run(dimensions=["hl_hedge"])[0].status == "OK"
    assert "hedge_capacity" not in RoutingState.objects.get(asset="BTC").force_hl_reasons


def test_a_trading_account_position_changed_on_hl_halts_new_hl_opens(venue: Venue) -> None:
    venue.control("position", {"address": _trading_address(), "coin": "ETH", "szi": "3"})
    rows = reconciliation_run(dimensions=["hl_trading"])
    assert statuses(rows, "hl_trading")["ETH"] == "CRITICAL"
    # the halt needs the mismatch confirmed by a second look (an order in flight is not a mismatch)
    reconciliation_run(dimensions=["hl_trading"])
    assert RoutingState.objects.get(asset="ETH").hl_halted


def _trading_address() -> str:
    from trading.models import HLAccount

    return HLAccount.objects.get(name="trading").master_address


def test_a_balance_tampered_behind_the_ledger_is_critical_and_never_plugged(
    venue: Venue, fund: Any, trader: Any
) -> None:
    from wallets.models import LedgerAccount

    account = LedgerAccount.objects.filter(user=trader).first()
    assert account is not None
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("UPDATE ledger_accounts SET balance = balance + 5 WHERE id = %s", [account.pk])
        cursor.execute("SET session_replication_role = DEFAULT")
    try:
        (row,) = reconciliation_run(dimensions=["ledger"])
        assert row.status == "CRITICAL" and row.actual >= 1
        assert any(account.key in p for p in row.details["problems"])
        assert Alert.objects.filter(rule="reconciliation.ledger", severity="P0").exists()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")
            cursor.execute("UPDATE ledger_accounts SET balance = balance - 5 WHERE id = %s", [account.pk])
            cursor.execute("SET session_replication_role = DEFAULT")
    assert reconciliation_run(dimensions=["ledger"])[0].status == "OK"


def test_an_exposure_total_drifting_from_the_positions_is_critical(venue: Venue) -> None:
    set_exposure("SOL", D(5_000), D(100))  # no SOL position exists: the incremental totals are wrong
    rows = reconciliation_run(dimensions=["exposure"])
    assert statuses(rows, "exposure") == {"SOL": "CRITICAL"}


def _tamper_user_balance(account_id: int, delta: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("UPDATE ledger_accounts SET balance = balance + %s WHERE id = %s", [delta, account_id])
        cursor.execute("SET session_replication_role = DEFAULT")


def test_a_user_balance_tampered_behind_the_trigger_breaks_user_assets_and_gates_the_restart(
    venue: Venue, fund: Any, trader: Any
) -> None:
    from risk.reconciliation import startup_check
    from wallets.models import LedgerAccount

    account = LedgerAccount.objects.filter(user=trader, kind="cash").first()
    assert account is not None
    assert reconciliation_run(dimensions=["user_assets"])[0].status == "OK"
    _tamper_user_balance(account.pk, 5)
    try:
        (row,) = reconciliation_run(dimensions=["user_assets"])
        assert row.status == "CRITICAL" and row.deviation == 5
        assert Alert.objects.filter(rule="reconciliation.user_assets", severity="P0").exists()
        ok, reason = startup_check()
        assert not ok and "user_assets" in reason
    finally:
        _tamper_user_balance(account.pk, -5)
    assert reconciliation_run(dimensions=["user_assets"])[0].status == "OK"


def test_hl_account_value_moved_on_hl_is_critical_with_its_terms(venue: Venue) -> None:
    assert statuses(reconciliation_run(dimensions=["hl_account_value"]), "hl_account_value") == {
        "trading": "OK",
        "hedge": "OK",
    }
    venue.control("debit", {"address": _trading_address(), "amount": "2500"})
    rows = {r.subject: r for r in reconciliation_run(dimensions=["hl_account_value"])}
    assert rows["trading"].status == "CRITICAL" and rows["trading"].deviation == -2500
    assert rows["hedge"].status == "OK"
    assert {"capital", "hl_pnl", "unrealized_pnl"} <= set(rows["trading"].details)


def test_hl_account_value_holds_when_netting_realizes_users_open_profit_on_hl(
    venue: Venue, make_trader: Any, fund: Any
) -> None:
    """One user buys, the price rises, another sells the same size: HL's netted account is flat and has
    realized the rise, while our users still hold it open (one long in profit, one short at the top).
    The value reconciles on the users' own unrealized P&L, not on HL's (which is zero now)."""
    from trading.orders.input import order_input
    from trading.orders.place import order_place

    buyer, seller = make_trader(), make_trader()
    fund(buyer, "100000")
    fund(seller, "100000")

    def market(user: Any, side: str) -> None:
        venue.refresh_quote("BTC")
        order = order_place(
            user=user,
            inp=order_input(asset="BTC", side=side, order_type="MARKET", size="0.9", leverage=10),
        )
        assert order.route == "HYPERLIQUID" and order.status == "FILLED"

    market(buyer, "BUY")
    venue.control("shock", {"coin": "BTC", "pct": 5})
    market(seller, "SELL")
    rows = {r.subject: r for r in reconciliation_run(dimensions=["hl_account_value"])}
    trading = rows["trading"]
    assert D(trading.details["hl_unrealized_pnl"].get("BTC", "0")) == 0  # HL holds nothing: it realized
    assert D(trading.details["unrealized_pnl"]) > 3000  # our buyer still holds ~0.9 × 5 % of 100k open
    assert trading.status == "OK", trading.details


def test_mirrored_funding_that_differs_from_hl_user_funding_is_critical(venue: Venue, trader: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from risk.models import FundingRun, FundingSettlement
    from trading.models import Position

    at = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    FundingRun.objects.create(funding_time=at, status=FundingRun.Status.COMPLETED, completed_at=at)
    assert statuses(reconciliation_run(dimensions=["funding_mirror"]), "funding_mirror") == {
        f"*@{at.isoformat()}": "OK"
    }
    position = Position.objects.create(
        user=trader,
        asset="BTC",
        source="HYPERLIQUID",
        margin_mode="CROSS",
        direction="LONG",
        size=D(1),
        entry_price=D(100_000),
        leverage=10,
    )
    FundingSettlement.objects.create(
        position=position,
        user=trader,
        funding_time=at,
        asset="BTC",
        source="HYPERLIQUID",
        margin_mode="CROSS",
        direction="LONG",
        size=D(1),
        rate=D("0.0001"),
        price=D(100_000),
        payment=D(-10),
        collected=D(-10),
    )
    (row,) = reconciliation_run(dimensions=["funding_mirror"])
    assert row.subject == f"BTC@{at.isoformat()}" and row.status == "CRITICAL"
    assert row.expected == -10 and row.actual == 0


def test_a_plug_into_the_bbook_breaks_the_bbook_identity(venue: Venue) -> None:
    from wallets.ledger import AccountRef, TransferSpec, ledger_post

    assert reconciliation_run(dimensions=["bbook"])[0].status == "OK"
    ledger_post(
        key="test-bbook-plug",
        transfers=[
            TransferSpec(
                debit=AccountRef.platform("adjustments"),
                credit=AccountRef.platform("bbook_pnl"),
                amount=D(100),
                kind="adjustment",
            )
        ],
    )
    (row,) = reconciliation_run(dimensions=["bbook"])
    assert row.status == "CRITICAL" and row.actual - row.expected == 100
    assert Alert.objects.filter(rule="reconciliation.bbook", severity="P0").exists()


def test_a_hot_wallet_differing_from_our_record_or_short_of_its_queue_is_critical(
    venue: Venue, tron: Any
) -> None:
    from wallets.services.keys import hot_wallet_key

    assert all(r.status == "OK" for r in reconciliation_run(dimensions=["hot_wallets"]))
    address = hot_wallet_key("TRON").address
    tron.fund(address, "USDT", "1000")  # USDT on chain that our custody record does not know
    rows = {r.subject: r for r in reconciliation_run(dimensions=["hot_wallets"])}
    assert rows["TRON:USDT"].status == "CRITICAL" and rows["TRON:USDT"].actual == 1000
    assert rows["TRON:USDT"].expected == 0 and rows["TRON:USDT"].details["covers_queue"] is True
    # a sweep on its way in explains the difference, up to its amount and no further
    from wallets.models import Aggregation

    sweep = Aggregation.objects.create(
        chain="TRON",
        asset="USDT",
        from_address="T-deposit",
        to_address=address,
        amount=D(1000),
        trigger=Aggregation.Trigger.MANUAL,
        status=Aggregation.Status.SENT,
    )
    rows = {r.subject: r for r in reconciliation_run(dimensions=["hot_wallets"])}
    assert rows["TRON:USDT"].status == "OK" and rows["TRON:USDT"].expected == 1000
    Aggregation.objects.filter(pk=sweep.pk).update(amount=D(400))
    rows = {r.subject: r for r in reconciliation_run(dimensions=["hot_wallets"])}
    assert rows["TRON:USDT"].status == "CRITICAL" and rows["TRON:USDT"].expected == 400


def test_a_restart_with_positions_resting_orders_and_a_hedge_comes_back_consistent(
    venue: Venue, trader: Any, make_staff: Any
) -> None:
    from django.core.management import call_command

    from core.accounts.roles import Role
    from core.live_config import _invalidate_all
    from core.platform.state import platform_ready
    from risk.exposure import exposure_recompute
    from risk.hedge_orders import hedge_manual_order
    from trading import margin
    from trading.orders.input import order_input
    from trading.orders.place import order_place

    mid = venue.refresh_quote("BTC")
    bid = mid - 1
    place = lambda **kw: order_place(user=trader, inp=order_input(asset="BTC", leverage=10, **kw))  # noqa: E731
    place(side="BUY", order_type="MARKET", size="0.05")  # INTERNAL
    place(side="SELL", order_type="MARKET", size=str(margin.floor_size(D(15_000) / mid, 5)))  # HYPERLIQUID
    internal_rest = place(
        side="BUY", order_type="LIMIT", size="0.05", limit_price=str(margin.round_price(bid * D("0.9"), 5))
    )
    hl_rest = place(
        side="BUY",
        order_type="LIMIT",
        size=str(margin.floor_size(D(15_000) / mid, 5)),
        limit_price=str(margin.round_price(bid * D("0.9"), 5)),
    )
    assert (internal_rest.route, internal_rest.status, hl_rest.route, hl_rest.status) == (
        "INTERNAL",
        "OPEN",
        "HYPERLIQUID",
        "OPEN",
    )
    hedge_manual_order(
        acting_user=make_staff(Role.RISK_MANAGER),
        asset="BTC",
        side="BUY",
        notional="20000",
        reason="restart test",
    )

    # "restart": every process cache and venue client is forgotten; state is rebuilt from PostgreSQL
    reset_gateways()
    _invalidate_all()
    exposure_recompute(apply=True)
    call_command("platform_ready", "--once")
    assert platform_ready().ready

    rows = reconciliation_run()
    critical = [(r.dimension, r.subject, r.details) for r in rows if r.status == "CRITICAL"]
    assert not critical, critical
    for order in (internal_rest, hl_rest):
        order.refresh_from_db()
        assert order.status == "OPEN" and order.hold_amount > 0
    assert place(side="BUY", order_type="MARKET", size="0.01").status == "FILLED"  # and it trades on


def test_a_rounding_residue_is_ok_while_a_cent_warns_and_a_dollar_is_critical() -> None:
    from risk.reconciliation import classify

    # the funding mirror's false P0: 0.00009 USDC on a 0.5 USDC payment is 0.018 %, but only dust
    assert classify(D("-0.499887"), D("-0.499977"))[1] == "OK"
    assert classify(D("-0.4998871"), D("-0.4998874"))[1] == "OK"  # equal at the stored 6 decimals
    assert classify(D("100"), D("100.05"))[1] == "WARN"  # 0.05 %, above the 0.01 USDC floor
    assert classify(D("1000"), D("1002"))[1] == "CRITICAL"  # 0.2 % and 2 USDC
    assert classify(D("500"), D("500.9"))[1] == "WARN"  # 0.18 %, but under the 1 USDC critical floor
    # positions in coins have no floor: a lot of 0.001 BTC missing is a mismatch
    assert classify(D("0.002"), D("0.001"), unit="coins")[1] == "CRITICAL"
