"""INTERNAL execution (spec 02): fills at HL's touch, margin, fees, netting, the 80/20 client-loss split,
rejections that freeze nothing, idempotent retries."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from core.errors import ApplicationError
from routing.models import RoutingDecisionLog
from trading.models import Fill, Order, OrderEvent, Position
from trading.orders.cancel import order_cancel
from trading.orders.input import order_input
from trading.orders.place import order_place
from trading.positions import position_close, position_margin_adjust
from wallets.ledger import AccountRef, account_balance
from wallets.models import AccountKind

pytestmark = pytest.mark.usefixtures("internalization_on")
D = Decimal


def cash(user: Any) -> Decimal:
    return account_balance(AccountRef.user(user.pk, AccountKind.CASH))


def platform(code: str) -> Decimal:
    return account_balance(AccountRef.platform(code))


def place(user: Any, **kwargs: Any) -> Order:
    kwargs.setdefault("order_type", "MARKET")
    kwargs.setdefault("asset", "BTC")
    return order_place(user=user, inp=order_input(**kwargs))


def test_a_small_market_buy_fills_internally_at_the_best_ask(trader: Any, set_quote: Any) -> None:
    set_quote("BTC", "80000", bid="79999", ask="80001")
    order = place(trader, side="BUY", size="0.1", leverage=10, margin_mode="ISOLATED")
    assert order.status == "FILLED" and order.route == "INTERNAL"
    assert order.avg_fill_price == D("80001") and order.fee_total == D("3.600045")
    position = Position.objects.get(user=trader, status="OPEN")
    assert (position.source, position.direction, position.size, position.entry_price) == (
        "INTERNAL",
        "LONG",
        D("0.1"),
        D("80001"),
    )
    assert position.isolated_margin == D("800.01")
    assert cash(trader) == D("100000") - D("800.01") - D("3.600045")
    assert account_balance(
        AccountRef.user(trader.pk, AccountKind.ISOLATED_MARGIN, sub=f"position:{position.pk}")
    ) == D("800.01")
    assert platform("fee_revenue") == D("3.600045")
    decision = RoutingDecisionLog.objects.get(order_id=order.pk)
    assert (decision.route, decision.reason, decision.threshold, decision.notional) == (
        "INTERNAL",
        "threshold",
        D("10000"),
        D("8000"),
    )
    assert list(OrderEvent.objects.filter(order=order).values_list("status", flat=True)) == [
        "NEW",
        "ACCEPTED",
        "FILLED",
    ]
    # the displayed liquidation price follows spec 03's isolated formula for the asset's tier
    assert position.liquidation_price is not None and D("70000") < position.liquidation_price < D("80001")


def test_closing_at_a_loss_splits_it_80_20_between_platform_and_reserve(trader: Any, set_quote: Any) -> None:
    set_quote("BTC", "80000", bid="79999", ask="80001")
    place(trader, side="BUY", size="0.1", leverage=10, margin_mode="ISOLATED")
    position = Position.objects.get(user=trader, status="OPEN")
    set_quote("BTC", "79000", bid="78999", ask="79001")
    close = position_close(user=trader, position_id=position.pk)
    assert close.status == "FILLED" and close.avg_fill_price == D("78999")
    position.refresh_from_db()
    assert position.status == "CLOSED" and position.size == 0 and position.realized_pnl == D("-100.2")
    assert platform("bbook_pnl") == D("80.16") and platform("risk_reserve") == D("20.04")
    assert cash(trader) == D("100000") - D("3.600045") - D("3.554955") - D("100.2")
    assert (
        account_balance(
            AccountRef.user(trader.pk, AccountKind.ISOLATED_MARGIN, sub=f"position:{position.pk}")
        )
        == 0
    )


def test_closing_at_a_profit_is_paid_by_the_b_book(trader: Any, set_quote: Any) -> None:
    set_quote("ETH", "3000", bid="2999.9", ask="3000.1")
    place(trader, asset="ETH", side="SELL", size="2", leverage=5, margin_mode="CROSS")
    position = Position.objects.get(user=trader, status="OPEN")
    assert position.direction == "SHORT" and position.isolated_margin == 0
    set_quote("ETH", "2900", bid="2899.9", ask="2900.1")
    position_close(user=trader, position_id=position.pk)
    # short from 2999.9, bought back at 2900.1: +199.6
    assert platform("bbook_pnl") == D("-199.6") and platform("risk_reserve") == 0
    fees = (D("2") * D("2999.9") * D("0.00045")).quantize(D("0.000001")) + (
        D("2") * D("2900.1") * D("0.00045")
    ).quantize(D("0.000001"))
    assert cash(trader) == D("100000") + D("199.6") - fees


def test_a_partial_close_keeps_the_entry_and_releases_margin_pro_rata(trader: Any, set_quote: Any) -> None:
    set_quote("BTC", "80000", bid="80000", ask="80000")
    place(trader, side="BUY", size="0.1", leverage=10, margin_mode="ISOLATED")
    position = Position.objects.get(user=trader, status="OPEN")
    position_close(user=trader, position_id=position.pk, size="0.04")
    position.refresh_from_db()
    assert (
        position.size == D("0.06")
        and position.entry_price == D("80000")
        and position.isolated_margin == D("480")
    )


def test_same_side_fills_average_the_entry(trader: Any, set_quote: Any) -> None:
    set_quote("BTC", "80000", bid="80000", ask="80000")
    place(trader, side="BUY", size="0.05", leverage=10)
    set_quote("BTC", "82000", bid="82000", ask="82000")
    place(trader, side="BUY", size="0.05", leverage=10)
    position = Position.objects.get(user=trader, status="OPEN")
    assert position.size == D("0.1") and position.entry_price == D("81000")


def test_an_opposite_fill_larger_than_the_position_flips_it(trader: Any, set_quote: Any) -> None:
    set_quote("BTC", "80000", bid="80000", ask="80000")
    place(trader, side="BUY", size="0.05", leverage=10, margin_mode="ISOLATED")
    old = Position.objects.get(user=trader, status="OPEN")
    set_quote("BTC", "81000", bid="81000", ask="81000")
    order = place(trader, side="SELL", size="0.08", leverage=10, margin_mode="ISOLATED")
    old.refresh_from_db()
    new = Position.objects.get(user=trader, status="OPEN")
    assert old.status == "CLOSED" and old.realized_pnl == D("50")
    assert (new.direction, new.size, new.entry_price, new.isolated_margin) == (
        "SHORT",
        D("0.03"),
        D("81000"),
        D("243"),
    )
    assert Fill.objects.filter(order=order).count() == 2  # the close leg and the open leg


def test_an_order_above_the_threshold_goes_to_hl_which_is_not_available_yet(
    trader: Any, set_quote: Any
) -> None:
    set_quote("BTC", "80000")
    before = cash(trader)
    with pytest.raises(ApplicationError) as exc:
        place(trader, side="BUY", size="0.2", client_order_id="big-1")  # 16,000 > 10,000
    assert exc.value.code == "NO_ROUTE"
    order = Order.objects.get(pk=exc.value.details["order_id"])
    assert order.status == "REJECTED" and order.route == "HYPERLIQUID" and order.hold_amount == 0
    assert cash(trader) == before and not Position.objects.exists()
    assert RoutingDecisionLog.objects.get(order_id=order.pk).route == "HYPERLIQUID"
    # the retry returns the same rejection, not a second order
    with pytest.raises(ApplicationError) as again:
        place(trader, side="BUY", size="0.2", client_order_id="big-1")
    assert again.value.details["order_id"] == order.pk and Order.objects.count() == 1


def test_a_client_order_id_replay_returns_the_same_order(trader: Any, set_quote: Any) -> None:
    set_quote("BTC", "80000")
    first = place(trader, side="BUY", size="0.01", client_order_id="abc")
    second = place(trader, side="BUY", size="0.01", client_order_id="abc")
    assert first.pk == second.pk and Fill.objects.count() == 1
    with pytest.raises(ApplicationError) as exc:
        place(trader, side="BUY", size="0.02", client_order_id="abc")
    assert exc.value.code == "IDEMPOTENCY_CONFLICT" and exc.value.http_status == 409


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"size": "0.000001"}, "INVALID_SIZE"),  # BTC has 5 size decimals
        ({"size": "-1"}, "INVALID_SIZE"),
        ({"size": "abc"}, "INVALID_SIZE"),
        ({"size": "0.0001"}, "MIN_NOTIONAL"),  # $8 < $10
        ({"size": "0.01", "leverage": 41}, "LEVERAGE_EXCEEDED"),
        (
            {"size": "0.01", "order_type": "LIMIT", "limit_price": "80000.5"},
            "INVALID_PRICE",
        ),  # 6 significant figures
        ({"size": "0.01", "order_type": "LIMIT"}, "INVALID_PRICE"),
        ({"size": "0.01", "asset": "NOPE"}, "UNKNOWN_SYMBOL"),
        ({"size": "0.01", "slippage_bps": 100_000}, "VALIDATION_ERROR"),
        ({"size": "2"}, "KYC_LIMIT_EXCEEDED"),  # 160,000 > the 100,000 an unverified account may order
    ],
)
def test_bad_input_gets_a_clear_code_and_freezes_nothing(
    trader: Any, set_quote: Any, kwargs: dict[str, Any], code: str
) -> None:
    set_quote("BTC", "80000")
    before = cash(trader)
    with pytest.raises(ApplicationError) as exc:
        place(trader, side="BUY", **kwargs)
    assert exc.value.code == code
    assert cash(trader) == before and not Order.objects.exists()


def test_not_enough_margin_is_refused_with_the_amounts(make_trader: Any, fund: Any, set_quote: Any) -> None:
    poor = make_trader()
    fund(poor, "50")
    set_quote("BTC", "80000", bid="80000", ask="80000")
    with pytest.raises(ApplicationError) as exc:
        place(poor, side="BUY", size="0.01", leverage=10)  # IM 80 + fee
    assert exc.value.code == "INSUFFICIENT_MARGIN"
    assert D(exc.value.details["required"]) > D("80") and D(exc.value.details["available"]) == D("50")
    assert cash(poor) == D("50") and not Position.objects.exists()


def test_a_restricted_user_may_only_reduce(trader: Any, set_quote: Any) -> None:
    set_quote("BTC", "80000")
    place(trader, side="BUY", size="0.01")
    trader.trading_restricted = True
    trader.save()
    with pytest.raises(ApplicationError) as exc:
        place(trader, side="BUY", size="0.01")
    assert exc.value.code == "USER_RESTRICTED"
    place(trader, side="SELL", size="0.01", reduce_only=True)
    assert not Position.objects.filter(status="OPEN").exists()


def test_reduce_only_never_increases_a_position(trader: Any, set_quote: Any) -> None:
    set_quote("BTC", "80000")
    with pytest.raises(ApplicationError) as exc:
        place(trader, side="SELL", size="0.01", reduce_only=True)
    assert exc.value.code == "REDUCE_ONLY"
    place(trader, side="BUY", size="0.01")
    with pytest.raises(ApplicationError) as exc:
        place(trader, side="SELL", size="0.02", reduce_only=True)
    assert exc.value.code == "REDUCE_ONLY"


def test_slippage_beyond_the_limit_is_refused(trader: Any, set_quote: Any) -> None:
    set_quote("BTC", "80000", bid="79000", ask="81000")
    with pytest.raises(ApplicationError) as exc:
        place(trader, side="BUY", size="0.01", slippage_bps=50)
    assert exc.value.code == "SLIPPAGE_EXCEEDED"
    assert Order.objects.get().status == "REJECTED" and cash(trader) == D("100000")


def test_a_stale_book_is_not_internalized(trader: Any, set_quote: Any) -> None:
    from trading.marketdata import quote_update

    set_quote("BTC", "80000")
    quote_update("BTC", at=1.0, bid=D("79999"), ask=D("80001"))  # the book was last seen long ago
    with pytest.raises(ApplicationError) as exc:
        place(trader, side="BUY", size="0.01")
    assert exc.value.code == "NO_ROUTE"
    assert RoutingDecisionLog.objects.get().reason == "stale_price"


def test_a_resting_limit_order_holds_margin_then_fills_at_its_price_when_touched(
    trader: Any, set_quote: Any
) -> None:
    from trading.orders.internal import internal_limit_fill, internal_limit_orders_crossing

    set_quote("BTC", "80000", bid="79999", ask="80001")
    order = place(
        trader,
        side="BUY",
        size="0.1",
        order_type="LIMIT",
        limit_price="79000",
        leverage=10,
        margin_mode="ISOLATED",
    )
    assert order.status == "OPEN" and order.hold_amount == D("790") + D("1.185")
    assert cash(trader) == D("100000") - order.hold_amount
    assert internal_limit_orders_crossing(asset="BTC", bid=D("79999"), ask=D("80001")) == []
    set_quote("BTC", "79000", bid="78998", ask="78999")
    assert internal_limit_orders_crossing(asset="BTC", bid=D("78998"), ask=D("78999")) == [order.pk]
    filled = internal_limit_fill(order_id=order.pk)
    assert filled is not None and filled.status == "FILLED" and filled.avg_fill_price == D("79000")
    fill = Fill.objects.get(order=order)
    assert fill.liquidity == "MAKER" and fill.fee == D("1.185")
    assert cash(trader) == D("100000") - D("790") - D("1.185")
    assert (
        internal_limit_fill(order_id=order.pk).status == "FILLED" and Fill.objects.count() == 1
    )  # idempotent


def test_cancelling_a_resting_order_releases_its_hold(trader: Any, set_quote: Any) -> None:
    set_quote("BTC", "80000")
    order = place(trader, side="BUY", size="0.1", order_type="LIMIT", limit_price="70000", leverage=10)
    assert cash(trader) < D("100000")
    cancelled = order_cancel(user=trader, order_id=order.pk)
    assert cancelled.status == "CANCELLED" and cancelled.hold_amount == 0 and cash(trader) == D("100000")
    assert order_cancel(user=trader, order_id=order.pk).status == "CANCELLED"


def test_gtc_orders_expire_after_seven_days(trader: Any, set_quote: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from trading.orders.cancel import orders_expire

    set_quote("BTC", "80000")
    order = place(trader, side="BUY", size="0.1", order_type="LIMIT", limit_price="70000", leverage=10)
    assert order.expires_at is not None
    assert (order.expires_at - order.created_at) >= timedelta(days=7) - timedelta(seconds=1)
    assert orders_expire(now=timezone.now() + timedelta(days=6)) == 0
    assert orders_expire(now=timezone.now() + timedelta(days=7, seconds=1)) == 1
    order.refresh_from_db()
    assert order.status == "EXPIRED" and cash(trader) == D("100000")


def test_an_ioc_limit_that_cannot_match_is_cancelled_and_an_alo_that_would_match_is_rejected(
    trader: Any, set_quote: Any
) -> None:
    set_quote("BTC", "80000", bid="79999", ask="80001")
    ioc = place(trader, side="BUY", size="0.01", order_type="LIMIT", limit_price="79000", tif="IOC")
    assert ioc.status == "CANCELLED" and cash(trader) == D("100000")
    with pytest.raises(ApplicationError) as exc:
        place(trader, side="BUY", size="0.01", order_type="LIMIT", limit_price="81000", tif="ALO")
    assert exc.value.code == "INVALID_PRICE"


def test_isolated_margin_can_be_added_and_removed_within_limits(trader: Any, set_quote: Any) -> None:
    set_quote("BTC", "80000", bid="80000", ask="80000")
    place(trader, side="BUY", size="0.1", leverage=10, margin_mode="ISOLATED")
    position = Position.objects.get(status="OPEN")
    liq_before = position.liquidation_price
    position = position_margin_adjust(
        user=trader, position_id=position.pk, amount="200", idempotency_key="k1"
    )
    assert position.isolated_margin == D("1000") and position.liquidation_price < liq_before
    again = position_margin_adjust(user=trader, position_id=position.pk, amount="200", idempotency_key="k1")
    assert again.isolated_margin == D("1000")  # replayed, not added twice
    with pytest.raises(ApplicationError) as exc:
        position_margin_adjust(user=trader, position_id=position.pk, amount="-300", idempotency_key="k2")
    assert exc.value.code == "INSUFFICIENT_MARGIN"
    position = position_margin_adjust(
        user=trader, position_id=position.pk, amount="-200", idempotency_key="k3"
    )
    assert position.isolated_margin == D("800")
