"""The stress view predicts exactly what a real shock then liquidates, and changes nothing itself."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from risk.detection import liquidation_sweep
from risk.liquidation_execute import liquidations_drain
from risk.stress import stress_run
from trading.models import Position
from trading.orders.input import order_input
from trading.orders.place import order_place

pytestmark = pytest.mark.usefixtures("internalization_on")
D = Decimal


def _open(user: Any, leverage: int, side: str = "BUY", mode: str = "ISOLATED") -> None:
    order_place(
        user=user,
        inp=order_input(
            asset="BTC", side=side, order_type="MARKET", size="0.1", leverage=leverage, margin_mode=mode
        ),
    )


def test_the_stress_count_matches_what_a_real_shock_liquidates(
    make_trader: Any, fund: Any, set_quote: Any
) -> None:
    set_quote("BTC", "80000", bid="80000", ask="80000")
    for leverage, side in ((5, "BUY"), (10, "BUY"), (20, "BUY"), (40, "BUY"), (25, "SELL"), (40, "SELL")):
        user = make_trader()
        fund(user, "20000")
        _open(user, leverage, side)
    cross_user = make_trader()
    fund(cross_user, "450")  # a thin cross account: its long dies on a 5 % drop
    _open(cross_user, 20, "BUY", mode="CROSS")

    result = stress_run(shocks={"BTC": D("-0.05")})
    predicted = set(result.liquidated_position_ids)
    assert result.marks_after["BTC"] == D("76000")
    assert predicted and Position.objects.filter(status="OPEN").count() == 7  # nothing changed
    # B-book: users are net long 0.3 BTC (4 isolated longs + 1 cross long − 2 shorts): the platform gains
    assert result.bbook_pnl_change == D("0.3") * D(4000)

    set_quote("BTC", "76000", bid="76000", ask="76000")
    liquidation_sweep(marks={"BTC": D("76000")}, wake=False)
    liquidations_drain(budget_s=30)
    actual = set(Position.objects.filter(status="LIQUIDATED").values_list("pk", flat=True))
    assert actual == predicted
    assert result.liquidations["INTERNAL"]["count"] == len(actual)
