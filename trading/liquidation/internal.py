"""The one-by-one liquidation close of an INTERNAL position at the trigger mark, inside the caller's
transaction (``user_lock`` taken first, the position row locked): the reference path that
:class:`~trading.liquidation.batch.InternalLiquidationBatch` runs for many positions at once."""

from __future__ import annotations

from decimal import Decimal

from django.db import connection

from core.accounts.models import User
from core.errors import ApplicationError, ErrorCode
from trading.execution import FillResult, fill_apply
from trading.liquidation.announce import after_close
from trading.liquidation.records import OPEN_ORDER_STATUSES, LiquidationClose
from trading.liquidation.settlement import (
    cash_balance,
    internal_close,
    liquidation_fee_rate,
    liquidation_request,
    settle,
)
from trading.models import MarginMode, Order, Position, Source
from trading.orders.cancel import order_cancel
from wallets.ledger import ledger_post


def _require_lock_context() -> None:
    if not connection.in_atomic_block:
        raise RuntimeError("liquidation services run inside the caller's transaction (user_lock first)")


def _liquidation_fill(
    position: Position,
    price: Decimal,
    idempotency_key: str,
    reserve_share: Decimal,
    cash: Decimal,
    fee_rate: Decimal,
) -> FillResult:
    return fill_apply(
        req=liquidation_request(position, price, idempotency_key, reserve_share, fee_rate),
        position=position,
        cash_available=cash,
    )


def liquidation_close_internal(
    *,
    position: Position,
    mark: Decimal,
    idempotency_key: str,
    reserve_share: Decimal,
    fee_rate: Decimal | None = None,
) -> LiquidationClose:
    """Close an INTERNAL position at ``mark`` as a liquidation (see :mod:`trading.liquidation`), one by one:
    the reference path (``InternalLiquidationBatch`` does the same for many positions at once).

    Caller: inside a transaction that took ``user_lock(position.user_id)`` first and locked the row.
    Idempotency: ``idempotency_key`` names the ledger postings (``key`` and ``key:settle``).
    ``fee_rate``: the liquidation fee rate (default: INTERNAL's taker rate).
    """
    _require_lock_context()
    if position.source != Source.INTERNAL or position.status != Position.Status.OPEN:
        raise ApplicationError(ErrorCode.INVALID_STATE, "Not an open INTERNAL position.")
    isolated = position.margin_mode == MarginMode.ISOLATED
    margin_before = position.isolated_margin
    direction = position.direction
    size = position.size
    entry = position.entry_price
    user_id = position.user_id
    if not isolated:
        _cancel_internal_orders(user_id)
    cash = cash_balance(user_id)
    if fee_rate is None:
        fee_rate = liquidation_fee_rate(Source.INTERNAL)
    result = _liquidation_fill(position, mark, idempotency_key, reserve_share, cash, fee_rate)
    settlement = settle(
        user_id=user_id,
        position_id=position.pk,
        isolated=isolated,
        margin_before=margin_before,
        result=result,
        reserve_share=reserve_share,
    )
    if settlement.transfers:
        ledger_post(key=f"{idempotency_key}:settle", transfers=settlement.transfers)
    close = internal_close(
        position_id=position.pk,
        user_id=user_id,
        asset=position.asset,
        margin_mode=position.margin_mode,
        direction=direction,
        entry=entry,
        size=size,
        mark=mark,
        settlement=settlement,
        result=result,
    )
    after_close(close, trigger_id=idempotency_key)
    return close


def _cancel_internal_orders(user_id: int) -> None:
    """A cross liquidation first cancels the user's resting INTERNAL orders so their holds count as
    cash (HL cancels open orders before liquidating too). Runs under the caller's user lock."""

    ids = list(
        Order.objects.filter(user_id=user_id, route=Source.INTERNAL, status__in=OPEN_ORDER_STATUSES)
        .order_by("id")
        .values_list("id", flat=True)
    )
    if not ids:
        return

    user = User.objects.get(pk=user_id)
    for order_id in ids:
        order_cancel(user=user, order_id=order_id)
