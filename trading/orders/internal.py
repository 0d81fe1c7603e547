"""INTERNAL execution: the margin check, the fill against HL's book at its touch (taker) or a resting
limit order's hold, and the resting limit orders filled when HL's book reaches them (maker)."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from core.errors import ErrorCode
from core.money import (
    ZERO,
)
from trading import netting
from trading.account import AccountState, account_state
from trading.config import TradingSettings, trading_settings
from trading.execution import (
    DIRECTION,
    FillRequest,
)
from trading.marketdata import Quote, get_quote, get_quotes
from trading.models import (
    MarginMode,
    Market,
    Order,
    OrderEvent,
    Position,
    Source,
)
from trading.orders.fill import fill_locked, quotes_with
from trading.orders.input import market_for
from trading.orders.state import (
    OPEN_STATUSES,
    LockedRead,
    ensure_written,
    hold_release,
    lock_and_read,
    order_status_set,
    position_for_key,
    reject_order,
    route_fee_rate,
)
from wallets.ledger import (
    AccountRef,
    TransferSpec,
    ledger_post,
)
from wallets.models import AccountKind, TransferKind

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ INTERNAL


def internal_execute(
    *, order: Order, market: Market, quote: Quote, settings: TradingSettings, locked: LockedRead
) -> Order:
    positions = locked.positions
    if order.order_type == Order.Type.MARKET:
        price = quote.ask if order.side == "BUY" else quote.bid
        if not price:
            return reject_order(locked, order, ErrorCode.STALE_PRICE, "No book to fill against.")
        slippage = (
            order.slippage_bps if order.slippage_bps is not None else settings.market_default_slippage_bps
        )
        mark = quote.mark
        assert mark is not None
        if abs(price - mark) * 10_000 > mark * slippage:
            return reject_order(
                locked,
                order,
                ErrorCode.SLIPPAGE_EXCEEDED,
                f"Fill price {price} is more than {slippage} bps from mark {quote.mark}.",
            )
        return internal_fill(
            order=order,
            market=market,
            price=price,
            maker=False,
            settings=settings,
            positions=positions,
            locked=locked,
            quote=quote,
        )

    # LIMIT: marketable now → take the top of the book; otherwise rest in the internal queue
    touch = quote.ask if order.side == "BUY" else quote.bid
    assert order.limit_price is not None
    marketable = touch is not None and (
        touch <= order.limit_price if order.side == "BUY" else touch >= order.limit_price
    )
    if marketable and touch is not None:
        if order.tif == Order.Tif.ALO:
            return reject_order(
                locked, order, ErrorCode.INVALID_PRICE, "Post-only order would have matched immediately."
            )
        return internal_fill(
            order=order,
            market=market,
            price=touch,
            maker=False,
            settings=settings,
            positions=positions,
            locked=locked,
            quote=quote,
        )
    ensure_written(locked)
    if order.tif == Order.Tif.IOC:
        order.status = Order.Status.CANCELLED
        order.save(update_fields=["status", "updated_at"])
        OrderEvent.objects.create(order=order, status=order.status, detail={"reason": "IOC could not match"})
        return order
    return internal_rest(order=order, market=market, settings=settings, positions=positions, locked=locked)


def margin_check(
    *,
    locked: LockedRead,
    order: Order,
    price: Decimal,
    positions: list[Position],
    fee_rate: Decimal,
    state: AccountState,
    hold: Decimal = ZERO,
) -> Order | None:
    """Enough free money for the part of the order that opens or grows exposure (spec 02 pre-trade):
    isolated needs cash ≥ IM + fee; cross needs available-to-trade ≥ IM + fee. Returns the order
    rejected (INSUFFICIENT_MARGIN), or None when it may go on."""
    if order.reduce_only:
        return None
    key = position_for_key(
        positions, asset=order.asset, source=order.route or "", margin_mode=order.margin_mode
    )
    direction = DIRECTION[order.side]
    effect = netting.apply_fill(
        netting.PositionState(
            1 if key and key.direction == "LONG" else -1, key.size, key.entry_price, key.isolated_margin
        )
        if key
        else netting.FLAT,
        direction,
        order.size,
        price,
    )
    needed = netting.initial_margin_for(effect.opened_size, price, order.leverage) + netting.fee_for(
        order.size, price, fee_rate
    )
    if needed <= ZERO:
        return None
    free = state.cash if order.margin_mode == MarginMode.ISOLATED else state.available_to_trade
    free += hold  # an order's own hold is released when it fills
    if free < needed:
        return reject_order(
            locked,
            order,
            ErrorCode.INSUFFICIENT_MARGIN,
            "Not enough margin for this order.",
            required=str(needed),
            available=str(max(free, ZERO)),
        )
    return None


def internal_fill(
    *,
    order: Order,
    market: Market,
    price: Decimal,
    maker: bool,
    settings: TradingSettings,
    positions: list[Position],
    locked: LockedRead,
    quote: Quote,
    hold: Decimal = ZERO,
    fill_size: Decimal | None = None,
) -> Order:
    """Fill (the rest of) an internal order at ``price``: margin checked, then everything computed in
    memory from the locking read and written in ONE round trip (``fill_locked``)."""
    fee_rate = route_fee_rate(settings, Source.INTERNAL, maker=maker)
    # one read of balances and marks serves the margin check, the fill and the liquidation prices after it
    quotes = quotes_with(quote, positions)
    state = account_state(cash=locked.cash, order_holds=locked.holds, positions=positions, quotes=quotes)
    rejected = margin_check(
        locked=locked,
        order=order,
        price=price,
        positions=positions,
        fee_rate=fee_rate,
        state=state,
        hold=hold,
    )
    if rejected is not None:
        return rejected
    target = (
        order.position
        if order.reduce_only
        else position_for_key(
            positions, asset=order.asset, source=Source.INTERNAL, margin_mode=order.margin_mode
        )
    )
    size = fill_size or order.remaining
    req = FillRequest.for_order(
        order,
        source=Source.INTERNAL,
        size=size,
        price=price,
        fee_rate=fee_rate,
        maker=maker,
        reserve_share=settings.client_loss_reserve_share,
    )
    status = Order.Status.FILLED if order.filled_size + size == order.size else Order.Status.PARTIALLY_FILLED
    return fill_locked(
        order=order,
        req=req,
        target=target,
        locked=locked,
        quotes=quotes,
        hold=hold,
        status=status,
        detail={"price": str(price), "size": str(size)},
    )


def internal_rest(
    *, order: Order, market: Market, settings: TradingSettings, positions: list[Position], locked: LockedRead
) -> Order:
    """Park the order in the internal queue with a hold of IM + maker fee at its limit price."""
    assert order.limit_price is not None
    ensure_written(locked)
    fee_rate = route_fee_rate(settings, Source.INTERNAL, maker=True)
    open_count = Order.objects.filter(user_id=order.user_id, status__in=OPEN_STATUSES).count()
    if open_count > settings.max_open_orders_per_user:
        return reject_order(
            locked,
            order,
            ErrorCode.RATE_LIMITED,
            f"At most {settings.max_open_orders_per_user} open orders.",
        )
    hold = ZERO
    if not order.reduce_only:
        hold = netting.initial_margin_for(order.size, order.limit_price, order.leverage) + netting.fee_for(
            order.size, order.limit_price, fee_rate
        )
        quotes = get_quotes(sorted({p.asset for p in positions})) if positions else {}
        state = account_state(cash=locked.cash, order_holds=locked.holds, positions=positions, quotes=quotes)
        free = (
            state.cash
            if order.margin_mode == MarginMode.ISOLATED
            else min(state.cash, state.available_to_trade)
        )
        if free < hold:
            return reject_order(
                locked,
                order,
                ErrorCode.INSUFFICIENT_MARGIN,
                "Not enough margin to rest this order.",
                required=str(hold),
                available=str(max(free, ZERO)),
            )
        ledger_post(
            key=f"order-hold:{order.pk}",
            transfers=[
                TransferSpec(
                    AccountRef.user(order.user_id, AccountKind.CASH),
                    AccountRef.user(order.user_id, AccountKind.ORDER_HOLD, sub=f"order:{order.pk}"),
                    hold,
                    TransferKind.ORDER_HOLD,
                    "order",
                    order.pk,
                )
            ],
        )
    order.hold_amount = hold
    order.status = Order.Status.OPEN
    order.expires_at = timezone.now() + timedelta(days=settings.gtc_expiry_days)
    order.save(update_fields=["hold_amount", "status", "expires_at", "updated_at"])
    OrderEvent.objects.create(order=order, status=order.status, detail={"hold": str(hold)})
    return order


# ------------------------------------------------------------------------------------------ queue


def internal_limit_orders_crossing(*, asset: str, bid: Decimal | None, ask: Decimal | None) -> list[int]:
    """Resting INTERNAL orders that HL's book now touches (buy: ask ≤ limit; sell: bid ≥ limit)."""
    cond = Q()
    if ask:
        cond |= Q(side="BUY", limit_price__gte=ask)
    if bid:
        cond |= Q(side="SELL", limit_price__lte=bid)
    if not cond:
        return []
    return list(
        Order.objects.filter(cond, asset=asset, route=Source.INTERNAL, status__in=OPEN_STATUSES)
        .order_by("created_at")
        .values_list("id", flat=True)[:500]
    )


def internal_limit_fill(*, order_id: int) -> Order | None:
    """Fill a resting INTERNAL limit order at its limit price (maker fee) if the book still touches it.
    Safe to call twice: the second call finds the order filled and does nothing."""
    order = Order.objects.filter(pk=order_id).only("user_id", "asset").first()
    if order is None:
        return None
    settings = trading_settings()
    quote = get_quote(order.asset)
    if quote is None:
        return None
    with transaction.atomic():
        locked = lock_and_read(
            order.user_id, draw_fill_ids=True, asset=order.asset, margin_mode=order.margin_mode
        )
        order = Order.objects.select_for_update(of=("self",)).select_related("position").get(pk=order_id)
        if order.status not in OPEN_STATUSES or order.route != Source.INTERNAL:
            return order
        touch = quote.ask if order.side == "BUY" else quote.bid
        if not touch or (touch > order.limit_price if order.side == "BUY" else touch < order.limit_price):
            return order
        market = market_for(order.asset)
        positions = locked.positions
        if order.reduce_only and (order.position is None or order.position.status != Position.Status.OPEN):
            hold_release(order)
            order_status_set(order, Order.Status.CANCELLED, reason="position closed")
            order.save(update_fields=["status", "hold_amount", "updated_at"])
            return order
        if order.reduce_only and order.position is not None:
            # the locked instance, so the fill and the liquidation prices see one object
            order.position = next((p for p in positions if p.pk == order.position_id), order.position)
        size = (
            min(order.remaining, order.position.size)
            if order.reduce_only and order.position
            else order.remaining
        )
        filled = internal_fill(
            order=order,
            market=market,
            price=order.limit_price,
            maker=True,
            settings=settings,
            positions=positions,
            locked=locked,
            quote=quote,
            hold=order.hold_amount,
            fill_size=size,
        )
        if locked.rejection is None:
            return filled
        # a resting order that cannot be filled now (e.g. margin) stays as it was: nothing of this
        # attempt is kept, and a later touch tries again
        transaction.set_rollback(True)
    return Order.objects.get(pk=order_id)
