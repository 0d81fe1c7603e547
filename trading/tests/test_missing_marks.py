"""A cross account whose asset has no mark for a moment (Redis restarted and the feed has not yet
rewritten the quote; a breaker holds the price): every position in that asset stands in with one mark,
so the account's liquidation prices are still computed — not refused as a mixed snapshot."""

from __future__ import annotations

from decimal import Decimal

from trading import margin
from trading.liquidation.prices import lean_liquidation_prices
from trading.margin_cross import stand_in_marks
from trading.marketdata import Quote
from trading.models import MarginMode, Position

D = Decimal
TABLE = margin.MarginTable.single(50)


def _cross(pk: int, source: str, size: str, entry: str) -> Position:
    return Position(
        pk=pk,
        user_id=1,
        asset="BTC",
        source=source,
        direction=Position.Direction.LONG,
        size=D(size),
        entry_price=D(entry),
        leverage=10,
        margin_mode=MarginMode.CROSS,
        status=Position.Status.OPEN,
    )


def test_the_stand_in_is_one_value_per_asset() -> None:
    assert stand_in_marks([("BTC", D("2")), ("ETH", D("5")), ("BTC", D("3"))]) == {
        "BTC": D("2"),
        "ETH": D("5"),
    }


def test_liquidation_prices_of_two_positions_in_an_asset_without_a_quote() -> None:
    def prices(quotes: dict[str, Quote]) -> list[Decimal | None]:
        positions = [_cross(1, "INTERNAL", "0.1", "99944.85"), _cross(2, "HYPERLIQUID", "0.2", "99967")]
        lean_liquidation_prices(positions, cash=D("3000"), holds=D("0"), quotes=quotes, table=lambda _: TABLE)
        return [p.liquidation_price for p in positions]

    without_quote = prices({})
    # each position fell back to its own entry as its mark: the account was refused, the prices None
    assert all(price is not None for price in without_quote), without_quote
    assert without_quote[0] == without_quote[1]  # one cross liquidation price per asset
    # one-way positions in one asset have one liquidation price, whatever the mark it is found from
    quote = Quote(asset="BTC", mark=D("99950"), bid=D("99949"), ask=D("99951"), mid=D("99950"))
    assert prices({"BTC": quote}) == without_quote


def test_the_account_view_of_two_positions_in_an_asset_without_a_quote(markets: None) -> None:
    from trading.account import account_state

    positions = [_cross(1, "INTERNAL", "0.1", "99944.85"), _cross(2, "HYPERLIQUID", "0.2", "99967")]
    state = account_state(cash=D("3000"), order_holds=D("0"), positions=positions, quotes={})
    internal, on_hl = state.positions
    # one mark for the asset, the one the summary used; a liquidation price for each (it was None)
    assert internal.mark == on_hl.mark == D("99944.85")
    assert internal.liquidation_price is not None and internal.liquidation_price == on_hl.liquidation_price
