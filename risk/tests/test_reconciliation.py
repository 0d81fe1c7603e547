"""Reconciliation: each dimension detects an injected mismatch and fails closed (sandbox for HL)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from risk.hedge import hedge_evaluate
from risk.reconciliation import reconciliation_latest, reconciliation_run
from risk.tests.test_hedge import Venue, set_exposure
from routing.models import RoutingState
from sandbox.testing import SandboxProcess
from trading.hl_accounts import hl_sandbox_accounts_setup
from trading.markets import hl_info, markets_sync
from trading.venues.hl import reset_gateways
from xbit_admin.alerts.models import Alert

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
D = Decimal


@pytest.fixture(scope="module")
def sandbox_url() -> Iterator[str]:
    with SandboxProcess(seed=44, config={"hyperliquid": {"clock": "real"}}) as sb:
        yield sb.urls["hyperliquid"]


@pytest.fixture
def venue(sandbox_url: str, settings: Any, internalization_on: None) -> Iterator[Venue]:
    settings.HL_API_URL = sandbox_url
    settings.HL_TIMEOUT_SECONDS = 3.0
    v = Venue(sandbox_url)
    v.control("reset")
    v.control("prices/pause")
    reset_gateways()
    markets_sync(info=hl_info(base_url=sandbox_url))
    hl_sandbox_accounts_setup(base_url=sandbox_url)
    v.refresh_quote("BTC")
    yield v
    reset_gateways()


def statuses(rows: list[Any], dimension: str) -> dict[str, str]:
    return {r.subject: r.status for r in rows if r.dimension == dimension}


def test_a_clean_platform_reconciles_ok_on_every_dimension(venue: Venue) -> None:
    rows = reconciliation_run()
    assert {r.dimension for r in rows} >= {"ledger", "exposure", "hl_trading"}
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
