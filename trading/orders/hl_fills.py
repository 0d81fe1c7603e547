"""HL's trades of our orders, one by one (keyed on HL's trade id): from the user stream
(``ingest_fills``), its REST backfill (``backfill``) and the resolver (``apply_fills``); and the
per-order reconciliation of HL's trade ids and fees after an order booked from HL's answer."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.locks import user_lock
from core.money import (
    ZERO,
)
from trading.account import user_balances
from trading.config import trading_settings
from trading.execution import (
    FillRequest,
    fill_apply,
    is_liquidation_order,
)
from trading.models import (
    Fill,
    Order,
    OrderEvent,
    Position,
    Source,
)
from trading.orders.state import OPEN_STATUSES, hold_release, user_liquidation_prices_refresh
from trading.venues.hl import (
    HLFill,
    gateway,
)
from wallets.ledger import (
    AccountRef,
    TransferSpec,
    ledger_post,
)
from wallets.models import AccountKind, TransferKind

logger = logging.getLogger(__name__)


def since_ms(order: Order) -> int:
    return int((order.created_at - timedelta(seconds=5)).timestamp() * 1000)


def apply_fills(*, order_id: int, fills: list[HLFill], final: bool) -> Order:
    """Apply HL fills of one order (idempotent per HL trade id). ``final``: the order is done on HL (an
    IOC answered, or a cancel confirmed) — release what remains of the hold and close the order."""
    settings = trading_settings()
    with transaction.atomic():
        order = Order.objects.get(pk=order_id)
        user_lock(order.user_id)
        order = Order.objects.select_for_update(of=("self",)).select_related("position").get(pk=order_id)
        if order.status in Order.TERMINAL:
            # booked already (from HL's answer, or by a resolver or cancel that got there first)
            return order
        known = set(Fill.objects.filter(hl_tid__in=[f.tid for f in fills]).values_list("hl_tid", flat=True))
        fresh = [f for f in sorted(fills, key=lambda f: f.tid) if f.tid not in known and f.size > ZERO]
        for hl_fill in fresh:
            room = order.size - order.filled_size
            if room <= ZERO:
                break
            _apply_one(order, hl_fill, min(hl_fill.size, room), settings)
        if final or order.filled_size >= order.size:
            hold_release(order)
            if order.filled_size >= order.size:
                order.status = Order.Status.FILLED
            else:
                order.status = Order.Status.CANCELLED
                order.error_message = (
                    "" if order.filled_size else "Hyperliquid could not fill the order (IOC)."
                )
            order.updated_at = timezone.now()
            order.save(update_fields=["status", "hold_amount", "error_message", "updated_at"])
            OrderEvent.objects.create(
                order=order, status=order.status, detail={"filled": str(order.filled_size)}
            )
        elif fresh and order.status in (Order.Status.OPEN, Order.Status.ACCEPTED):
            order.status = Order.Status.PARTIALLY_FILLED
            order.save(update_fields=["status", "updated_at"])
            OrderEvent.objects.create(
                order=order, status=order.status, detail={"filled": str(order.filled_size)}
            )
        return order


def _apply_one(order: Order, hl_fill: HLFill, size: Decimal, settings: Any) -> None:
    fees = settings.fees[Source.HYPERLIQUID]
    maker = not hl_fill.crossed
    target = (
        order.position
        if order.reduce_only
        else Position.objects.filter(
            user_id=order.user_id,
            asset=order.asset,
            source=Source.HYPERLIQUID,
            margin_mode=order.margin_mode,
            status=Position.Status.OPEN,
        )
        .select_for_update()
        .first()
    )
    if order.reduce_only and target is not None:
        target = Position.objects.select_for_update().get(pk=target.pk)
        if target.status != Position.Status.OPEN:
            target = None

    cash = user_balances(order.user_id).get(AccountKind.CASH, ZERO)
    hold_share = _hold_share(order, size)
    if hold_share > ZERO:
        # the part of the hold that belongs to this fill comes back to cash first
        ledger_post(
            key=f"hl-hold-release:{order.pk}:{hl_fill.tid}",
            transfers=[
                TransferSpec(
                    AccountRef.user(order.user_id, AccountKind.ORDER_HOLD, sub=f"order:{order.pk}"),
                    AccountRef.user(order.user_id, AccountKind.CASH),
                    hold_share,
                    TransferKind.ORDER_RELEASE,
                    "order",
                    order.pk,
                )
            ],
        )
        order.hold_amount -= hold_share
        cash += hold_share
    result = fill_apply(
        req=FillRequest.for_order(
            order,
            source=Source.HYPERLIQUID,
            size=size,
            price=hl_fill.price,
            fee_rate=fees.rate(maker=maker),
            maker=maker,
            reserve_share=settings.client_loss_reserve_share,
            is_liquidation=is_liquidation_order(order),
            hl_fill_price=hl_fill.price,
            hl_fee=hl_fill.fee,
            hl_tid=hl_fill.tid if hl_fill.tid > 0 else None,
            idempotency_key=f"hl-fill:{order.pk}:{hl_fill.tid}",
            executed_at=trade_time(hl_fill),
        ),
        position=target,
        cash_available=cash,
    )
    if hl_fill.fee > ZERO:
        # what HL actually charged the platform's account: a cost against the fee revenue
        ledger_post(
            key=f"hl-fee:{order.pk}:{hl_fill.tid}",
            transfers=[
                TransferSpec(
                    AccountRef.platform(AccountKind.FEE_REVENUE),
                    AccountRef.platform(AccountKind.HL_PNL, sub="trading"),
                    hl_fill.fee,
                    TransferKind.TRADING_FEE,
                    "hl_fill",
                    hl_fill.tid,
                )
            ],
        )
    previous = order.filled_size
    order.filled_size = previous + size
    order.avg_fill_price = (
        hl_fill.price
        if not previous
        else ((order.avg_fill_price or hl_fill.price) * previous + hl_fill.price * size) / order.filled_size
    )
    order.fee_total += result.fee
    if order.position_id is None and result.position is not None:
        order.position = result.position
    order.updated_at = timezone.now()
    order.save(
        update_fields=["filled_size", "avg_fill_price", "fee_total", "position", "hold_amount", "updated_at"]
    )
    user_liquidation_prices_refresh(order.user_id)


def trade_time(hl_fill: HLFill) -> datetime | None:
    """HL's time of the trade (None when HL gave none)."""
    return datetime.fromtimestamp(hl_fill.time_ms / 1000, tz=UTC) if hl_fill.time_ms > 0 else None


def _hold_share(order: Order, size: Decimal) -> Decimal:
    if order.hold_amount <= ZERO:
        return ZERO
    remaining = order.size - order.filled_size
    if size >= remaining:
        return order.hold_amount
    return (order.hold_amount * size / remaining).quantize(Decimal("0.000001"), rounding=ROUND_DOWN)


# ------------------------------------------------------------------------------------------ resting fills (stream + backfill)


def ingest_fills(fills: list[HLFill]) -> int:
    """Fills of the trading account seen on the ``userFills`` stream or in a backfill (matched to our
    orders by oid): applied to our resting orders one by one (idempotent per trade id), and the trade
    details of orders booked from HL's answer reconciled (once per order). Returns how many orders
    changed."""
    by_oid: dict[int, list[HLFill]] = {}
    for f in fills:
        by_oid.setdefault(f.oid, []).append(f)
    if not by_oid:
        return 0
    changed = 0
    for order in Order.objects.filter(hl_oid__in=list(by_oid), status__in=OPEN_STATUSES):
        before = order.filled_size
        order = apply_fills(order_id=order.pk, fills=by_oid[order.hl_oid or 0], final=False)
        changed += order.filled_size != before
    pending = (
        Fill.objects.filter(
            order__hl_oid__in=list(by_oid),
            source=Source.HYPERLIQUID,
            hl_fee__isnull=True,
            hl_tid__isnull=True,
        )
        .values_list("order_id", "order__hl_oid")
        .distinct()
    )
    for order_id, oid in list(pending):
        changed += fill_details_reconcile(order_id=order_id, fills=by_oid.get(oid or 0, []))
    return changed


_USDC = Decimal("0.000001")


def fill_details_reconcile(*, order_id: int, fills: list[HLFill]) -> bool:
    """HL's own trades of an order that was booked from HL's answer (``orders.fill.hl_order_fill``: one
    fill at the average price, HL's fee not yet known): record them with the order (an ``HL_TRADES``
    event: trade ids, prices, sizes, fees), set ``hl_fee`` — what HL charged the platform, shared by
    size — on the order's fill rows, and book that cost against the fee revenue (``fee_revenue`` →
    ``hl_pnl``/trading, one transfer per trade id).

    Once per order: the order's fill rows still without ``hl_fee`` are claimed under their row locks
    (a second caller finds none and does nothing), and the posting's key ``hl-fee:<order>`` is the
    second line. Returns False, booking nothing, while HL's trades for the order do not yet add up to
    the size booked from the answer (the next stream message or backfill brings the rest)."""
    with transaction.atomic():
        rows = list(
            Fill.objects.select_for_update()
            .filter(order_id=order_id, source=Source.HYPERLIQUID, hl_fee__isnull=True, hl_tid__isnull=True)
            .order_by("id")
        )
        if not rows:
            return False
        # a resting order can fill partly on the stream (fills booked per trade id, fees included) and
        # the rest from HL's answer: only the trades not booked by id explain the rows booked without one
        booked_tids = set(
            Fill.objects.filter(order_id=order_id, hl_tid__isnull=False).values_list("hl_tid", flat=True)
        )
        trades = sorted((f for f in fills if f.size > ZERO and f.tid not in booked_tids), key=lambda f: f.tid)
        booked = sum((r.size for r in rows), ZERO)
        traded = sum((f.size for f in trades), ZERO)
        if traded != booked:
            if traded > booked:
                logger.error(
                    "HL trades of order %s add up to %s but %s was booked from HL's answer",
                    order_id,
                    traded,
                    booked,
                )
            return False
        hl_fee = sum((f.fee for f in trades), ZERO)
        left = hl_fee
        for i, row in enumerate(rows):
            share = (
                left
                if i == len(rows) - 1
                else (hl_fee * row.size / booked).quantize(_USDC, rounding=ROUND_DOWN)
            )
            row.hl_fee = share
            left -= share
        Fill.objects.bulk_update(rows, ["hl_fee"])
        _redate(rows, max((t for t in map(trade_time, trades) if t is not None), default=None))
        fee_revenue = AccountRef.platform(AccountKind.FEE_REVENUE)
        hl_pnl = AccountRef.platform(AccountKind.HL_PNL, sub="trading")
        transfers = [
            # what HL charged the platform's account is a cost against the fee revenue (a rebate the reverse)
            TransferSpec(
                *((fee_revenue, hl_pnl) if f.fee > ZERO else (hl_pnl, fee_revenue)),
                abs(f.fee),
                TransferKind.TRADING_FEE,
                "hl_fill",
                f.tid,
            )
            for f in trades
            if f.fee != ZERO
        ]
        if transfers:
            ledger_post(key=f"hl-fee:{order_id}", transfers=transfers)
        OrderEvent.objects.create(
            order_id=order_id,
            status="HL_TRADES",
            detail={
                "trades": [
                    {"tid": f.tid, "price": str(f.price), "size": str(f.size), "fee": str(f.fee)}
                    for f in trades
                ],
                "hl_fee": str(hl_fee),
                "vwap": str(sum((f.price * f.size for f in trades), ZERO) / traded),
            },
        )
    return True


def _redate(rows: list[Fill], traded_at: datetime | None) -> None:
    """Fills booked from HL's answer were dated when the answer arrived: date them (and the opening or
    closing of their positions, stamped with the same instant) at HL's trade time, so an order that
    traded just before a funding instant counts as held there, as HL counts it."""
    if traded_at is None:
        return
    for row in rows:
        booked_at = row.created_at
        if booked_at == traded_at:
            continue
        Fill.objects.filter(pk=row.pk).update(created_at=traded_at)
        Position.objects.filter(pk=row.position_id, opened_at=booked_at).update(opened_at=traded_at)
        Position.objects.filter(pk=row.position_id, closed_at=booked_at).update(closed_at=traded_at)


def backfill(*, since_ms: int) -> int:
    """After every reconnect (HL does not replay missed events): re-read the trading account's fills
    by REST and apply what the stream missed."""
    gw = gateway("trading")
    if gw is None:
        return 0
    return ingest_fills(gw.user_fills_by_time(since_ms))
