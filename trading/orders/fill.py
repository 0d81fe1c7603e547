"""Booking one execution under the user's lock in ONE round trip (``fill_locked``): hold released,
order updated, fill, position(s), ledger posting, outbox event and the liquidation prices that moved.
Shared by internal fills and HL fills booked from HL's answer (``hl_order_fill``)."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.utils import timezone

from core.money import (
    ZERO,
)
from core.sql import prepared
from core.sql.batch import SqlBatch, insert_statement, next_ids, update_statement
from core.sql.transaction import atomic_commit_with_last_batch
from trading.account import account_state
from trading.config import trading_settings
from trading.execution import (
    FillRequest,
    FillResult,
    fill_ids_needed,
    fill_plan,
    fill_statements,
    is_liquidation_order,
)
from trading.marketdata import Quote, get_quote, get_quotes
from trading.models import (
    Fill,
    Order,
    OrderEvent,
    Position,
    Source,
)
from trading.orders.state import (
    LockedRead,
    liquidation_prices_set,
    lock_and_read,
    order_event,
    position_for_key,
    route_fee_rate,
)
from wallets.ledger import AccountRef, TransferSpec, posting_prepare, posting_write
from wallets.models import AccountKind, TransferKind

logger = logging.getLogger(__name__)


def fill_locked(
    *,
    order: Order,
    req: FillRequest,
    target: Position | None,
    locked: LockedRead,
    quotes: dict[str, Quote],
    hold: Decimal,
    status: str,
    detail: dict[str, Any],
    order_fields: tuple[str, ...] = (),
) -> Order:
    """Book one execution of ``order`` (``req``, on ``target``) under the user's lock, in ONE round
    trip: the hold released (``hold``), the order (inserted in its final state when it is new, else
    updated: fill fields plus ``order_fields``) and its ``status`` event, the fill, position(s), ledger
    posting, outbox event and the liquidation prices that moved. Shared by the internal fills and the
    HL fills booked from HL's answer."""
    batch = SqlBatch()
    balances = dict(locked.balances)
    if hold > ZERO:
        release = posting_prepare(
            key=f"order-hold-release:{order.pk}",
            transfers=[
                TransferSpec(
                    AccountRef.user(order.user_id, AccountKind.ORDER_HOLD, sub=f"order:{order.pk}"),
                    AccountRef.user(order.user_id, AccountKind.CASH),
                    hold,
                    TransferKind.ORDER_RELEASE,
                    "order",
                    order.pk,
                )
            ],
        )
        posting_write(batch, release, balances, replay_safe=False)
        order.hold_amount -= hold
    fill_ids, position_id = fill_ids_for(locked, req, target)
    plan = fill_plan(
        req=req,
        position=target,
        cash_available=locked.cash + hold,
        fill_ids=fill_ids,
        position_id=position_id,
    )
    result: FillResult = plan.result
    previous, size, price = order.filled_size, req.size, req.price
    order.filled_size = previous + size
    order.avg_fill_price = (
        price
        if not previous
        else ((order.avg_fill_price or price) * previous + price * size) / order.filled_size
    )
    order.fee_total += result.fee
    order.status = status
    order.updated_at = timezone.now()
    if order.position_id is None and result.position is not None:
        order.position = result.position
    event = order_event(order, status, **detail)
    remaining = [
        p for p in locked.positions if p.status == Position.Status.OPEN and p not in result.closed_positions
    ]
    if result.position is not None and result.position not in remaining:
        remaining.append(result.position)
    after = account_state(
        cash=result.cash_after, order_holds=locked.holds - hold, positions=remaining, quotes=quotes
    )
    moved = liquidation_prices_set(after)

    writes = locked.order_writes_take()
    if writes is not None:
        writes.events.append(event)
        writes.queue(batch)
    else:
        batch.add(*update_statement(order, ORDER_FILL_FIELDS + order_fields))
        batch.add(*insert_statement(OrderEvent, [event], with_pk=False))
    fill_statements(batch, plan, balances)
    written = {p.pk for p in plan.updated} | ({plan.created.pk} if plan.created is not None else set())
    for p in moved:
        if p.pk not in written:
            batch.add(*update_statement(p, ("liquidation_price",)))
    prepared.run(batch, locked.commit)
    return order


ORDER_FILL_FIELDS = (
    "filled_size",
    "avg_fill_price",
    "fee_total",
    "status",
    "updated_at",
    "position",
    "hold_amount",
)


def fill_ids_for(
    locked: LockedRead, req: FillRequest, target: Position | None
) -> tuple[list[int], int | None]:
    """Fill and position ids for this fill: those drawn with the locking read, plus (a flip, or a
    guess that missed) one more round trip for the rest."""
    n_fills, new_position = fill_ids_needed(req, target)
    fill_ids = locked.fill_ids[:n_fills]
    position_id = locked.position_id if new_position else None
    missing_fills = n_fills - len(fill_ids)
    if missing_fills > 0 or (new_position and position_id is None):
        batch = SqlBatch()
        i_ids = next_ids(
            batch, {Fill: max(missing_fills, 0), Position: int(new_position and position_id is None)}
        )
        drawn = list((prepared.run(batch)[i_ids] or [()])[0])
        fill_ids += drawn[: max(missing_fills, 0)]
        if new_position and position_id is None:
            position_id = drawn[-1]
    return fill_ids, position_id


def quotes_with(quote: Quote, positions: list[Position]) -> dict[str, Quote]:
    """Marks for the account state: the order's own quote (already read) and one pipelined read of the
    other assets the user holds."""
    others = sorted({p.asset for p in positions} - {quote.asset})
    quotes = get_quotes(others) if others else {}
    quotes[quote.asset] = quote
    return quotes


def hl_order_fill(
    *, order: Order, hl_oid: int, size: Decimal, price: Decimal, quote: Quote | None = None
) -> Order:
    """HL answered ``filled`` for an order we sent (total ``size`` at the average ``price``): book it at
    once in ONE transaction under the user's lock — the hold released, the order done (FILLED, or
    CANCELLED for the unfilled rest of an IOC), the fill at HL's average price (VWAP entry), position,
    the user's fee, ledger, outbox event — like an internal fill. HL's own per-trade details (trade
    ids, the fee HL charged the platform) follow asynchronously: ``orders.hl_fills.fill_details_reconcile``.

    Idempotent: only an order still ACCEPTED is booked (a resolver that got there first, having applied
    HL's trades one by one, wins; this call then returns the order as it is). ``quote``: the order's
    quote read before the send (the liquidation prices use it); read again when not given. ``order``
    supplies only what never changes (user, asset, margin mode): its state is re-read under the lock."""
    if size <= ZERO or price <= ZERO:
        raise ValueError(f"HL reported a fill of {size} at {price}")
    settings = trading_settings()
    if quote is None or quote.asset != order.asset:
        quote = get_quote(order.asset)
    with atomic_commit_with_last_batch() as commit:
        locked = lock_and_read(
            order.user_id,
            draw_fill_ids=True,
            asset=order.asset,
            margin_mode=order.margin_mode,
            source=Source.HYPERLIQUID,
            lock_order=order.pk,
        )
        locked.commit = commit  # the fill's writes are the last: the COMMIT goes with them
        if locked.order is None:
            raise Order.DoesNotExist(order.pk)
        order = locked.order
        if order.status != Order.Status.ACCEPTED:
            return order
        positions = locked.positions
        if order.reduce_only:
            # HL executed it: book it on the position it reduces, or (that one closed meanwhile) as a
            # position of its own, as HL's account now holds it
            target = next(
                (p for p in positions if p.pk == order.position_id and p.status == Position.Status.OPEN), None
            )
        else:
            target = position_for_key(
                positions, asset=order.asset, source=Source.HYPERLIQUID, margin_mode=order.margin_mode
            )
        if target is not None and order.position_id == target.pk:
            order.position = target  # the locked instance: the fill and liquidation prices see one object
        size = min(size, order.remaining)
        fee_rate = route_fee_rate(settings, Source.HYPERLIQUID, maker=False)  # answered at once: it crossed
        req = FillRequest.for_order(
            order,
            source=Source.HYPERLIQUID,
            size=size,
            price=price,
            fee_rate=fee_rate,
            maker=False,
            reserve_share=settings.client_loss_reserve_share,
            is_liquidation=is_liquidation_order(order),
            hl_fill_price=price,
            idempotency_key=f"hl-fill:{order.pk}",
        )
        done = order.filled_size + size >= order.size
        order.hl_oid = hl_oid
        quotes = (
            quotes_with(quote, positions) if quote is not None else get_quotes({p.asset for p in positions})
        )
        return fill_locked(
            order=order,
            req=req,
            target=target,
            locked=locked,
            quotes=quotes,
            hold=order.hold_amount,
            status=Order.Status.FILLED if done else Order.Status.CANCELLED,
            detail={"filled": str(order.filled_size + size), "avg_price": str(price), "hl_oid": hl_oid},
            order_fields=("hl_oid",),
        )
