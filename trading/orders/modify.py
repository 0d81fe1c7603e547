"""Modifying an open limit order's price and/or size.

* INTERNAL (resting in our queue): in place, in one transaction under the user's lock — the new price
  and size checked like a new order's, the hold re-computed at them and only the difference moved
  (enough free margin re-checked for an increase), an ``MODIFIED`` event. A new price the book already
  reaches fills at once at the touch as a taker (as a new order would); ALO refuses it.
* HYPERLIQUID: HL's ``modify`` is a cancel and a new order; the platform does the same through its own
  crash-safe paths: the intent is recorded on the order (``MODIFY_REQUESTED``), the order is cancelled
  on HL (fills before the cancel applied first), and a replacement is placed with a ``client_order_id``
  derived from the old order — so a repeated request (after a crash or a lost answer) finds the same
  replacement instead of placing a second. As on HL, a replacement that is refused leaves the old order
  cancelled; the answer carries the new order, which points back with ``replaces``."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.accounts.models import User
from core.errors import ApplicationError, ErrorCode
from core.money import PRICE_INPUT, SIZE_INPUT, ZERO
from core.text import ascii_int
from routing.decision import Route
from trading import margin, netting
from trading.account import account_state
from trading.config import trading_settings
from trading.marketdata import get_quote, get_quotes
from trading.models import MarginMode, Order, OrderEvent, Source
from trading.orders.cancel import order_cancel
from trading.orders.input import decimal_field, market_for, order_input
from trading.orders.internal import internal_fill
from trading.orders.place import order_place
from trading.orders.state import OPEN_STATUSES, lock_and_read, route_fee_rate
from wallets.ledger import AccountRef, TransferSpec, ledger_post
from wallets.models import AccountKind, TransferKind

logger = logging.getLogger(__name__)

MODIFIED = "MODIFIED"
MODIFY_REQUESTED = "MODIFY_REQUESTED"


REPLACEMENT_PREFIX = "xbit-mod-"


def replacement_client_id(order_id: int) -> str:
    return f"{REPLACEMENT_PREFIX}{order_id}"


def replaced_order_id(order: Order) -> int | None:
    """The order an HL modify's replacement replaced (its client_order_id says which), else None."""
    cid = order.client_order_id or ""
    rest = cid[len(REPLACEMENT_PREFIX) :] if cid.startswith(REPLACEMENT_PREFIX) else ""
    return ascii_int(rest)  # a client may send "xbit-mod-²": isdigit() is true, int() raises


def order_modify(*, user: User, order_id: int, size: Any = None, limit_price: Any = None) -> Order:
    """Change an open limit order's price and/or size (see the module). ``size`` is what is left to fill
    after the change, as on HL (on an unfilled order: its size). Returns the order as it now is: the same
    order for INTERNAL, the replacement for HYPERLIQUID."""
    if size is None and limit_price is None:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "Give a new size, a new limit_price or both.")
    new_size = decimal_field(size, ErrorCode.INVALID_SIZE, "size", SIZE_INPUT) if size is not None else None
    new_price = (
        decimal_field(limit_price, ErrorCode.INVALID_PRICE, "limit_price", PRICE_INPUT)
        if limit_price is not None
        else None
    )
    order = Order.objects.filter(user=user, pk=order_id).first()
    if order is None:
        raise ApplicationError(ErrorCode.NOT_FOUND, "No such order.")
    if order.route == Source.HYPERLIQUID:
        return _hl_modify(user, order, new_size, new_price)
    return _internal_modify(user, order_id, new_size, new_price)


def _check(order: Order, size: Decimal, price: Decimal, filled: Decimal) -> None:
    """The new total ``size`` and ``price`` checked as a new order's would be (``filled``: what the
    order has filled and the new size must exceed)."""
    if order.order_type != Order.Type.LIMIT:
        raise ApplicationError(ErrorCode.INVALID_STATE, "Only a resting limit order can be modified.")
    market = market_for(order.asset)
    if not margin.is_valid_size(size, market.sz_decimals):
        raise ApplicationError(
            ErrorCode.INVALID_SIZE,
            f"Size must be a multiple of {Decimal(1).scaleb(-market.sz_decimals)} for {market.asset}.",
            {"field": "size"},
        )
    if not margin.is_valid_price(price, market.sz_decimals):
        raise ApplicationError(
            ErrorCode.INVALID_PRICE,
            "Price must have at most 5 significant figures and "
            f"{6 - market.sz_decimals} decimals for {market.asset}.",
            {"field": "limit_price", "nearest": str(margin.round_price(price, market.sz_decimals))},
        )
    if size <= filled:
        raise ApplicationError(
            ErrorCode.INVALID_SIZE,
            f"The order has already filled {filled}: the new size must be larger.",
            {"field": "size", "filled_size": str(filled)},
        )
    settings = trading_settings()
    if not order.reduce_only and (size - filled) * price < settings.min_order_value:
        raise ApplicationError(
            ErrorCode.MIN_NOTIONAL,
            f"Order value must be at least {settings.min_order_value} USDC.",
            {"min_order_value": str(settings.min_order_value)},
        )


def _open_or_fail(order: Order | None) -> Order:
    if order is None:
        raise ApplicationError(ErrorCode.NOT_FOUND, "No such order.")
    if order.status not in OPEN_STATUSES:
        raise ApplicationError(
            ErrorCode.INVALID_STATE, f"The order is {order.status}.", {"status": order.status}
        )
    return order


def _internal_modify(user: User, order_id: int, size: Decimal | None, price: Decimal | None) -> Order:
    settings = trading_settings()
    with transaction.atomic():
        head = Order.objects.filter(pk=order_id).values("asset", "margin_mode").get()
        locked = lock_and_read(
            user.pk,
            draw_fill_ids=True,
            asset=head["asset"],
            margin_mode=head["margin_mode"],
            lock_order=order_id,
        )
        order = _open_or_fail(locked.order)
        # ``size`` is what is left to fill after the change (HL's sense); the row keeps the total
        new_size = size + order.filled_size if size is not None else order.size
        new_price = price or order.limit_price
        assert new_price is not None
        _check(order, new_size, new_price, order.filled_size)
        if order.reduce_only and order.position_id is not None:
            position = next((p for p in locked.positions if p.pk == order.position_id), None)
            if position is not None and new_size - order.filled_size > position.size:
                raise ApplicationError(
                    ErrorCode.REDUCE_ONLY,
                    "A reduce-only order cannot be larger than the position.",
                    {"position_size": str(position.size)},
                )
        if (new_size, new_price) == (order.size, order.limit_price):
            return order  # the same modification again: nothing to do
        before = {"size": str(order.size), "limit_price": str(order.limit_price)}
        quote = get_quote(order.asset)
        touch = (quote.ask if order.side == "BUY" else quote.bid) if quote is not None else None
        marketable = touch is not None and (touch <= new_price if order.side == "BUY" else touch >= new_price)
        if marketable and order.tif == Order.Tif.ALO:
            raise ApplicationError(
                ErrorCode.INVALID_PRICE,
                "Post-only order would have matched immediately.",
                {"field": "limit_price"},
            )
        if marketable and quote is not None and not quote.is_book_fresh(settings.book_stale_seconds):
            raise ApplicationError(
                ErrorCode.STALE_PRICE, f"No live book for {order.asset}; try again shortly.", http_status=503
            )
        order.size, order.limit_price, order.updated_at = new_size, new_price, timezone.now()
        if marketable and quote is not None and touch is not None:
            if order.reduce_only and order.position_id is not None:
                target = next((p for p in locked.positions if p.pk == order.position_id), None)
                if target is None:
                    raise ApplicationError(
                        ErrorCode.INVALID_STATE, "The position this order reduces is closed."
                    )
                order.position = target
            order.save(update_fields=["size", "limit_price", "updated_at"])
            OrderEvent.objects.create(order=order, status=MODIFIED, detail={"from": before, "taker": True})
            filled = internal_fill(
                order=order,
                market=market_for(order.asset),
                price=touch,
                maker=False,
                settings=settings,
                positions=locked.positions,
                locked=locked,
                quote=quote,
                hold=order.hold_amount,
            )
            if locked.rejection is not None:
                transaction.set_rollback(True)  # the order stays as it was; the caller gets the reason
                raise locked.rejection
            return filled
        _hold_adjust(order, locked, settings)
        order.save(update_fields=["size", "limit_price", "hold_amount", "updated_at"])
        OrderEvent.objects.create(
            order=order, status=MODIFIED, detail={"from": before, "hold": str(order.hold_amount)}
        )
        return order


def _hold_adjust(order: Order, locked: Any, settings: Any) -> None:
    """Re-compute the resting order's hold at its new price and size and move only the difference
    (an increase needs that much free margin, as resting a new order would)."""
    assert order.limit_price is not None
    remaining = order.size - order.filled_size
    new_hold = ZERO
    if not order.reduce_only:
        fee_rate = route_fee_rate(settings, Source.INTERNAL, maker=True)
        new_hold = netting.initial_margin_for(remaining, order.limit_price, order.leverage) + netting.fee_for(
            remaining, order.limit_price, fee_rate
        )
    delta = new_hold - order.hold_amount
    if delta == ZERO:
        return
    if delta > ZERO:
        positions = locked.positions
        quotes = get_quotes(sorted({p.asset for p in positions})) if positions else {}
        state = account_state(cash=locked.cash, order_holds=locked.holds, positions=positions, quotes=quotes)
        free = (
            state.cash
            if order.margin_mode == MarginMode.ISOLATED
            else min(state.cash, state.available_to_trade)
        )
        if free < delta:
            raise ApplicationError(
                ErrorCode.INSUFFICIENT_MARGIN,
                "Not enough margin for the modified order.",
                {"required": str(delta), "available": str(max(free, ZERO))},
            )
    n = OrderEvent.objects.filter(order_id=order.pk, status=MODIFIED).count() + 1
    cash = AccountRef.user(order.user_id, AccountKind.CASH)
    hold = AccountRef.user(order.user_id, AccountKind.ORDER_HOLD, sub=f"order:{order.pk}")
    ledger_post(
        key=f"order-hold-modify:{order.pk}:{n}",
        transfers=[
            TransferSpec(
                cash if delta > ZERO else hold,
                hold if delta > ZERO else cash,
                abs(delta),
                TransferKind.ORDER_HOLD if delta > ZERO else TransferKind.ORDER_RELEASE,
                "order",
                order.pk,
            )
        ],
    )
    order.hold_amount = new_hold


def _hl_modify(user: User, order: Order, size: Decimal | None, price: Decimal | None) -> Order:
    client_id = replacement_client_id(order.pk)
    replacement = Order.objects.filter(user=user, client_order_id=client_id).first()
    if replacement is not None:
        return replacement  # asked again after it was done (a lost answer, a retry)
    requested = OrderEvent.objects.filter(order=order, status=MODIFY_REQUESTED).order_by("-id").first()
    if order.status == Order.Status.CANCELLED and requested is not None:
        # the cancel went through and the process died before the replacement: finish it
        return _hl_replace(user, order, requested.detail, client_id)
    order = _open_or_fail(order)
    new_size = size or order.remaining
    new_price = price or order.limit_price
    assert new_price is not None
    _check(order, new_size, new_price, ZERO)  # the replacement is a new order of new_size
    if order.hl_oid is None:
        raise ApplicationError(
            ErrorCode.INVALID_STATE, "The order is still being placed; try again in a moment."
        )
    intent = {"size": str(new_size), "limit_price": str(new_price)}
    OrderEvent.objects.create(order=order, status=MODIFY_REQUESTED, detail=intent)
    cancelled = order_cancel(user=user, order_id=order.pk)
    if cancelled.status != Order.Status.CANCELLED:
        raise ApplicationError(
            ErrorCode.INVALID_STATE,
            f"The order was {cancelled.status} on Hyperliquid before the modification.",
            {"status": cancelled.status},
        )
    return _hl_replace(user, cancelled, intent, client_id)


def _hl_replace(user: User, old: Order, intent: dict[str, Any], client_id: str) -> Order:
    inp = order_input(
        asset=old.asset,
        side=old.side,
        order_type=Order.Type.LIMIT,
        size=intent["size"],
        limit_price=intent["limit_price"],
        leverage=old.leverage,
        margin_mode=old.margin_mode,
        reduce_only=old.reduce_only,
        tif=old.tif,
        client_order_id=client_id,
        position_id=old.position_id,
    )
    try:
        # HL's modify keeps the order on HL: the replacement goes there whatever its notional
        new = order_place(user=user, inp=inp, venue=Route.HYPERLIQUID)
    finally:
        placed = (
            Order.objects.filter(user=user, client_order_id=client_id).values_list("id", flat=True).first()
        )
        if placed is not None and not OrderEvent.objects.filter(order=old, status="REPLACED").exists():
            OrderEvent.objects.create(order=old, status="REPLACED", detail={"by": placed})
    return new
