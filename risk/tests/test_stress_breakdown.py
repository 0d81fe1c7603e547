"""The stress result per asset (what the console's stress page and its CSV show): the users' net INTERNAL
exposure, the B-book's and the hedge's P&L under the shock, the hedge coverage, and the positions the
shock liquidates, each adding up to the platform-wide figures."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from risk.hedge_models import HedgePosition
from risk.stress import stress_run
from trading.models import Position
from trading.orders.input import order_input
from trading.orders.place import order_place

pytestmark = pytest.mark.usefixtures("internalization_on")
D = Decimal


def _open(user: Any, asset: str, side: str, size: str, leverage: int) -> Position:
    order = order_place(
        user=user,
        inp=order_input(
            asset=asset, side=side, order_type="MARKET", size=size, leverage=leverage, margin_mode="ISOLATED"
        ),
    )
    assert order.status == "FILLED" and order.route == "INTERNAL", (order.status, order.error_message)
    return Position.objects.get(user=user, asset=asset, status="OPEN")


@pytest.fixture
def book(make_trader: Any, fund: Any, set_quote: Any) -> dict[str, Position]:
    """BTC at 80,000: users long 0.1 (10×) and 0.05 (40×, dies on −5 %), short 0.05 (40×) → net long
    0.1 BTC; one ETH long at 3,000. The hedge account holds 0.05 BTC long (half the users' net)."""
    set_quote("BTC", "80000", bid="80000", ask="80000")
    set_quote("ETH", "3000", bid="3000", ask="3000")
    positions = {}
    for name, asset, side, size, leverage in (
        ("long10", "BTC", "BUY", "0.1", 10),
        ("long40", "BTC", "BUY", "0.05", 40),
        ("short40", "BTC", "SELL", "0.05", 40),
        ("eth", "ETH", "BUY", "1", 5),
    ):
        user = make_trader()
        fund(user, "20000")
        positions[name] = _open(user, asset, side, size, leverage)
    HedgePosition.objects.create(asset="BTC", size=D("0.05"), entry_price=D("80000"))
    return positions


def test_each_asset_carries_its_exposure_pnl_coverage_and_liquidations(book: dict[str, Position]) -> None:
    result = stress_run(shocks={"BTC": D("-0.05")})
    btc, eth = result.per_asset["BTC"], result.per_asset["ETH"]

    assert (btc.mark_before, btc.mark_after, btc.shock) == (D(80000), D(76000), D("-0.05"))
    assert btc.positions == 3 and btc.users_net_size == D("0.1")
    assert btc.net_exposure == D(8000) and btc.net_exposure_after == D(7600)
    assert btc.bbook_pnl_change == D(400)  # users net long lose 0.1 × 4,000; the B-book is their counterparty
    assert btc.hedge_notional == D(4000) and btc.hedge_pnl_change == D(-200)
    assert btc.platform_pnl_change == D(200) and btc.hedge_coverage == D("0.5")
    # only the 40× long dies on a 5 % drop; its notional at the shocked mark
    assert btc.liquidations == 1 and btc.liquidation_notional == D("0.05") * D(76000)
    assert btc.liquidations_by_venue == {"INTERNAL": 1}
    assert result.liquidated_position_ids == [book["long40"].pk]

    assert eth.shock == 0 and eth.positions == 1 and eth.net_exposure == D(3000)
    assert eth.bbook_pnl_change == 0 and eth.liquidations == 0 and eth.hedge_coverage == 0  # unhedged

    # the platform-wide figures are the sums of the assets'
    assert result.bbook_pnl_change == D(400) and result.hedge_pnl_change == D(-200)
    assert result.platform_pnl_change == D(200) and result.hedge_coverage == D("0.5")
    assert result.liquidation_count == 1 and result.liquidation_notional == D(3800)
    assert (
        result.bankrupt_total == btc.bankrupt and result.reserve_after == result.reserve_before - btc.bankrupt
    )
    assert result.positions_evaluated == 4
    assert Position.objects.filter(status="OPEN").count() == 4  # nothing changed


def test_the_result_as_the_console_reads_it(book: dict[str, Position]) -> None:
    out = stress_run(shocks={"BTC": D("0.10")}).as_dict()
    rows = {row["asset"]: row for row in out["per_asset"]}
    assert set(rows) == {"BTC", "ETH"}
    # BTC up 10 %: users gain, the B-book loses 0.1 × 8,000, the hedge earns half of it back
    assert rows["BTC"]["bbook_pnl_change"] == D(-800) and rows["BTC"]["hedge_pnl_change"] == D(400)
    assert rows["BTC"]["platform_pnl_change"] == D(-400) and rows["BTC"]["hedge_coverage"] == D("0.5")
    assert out["platform_pnl_change"] == D(-400) and out["hedge_coverage"] == D("0.5")
    assert out["liquidation_count"] == 1 and out["liquidations"]["INTERNAL"]["count"] == 1  # the 40× short
    assert out["liquidated_position_ids"] == [book["short40"].pk]


def test_a_shocked_asset_without_a_mark_is_reported_not_a_crash(book: dict[str, Position]) -> None:
    result = stress_run(shocks={"BTC": D("-0.05"), "DOGE": D("-0.5")})
    doge = result.per_asset["DOGE"]
    assert doge.mark_before is None and doge.positions == 0 and doge.platform_pnl_change == 0
    assert result.per_asset["BTC"].bbook_pnl_change == D(400)
