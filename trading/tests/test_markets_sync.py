"""Markets synced from HL ``meta`` through the SDK against the sandbox: rows, margin tables, listing-change
log, never deleting, cached selectors invalidated on write, the command, the demo seeder, readiness."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command

from sandbox.testing import SandboxProcess
from trading import margin
from trading.markets import hl_info, markets_sync, seed_markets_demo
from trading.models import MarginTable, Market, MarketListingLog
from trading.selectors import feed_readiness, margin_table_for, market_get, markets_list

pytestmark = pytest.mark.django_db

DEFAULT_ASSETS = ["BTC", "ETH", "SOL", "ARB", "DOGE", "AVAX", "LINK", "HYPE"]
# The "next listing": SOL gone from the universe (indices shift), PEPE listed, BTC down to 25x on
# table 55, HYPE's table 52 with new tiers.
NEXT_LISTING = {
    "assets": [
        {"name": "BTC", "maxLeverage": 25, "marginTableId": 55},
        {"name": "ETH"},
        {"name": "ARB"},
        {"name": "DOGE"},
        {"name": "AVAX"},
        {"name": "LINK"},
        {"name": "HYPE"},
        {"name": "PEPE", "szDecimals": 0, "maxLeverage": 5, "price": "0.00002"},
    ],
    "margin_tables": {"52": {"description": "tiered 10x", "tiers": [[0, 10], [10_000_000, 5]]}},
}


@pytest.fixture(scope="module")
def hl_url() -> Iterator[str]:
    with SandboxProcess(seed=7) as sb:
        yield sb.urls["hyperliquid"]


@pytest.fixture(scope="module")
def next_hl_url() -> Iterator[str]:
    with SandboxProcess(seed=8, config={"hyperliquid": NEXT_LISTING}) as sb:
        yield sb.urls["hyperliquid"]


def test_the_first_sync_lists_every_asset_and_margin_table_from_meta(hl_url: str) -> None:
    report = markets_sync(info=hl_info(base_url=hl_url))
    assert report.listed == DEFAULT_ASSETS
    assert list(Market.objects.values_list("asset", flat=True)) == DEFAULT_ASSETS  # HL index order
    btc = Market.objects.get(asset="BTC")
    assert (btc.hl_index, btc.sz_decimals, btc.max_leverage, btc.margin_table_id) == (0, 5, 40, 56)
    assert not btc.is_delisted and btc.trading_state == "ACTIVE"
    assert set(MarginTable.objects.values_list("table_id", flat=True)) == {10, 52, 54, 55, 56}
    assert MarginTable.objects.get(table_id=56).tiers == [
        {"lowerBound": "0.0", "maxLeverage": 40},
        {"lowerBound": "150000000.0", "maxLeverage": 20},
    ]
    assert MarketListingLog.objects.filter(change="listed").count() == len(DEFAULT_ASSETS)


def test_a_second_sync_of_the_same_meta_changes_nothing(hl_url: str) -> None:
    markets_sync(info=hl_info(base_url=hl_url))
    logs = MarketListingLog.objects.count()
    report = markets_sync(info=hl_info(base_url=hl_url))
    assert report.changes == 0 and report.unchanged == len(DEFAULT_ASSETS)
    assert MarketListingLog.objects.count() == logs


def test_a_changed_listing_is_logged_and_nothing_is_deleted(hl_url: str, next_hl_url: str) -> None:
    markets_sync(info=hl_info(base_url=hl_url))
    report = markets_sync(info=hl_info(base_url=next_hl_url))

    assert report.listed == ["PEPE"] and report.delisted == ["SOL"]
    assert "BTC" in report.changed and "HYPE" in report.changed
    sol = Market.objects.get(asset="SOL")  # kept, marked delisted
    assert sol.is_delisted and sol.hl_index >= 1_000_000  # its index went to the next listing
    assert Market.objects.get(asset="ARB").hl_index == 2
    assert Market.objects.get(asset="PEPE").hl_index == 7

    def last(asset: str) -> MarketListingLog:
        return MarketListingLog.objects.filter(asset=asset).order_by("-id").first()  # type: ignore[return-value]

    btc = last("BTC")
    assert btc.change == "changed"
    assert btc.before == {"max_leverage": 40, "margin_table_id": 56}
    assert btc.after == {"max_leverage": 25, "margin_table_id": 55}
    assert last("SOL").change == "delisted"
    assert last("ARB").before == {"hl_index": 3} and last("ARB").after == {"hl_index": 2}
    hype = last("HYPE")
    assert hype.change == "changed" and hype.after["hl_index"] == 6
    assert hype.before["margin_tiers"][1] == {"lowerBound": "20000000.0", "maxLeverage": 5}
    assert hype.after["margin_tiers"][1] == {"lowerBound": "10000000.0", "maxLeverage": 5}
    assert last("PEPE").change == "listed"

    # … and going back relists SOL
    report = markets_sync(info=hl_info(base_url=hl_url))
    assert report.relisted == ["SOL"] and Market.objects.get(asset="SOL").hl_index == 2
    assert Market.objects.get(asset="PEPE").is_delisted


@pytest.mark.django_db(transaction=True)  # the cache keeps only committed data
def test_market_get_is_served_from_memory_and_reloads_after_a_sync(hl_url: str, next_hl_url: str) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    markets_sync(info=hl_info(base_url=hl_url))
    assert market_get("BTC").max_leverage == 40

    def queries_for_100_reads() -> int:
        with CaptureQueriesContext(connection) as ctx:
            for _ in range(100):
                market_get("BTC")
        return len(ctx.captured_queries)

    # Zero queries once cached. Other test sessions sharing this Redis may invalidate "markets" at
    # any moment (the mechanism working), so allow a few attempts.
    assert min(queries_for_100_reads() for _ in range(5)) == 0
    markets_sync(info=hl_info(base_url=next_hl_url))
    assert market_get("BTC").max_leverage == 25  # invalidated by the write, no TTL
    assert [m.asset for m in markets_list()][-1] == "PEPE"
    assert "SOL" not in [m.asset for m in markets_list()]
    assert "SOL" in [m.asset for m in markets_list(include_delisted=True)]
    with pytest.raises(Market.DoesNotExist):
        market_get("NOPE")


def test_margin_table_for_uses_hl_tiers_or_a_single_tier(hl_url: str) -> None:
    markets_sync(info=hl_info(base_url=hl_url))
    btc = margin_table_for(market_get("BTC"))
    assert [t.max_leverage for t in btc.tiers] == [40, 20] and btc.leverage_cap == 40
    assert btc.max_leverage_at(margin.Decimal("200000000")) == 20
    arb = margin_table_for(market_get("ARB"))
    assert [t.max_leverage for t in arb.tiers] == [10]


def test_the_command_and_the_demo_seeder_sync_or_skip_quietly(hl_url: str, settings: Any) -> None:
    out = io.StringIO()
    call_command("sync_markets", "--url", hl_url, stdout=out)
    assert "markets synced" in out.getvalue() and Market.objects.count() == len(DEFAULT_ASSETS)

    class Cmd:
        stdout = io.StringIO()

    settings.HL_API_URL = "http://127.0.0.1:9"  # nothing listens there
    seed_markets_demo(Cmd)
    assert "not reachable" in Cmd.stdout.getvalue()
    settings.HL_API_URL = hl_url
    seed_markets_demo(Cmd)
    assert "unchanged" in Cmd.stdout.getvalue()


def test_feed_readiness_needs_a_feed_once_markets_are_listed(hl_url: str) -> None:
    assert feed_readiness()["ok"]  # nothing listed, nothing to feed
    markets_sync(info=hl_info(base_url=hl_url))
    check = feed_readiness()
    assert not check["ok"] and "never reported" in check["error"]
