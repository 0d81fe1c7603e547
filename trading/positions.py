"""Position services: close at market on the position's own venue, isolated margin added or removed,
the leverage setting per asset and margin mode, and the reduce-only close of a HYPERLIQUID position
through the trading account that liquidation and system closes use (``reduce_only_close``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.accounts.models import User
from core.errors import ApplicationError, ErrorCode
from core.locks import user_lock
from core.money import (
    MONEY_INPUT,
    SIZE_INPUT,
    ZERO,
    DecimalInputError,
    decimal_from_input,
)
from trading import margin
from trading.config import trading_settings
from trading.models import (
    Fill,
    LeverageSetting,
    MarginMode,
    Order,
    Position,
    Source,
)
from trading.orders.hyperliquid import resolve
from trading.orders.input import decimal_field, market_for, order_input, quote_or_fail
from trading.orders.place import order_place
from trading.orders.state import account_state_of, liquidation_prices_save, open_positions
from wallets.ledger import (
    AccountRef,
    TransferSpec,
    ledger_post,
)
from wallets.models import AccountKind, TransferKind

logger = logging.getLogger(__name__)


def position_close(
    *, user: User, position_id: int, size: Any = None, client_order_id: str | None = None, by: str = "client"
) -> Order:
    """Close all or part of a position at market on its own venue (spec 02 Closing). ``by``: as for
    ``order_place`` ("staff" for a dealer's close of a client's position)."""
    position = Position.objects.filter(user=user, pk=position_id, status=Position.Status.OPEN).first()
    if position is None:
        raise ApplicationError(ErrorCode.NOT_FOUND, "No such open position.")
    amount = (
        position.size
        if size in (None, "")
        else decimal_field(size, ErrorCode.INVALID_SIZE, "size", SIZE_INPUT)
    )
    if amount > position.size:
        raise ApplicationError(
            ErrorCode.INVALID_SIZE,
            "Cannot close more than the position's size.",
            {"position_size": str(position.size)},
        )
    inp = order_input(
        asset=position.asset,
        side="SELL" if position.direction == Position.Direction.LONG else "BUY",
        order_type="MARKET",
        size=amount,
        margin_mode=position.margin_mode,
        reduce_only=True,
        client_order_id=client_order_id,
        position_id=position.pk,
        slippage_bps=trading_settings().max_slippage_bps,
    )
    return order_place(user=user, inp=inp, by=by)


@transaction.atomic
def position_margin_adjust(*, user: User, position_id: int, amount: Any, idempotency_key: str) -> Position:
    """Add (amount > 0) or remove (amount < 0) isolated margin. Removing must leave equity ≥ IM at the
    current mark (spec 03). The liquidation price is recomputed."""
    user_lock(user.pk)
    position = (
        Position.objects.select_for_update()
        .filter(user=user, pk=position_id, status=Position.Status.OPEN)
        .first()
    )
    if position is None:
        raise ApplicationError(ErrorCode.NOT_FOUND, "No such open position.")
    if position.margin_mode != MarginMode.ISOLATED:
        raise ApplicationError(ErrorCode.INVALID_STATE, "Only isolated positions have their own margin.")
    try:
        delta = decimal_from_input(amount, MONEY_INPUT, signed=True)
    except DecimalInputError as exc:
        raise ApplicationError(
            ErrorCode.INVALID_AMOUNT, f"amount {exc.message}.", {"field": "amount", "reason": exc.reason}
        ) from None
    cash = AccountRef.user(user.pk, AccountKind.CASH)
    iso = AccountRef.user(user.pk, AccountKind.ISOLATED_MARGIN, sub=f"position:{position.pk}")
    if delta > ZERO:
        spec = TransferSpec(cash, iso, delta, TransferKind.MARGIN_FREEZE, "position", position.pk)
    else:
        quote = quote_or_fail(position.asset, trading_settings())
        side = margin.Side.LONG if position.direction == Position.Direction.LONG else margin.Side.SHORT
        assert quote.mark is not None
        removable = margin.isolated_removable_margin(
            side, position.entry_price, quote.mark, position.size, position.isolated_margin, position.leverage
        )
        if -delta > removable:
            raise ApplicationError(
                ErrorCode.INSUFFICIENT_MARGIN,
                "That would leave the position below its initial margin.",
                {"removable": str(max(removable, ZERO))},
            )
        spec = TransferSpec(iso, cash, -delta, TransferKind.MARGIN_RELEASE, "position", position.pk)
    posting = ledger_post(key=f"margin-adjust:{user.pk}:{idempotency_key}", transfers=[spec])
    if not posting.replayed:
        position.isolated_margin += delta
        position.updated_at = timezone.now()
        position.save(update_fields=["isolated_margin", "updated_at"])
        liquidation_prices_save(account_state_of(user.pk, open_positions(user.pk)))
        position.refresh_from_db()
    return position


@transaction.atomic
def leverage_set(*, user: User, asset: str, margin_mode: str, leverage: int) -> LeverageSetting:
    """The leverage for the next orders of this asset and margin mode. An open cross position takes
    the new leverage only if the account stays within its initial margin; an open isolated position
    keeps its leverage (add or remove margin instead)."""
    user_lock(user.pk)
    market = market_for(asset)
    if (
        not isinstance(leverage, int)
        or isinstance(leverage, bool)
        or not 1 <= leverage <= market.max_leverage
    ):
        raise ApplicationError(
            ErrorCode.LEVERAGE_EXCEEDED,
            f"Leverage must be between 1 and {market.max_leverage}.",
            {"max_leverage": market.max_leverage},
        )
    margin_mode = str(margin_mode).upper()
    if margin_mode not in MarginMode.values:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "margin_mode must be ISOLATED or CROSS.")
    positions = open_positions(user.pk, lock=True)
    affected = [p for p in positions if p.asset == market.asset and p.margin_mode == margin_mode]
    if affected and margin_mode == MarginMode.ISOLATED:
        raise ApplicationError(
            ErrorCode.INVALID_STATE,
            "An open isolated position keeps its leverage; add or remove margin instead.",
        )
    if affected:
        before = {p.pk: p.leverage for p in affected}
        for p in affected:
            p.leverage = leverage
        state = account_state_of(user.pk, positions)
        if state.cross.available_to_trade <= ZERO and leverage < min(before.values()):
            raise ApplicationError(ErrorCode.INSUFFICIENT_MARGIN, "Not enough margin for that leverage.")
        Position.objects.bulk_update(affected, ["leverage"])
    setting, _ = LeverageSetting.objects.update_or_create(
        user=user,
        asset=market.asset,
        margin_mode=margin_mode,
        defaults={"leverage": leverage, "updated_at": timezone.now()},
    )
    return setting


# ------------------------------------------------------------------------------------------ reduce-only close (risk)


@dataclass
class HlCloseResult:
    filled_size: Decimal
    avg_price: Decimal | None
    fills: list[Fill] = field(default_factory=list)
    complete: bool = False
    error: str = ""
    order_id: int | None = None


def reduce_only_close(
    *, position: Position, size: Decimal, idempotency_key: str, is_liquidation: bool = False
) -> HlCloseResult:
    """A market close of a HYPERLIQUID position through the trading account (reduce-only for the user's
    position; a plain IOC on HL, whose account nets every user), settled at HL's fills. Idempotent on ``idempotency_key`` (an order with that client id is reused, never re-sent).
    Raises VENUE_ERROR when HL refuses or cannot be reached."""
    if position.source != Source.HYPERLIQUID:
        raise ValueError("reduce_only_close is for HYPERLIQUID positions")
    client_id = ("liq:" if is_liquidation else "sys:") + idempotency_key
    size = min(size, position.size)
    inp = order_input(
        asset=position.asset,
        side="SELL" if position.direction == Position.Direction.LONG else "BUY",
        order_type="MARKET",
        size=size,
        margin_mode=position.margin_mode,
        reduce_only=True,
        client_order_id=client_id[:64],
        position_id=position.pk,
        slippage_bps=trading_settings().max_slippage_bps,
    )
    order = order_place(user=position.user, inp=inp, by="system")
    if order.status == Order.Status.ACCEPTED:
        order = resolve(order=order)
    fills = list(Fill.objects.filter(order=order))
    return HlCloseResult(
        filled_size=order.filled_size,
        avg_price=order.avg_fill_price,
        fills=fills,
        complete=order.filled_size >= size,
        error=order.error_message,
        order_id=order.pk,
    )
