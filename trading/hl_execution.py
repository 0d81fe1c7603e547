"""HYPERLIQUID execution (spec 02): relaying users' orders through the platform's HL trading account.

Life of an HL-routed order:

1. **Prepare** (inside the order transaction, under the user's lock, written with the order in one
   round trip: ``services._prepare_hl``): the price to send is fixed (a market order is an IOC limit
   at mid ± slippage, rounded as HL requires), margin is checked at that worst price, IM + fee at that
   price are frozen as an order hold, the order gets its ``cloid`` (derived from our id) and
   ``hl_submitted_at``. Nothing has left the building; a rejection here freezes nothing.
2. **Send** (after commit, no DB transaction open during the network call, by the placing caller
   only): ``expiresAfter`` is ``hl_submitted_at`` + ``ORDER_EXPIRY_MS``, so an order HL has not seen
   by then can never execute — whenever the process actually got to send it.
3. **Apply** HL's answer. ``filled`` (total size, average price): booked at once in one transaction
   like an internal fill (``services.hl_order_fill``): the fill at HL's average price, the user's fee,
   the hold released, the order FILLED (or CANCELLED for the unfilled rest of an IOC). HL's per-trade
   details — trade ids and the exact fee HL charged the platform — arrive on the user stream (and its
   REST backfill) and are reconciled afterwards, once per order (``fill_details_reconcile``).
   ``resting``: the order is OPEN with its hold; its fills (including any taken when it was placed)
   arrive from the user stream or the backfill and are applied one by one, keyed on HL's trade id.
   ``error`` / ``status: err``: REJECTED with HL's message, hold released.
4. **Unknown outcome** (timeout, 5xx, dropped connection): the order's status is queried by cloid at
   once — never re-sent. If HL knows it, its trades are applied one by one (``apply_fills``). If HL
   does not and the action's expiry has passed, it never happened: the order fails and the hold is
   released. Otherwise ``hl_orders_resolve`` (Celery beat) tries again shortly.

An order is booked by exactly one of these paths: each takes the user's lock and re-reads the order,
and only an order still ACCEPTED (the answer) or still open (trades one by one) is booked.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.errors import ApplicationError, ErrorCode
from core.locks import user_lock
from core.money import ZERO
from trading import margin, netting
from trading.config import trading_settings
from trading.execution import FillRequest, fill_apply, is_liquidation_order
from trading.hl_accounts import hl_positions
from trading.marketdata import Quote
from trading.models import Fill, Market, Order, OrderEvent, Position, Source
from trading.venues.hl import (
    ORDER_EXPIRY_MS,
    HLFill,
    HLGateway,
    HLRequestError,
    OrderResult,
    gateway,
)
from wallets.ledger import AccountRef, TransferSpec, ledger_post
from wallets.models import AccountKind, TransferKind

logger = logging.getLogger(__name__)

OPEN = (Order.Status.OPEN, Order.Status.PARTIALLY_FILLED)


def available() -> bool:
    """HL execution is possible when the trading account's credentials are configured."""
    try:
        return gateway("trading") is not None
    except Exception:  # misconfigured credentials must not break the order path: route says NO_ROUTE
        logger.exception("HL trading account is misconfigured")
        return False


def trading_gateway() -> HLGateway:
    gw = gateway("trading")
    if gw is None:
        raise ApplicationError(ErrorCode.NO_ROUTE, "The HL trading account is not configured.")
    return gw


# ------------------------------------------------------------------------------------------ 1. prepare


def send_price(order: Order, market: Market, quote: Quote) -> Decimal:
    if order.order_type == Order.Type.LIMIT:
        assert order.limit_price is not None
        return order.limit_price
    reference = quote.mid or quote.mark
    if not reference:
        raise ApplicationError(ErrorCode.STALE_PRICE, f"No price for {market.asset}.", http_status=503)
    bps = (
        order.slippage_bps
        if order.slippage_bps is not None
        else trading_settings().market_default_slippage_bps
    )
    factor = Decimal(1) + Decimal(bps) / Decimal(10_000) * (1 if order.side == "BUY" else -1)
    # round away from the market so the rounding never makes an IOC less marketable than intended
    price = margin.round_price(reference * factor, market.sz_decimals)
    return price


def hold_for(order: Order, price: Decimal, opened_size: Decimal, fee_rate: Decimal) -> Decimal:
    if order.reduce_only:
        return ZERO
    return netting.initial_margin_for(opened_size, price, order.leverage) + netting.fee_for(
        order.size, price, fee_rate
    )


# ------------------------------------------------------------------------------------------ 2. send


def send_and_apply(*, order: Order, quote: Quote | None = None) -> Order:
    """Steps 2–4 for an order just prepared (ACCEPTED, ``hl_submitted_at`` committed). Called once, by
    the caller that placed it; everyone else (the resolver) only ever asks HL by cloid. ``quote``: the
    order's quote as read when it was placed (reused for the liquidation prices)."""
    gw = trading_gateway()
    assert order.hl_limit_price is not None and order.cloid is not None and order.hl_submitted_at is not None
    expires_at_ms = int(order.hl_submitted_at.timestamp() * 1000) + ORDER_EXPIRY_MS
    try:
        # Reduce-only on the wire only where HL needs it: the trading account holds the netted position of
        # every user, so one user's close may well increase the account's net position (users long and
        # short at once). Reduce-only is enforced per user position in XBIT (order_place refuses oversize
        # reductions); HL takes an order below its minimum value only as reduce-only.
        wire_reduce_only = False
        if order.reduce_only and _below_venue_minimum(order):
            if not _account_can_reduce(gw, order):
                return _fail(
                    order,
                    ErrorCode.MIN_NOTIONAL,
                    f"This close is worth less than Hyperliquid's {trading_settings().min_order_value} USDC "
                    "minimum, and the platform's Hyperliquid account cannot take it as a reduce-only "
                    "order right now (other clients' positions net it the other way). Nothing was "
                    "traded; retry later or contact support.",
                )
            wire_reduce_only = True
        result = gw.place_order(
            coin=order.asset,
            is_buy=order.side == "BUY",
            size=order.size,
            price=order.hl_limit_price,
            tif=_tif(order),
            reduce_only=wire_reduce_only,
            cloid=order.cloid,
            expires_at_ms=expires_at_ms,
        )
    except HLRequestError as exc:
        if exc.uncertain:
            logger.warning("HL order %s outcome unknown (%s); resolving by cloid", order.pk, exc.kind)
            return resolve(order=order)
        return _fail(order, ErrorCode.VENUE_ERROR, f"Hyperliquid refused the order: {exc.message}")
    return apply_result(order=order, result=result, quote=quote)


def _below_venue_minimum(order: Order) -> bool:
    assert order.hl_limit_price is not None
    return order.size * order.hl_limit_price < trading_settings().min_order_value


def _account_can_reduce(gw: HLGateway, order: Order) -> bool:
    """Whether the trading account's net position on HL is on the side this order reduces, by at least
    its size (HL refuses a reduce-only order that would increase or flip the position)."""
    szi = hl_positions(gw.user_state()).get(order.asset, ZERO)
    return (szi < ZERO if order.side == "BUY" else szi > ZERO) and abs(szi) >= order.size


def _tif(order: Order) -> str:
    if order.order_type == Order.Type.MARKET:
        return "Ioc"
    return {"GTC": "Gtc", "IOC": "Ioc", "ALO": "Alo"}[order.tif]


# ------------------------------------------------------------------------------------------ 3. apply


# HL's answer to an IOC that found no resting order within its limit price
NO_LIQUIDITY = "Order could not immediately match against any resting orders"


def apply_result(*, order: Order, result: OrderResult, quote: Quote | None = None) -> Order:
    """HL's answer to our order becomes state (step 3)."""
    if result.kind == "error":
        if NO_LIQUIDITY in (result.error or ""):
            # an IOC with nothing on HL's book within its price limit: the market moved past the
            # order's slippage — the client's to decide (a 4xx), not a venue failure to retry
            return _fail(
                order,
                ErrorCode.SLIPPAGE_EXCEEDED,
                f"Nothing on Hyperliquid's book within the order's price limit {order.hl_limit_price} "
                "(the market moved); nothing was traded.",
                hl_error=result.error,
            )
        return _fail(order, ErrorCode.VENUE_ERROR, f"Hyperliquid: {result.error}", hl_error=result.error)
    assert result.oid is not None
    if result.kind == "resting":
        with transaction.atomic():
            user_lock(order.user_id)
            order = Order.objects.select_for_update(of=("self",)).get(pk=order.pk)
            if order.status == Order.Status.ACCEPTED:
                order.hl_oid = result.oid
                order.status = Order.Status.OPEN
                order.expires_at = None
                order.updated_at = timezone.now()
                order.save(update_fields=["hl_oid", "status", "expires_at", "updated_at"])
                OrderEvent.objects.create(order=order, status=order.status, detail={"hl_oid": result.oid})
        # what it may have filled on arrival comes with its trades on the user stream (re-read a moment
        # later, as the trades reach the stream before this commit) and the backfill
        return order
    if not result.total_size or not result.avg_price:
        # "filled" without a size: nothing we can book from the answer; HL's trades settle it
        logger.error("HL answered filled without size for order %s: %s", order.pk, result)
        return resolve(order=order)
    from trading.services import hl_order_fill

    return hl_order_fill(
        order=order, hl_oid=result.oid, size=result.total_size, price=result.avg_price, quote=quote
    )


def _since_ms(order: Order) -> int:
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
            _release_hold(order)
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
    from trading.account import user_balances

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
    _refresh_liquidation_prices(order.user_id)


def _hold_share(order: Order, size: Decimal) -> Decimal:
    if order.hold_amount <= ZERO:
        return ZERO
    remaining = order.size - order.filled_size
    if size >= remaining:
        return order.hold_amount
    return (order.hold_amount * size / remaining).quantize(Decimal("0.000001"), rounding=ROUND_DOWN)


def _refresh_liquidation_prices(user_id: int) -> None:
    from trading.services import _refresh_liquidation_prices as refresh
    from trading.services import _user_state

    positions = list(Position.objects.filter(user_id=user_id, status=Position.Status.OPEN))
    refresh(_user_state(user_id, positions))


def _release_hold(order: Order) -> None:
    from trading.services import _release_hold as release  # one implementation for both venues

    release(order)


def _fail(order: Order, code: ErrorCode, message: str, **detail: Any) -> Order:
    with transaction.atomic():
        user_lock(order.user_id)
        order = Order.objects.select_for_update(of=("self",)).get(pk=order.pk)
        if order.status not in (Order.Status.ACCEPTED, *OPEN):
            return order
        _release_hold(order)
        order.status = Order.Status.REJECTED if not order.filled_size else Order.Status.CANCELLED
        order.error_code = str(code)
        order.error_message = message
        order.updated_at = timezone.now()
        order.save(update_fields=["status", "error_code", "error_message", "hold_amount", "updated_at"])
        OrderEvent.objects.create(
            order=order, status=order.status, detail={"code": str(code), "message": message, **detail}
        )
    return order


# ------------------------------------------------------------------------------------------ 4. unknown outcome


def resolve(*, order: Order) -> Order:
    """Find out by cloid what HL did with an order whose answer we never got. Never re-sends."""
    gw = trading_gateway()
    assert order.cloid is not None
    try:
        status = gw.order_status(cloid=order.cloid)
    except HLRequestError:
        logger.warning("HL order %s: status query failed; the resolver retries", order.pk)
        return order
    if status.get("status") != "order":
        submitted = order.hl_submitted_at or order.created_at
        if timezone.now() - submitted > timedelta(milliseconds=ORDER_EXPIRY_MS + 5_000):
            # the action expired without HL ever seeing it: it can never execute now
            return _fail(
                order,
                ErrorCode.VENUE_ERROR,
                "Hyperliquid did not receive the order in time; nothing was traded.",
            )
        return order
    info = status["order"]
    oid = int(info["order"]["oid"])
    hl_status = info.get("status")
    with transaction.atomic():
        Order.objects.filter(pk=order.pk, hl_oid__isnull=True).update(hl_oid=oid)
    fills = gw.fills_for_order(oid, _since_ms(order))
    if hl_status == "open":
        if order.status == Order.Status.ACCEPTED:
            Order.objects.filter(pk=order.pk, status=Order.Status.ACCEPTED).update(
                status=Order.Status.OPEN, updated_at=timezone.now()
            )
            OrderEvent.objects.create(
                order=order, status=Order.Status.OPEN, detail={"hl_oid": oid, "resolved": True}
            )
        return (
            apply_fills(order_id=order.pk, fills=fills, final=False)
            if fills
            else Order.objects.get(pk=order.pk)
        )
    if hl_status in ("rejected", "marginCanceled", "reduceOnlyRejected") and not fills:
        return _fail(order, ErrorCode.VENUE_ERROR, f"Hyperliquid: order {hl_status}.")
    # filled / canceled / expired: the order is done on HL; apply whatever filled
    return apply_fills(order_id=order.pk, fills=fills, final=True)


def hl_orders_resolve(*, older_than_s: float = 2.0, limit: int = 200) -> int:
    """Beat task body: ACCEPTED HL orders left behind by a crash or a lost answer."""
    cutoff = timezone.now() - timedelta(seconds=older_than_s)
    pending = list(
        Order.objects.filter(route=Source.HYPERLIQUID, status=Order.Status.ACCEPTED, updated_at__lt=cutoff)[
            :limit
        ]
    )
    for order in pending:
        if order.hl_submitted_at is None:
            # prepared but never sent (the process died in between): too late to send a market order now
            _fail(
                order,
                ErrorCode.VENUE_ERROR,
                "The order was not sent to Hyperliquid in time; nothing was traded.",
            )
        else:
            resolve(order=order)
    return len(pending)


# ------------------------------------------------------------------------------------------ cancel


def cancel(*, order: Order) -> Order:
    """Cancel a resting HL order (called by ``order_cancel`` inside its transaction: the HL call is
    short and the user's lock must cover the hold release). Fills that happened before the cancel are
    applied first; a fill that raced the cancel is applied by the stream or the backfill."""
    gw = trading_gateway()
    if order.hl_oid is None:
        raise ApplicationError(
            ErrorCode.INVALID_STATE, "The order is still being placed; try again in a moment."
        )
    try:
        answer = gw.cancel(order.asset, order.hl_oid)
    except HLRequestError as exc:
        raise ApplicationError(
            ErrorCode.VENUE_ERROR, f"Hyperliquid did not confirm the cancel: {exc.message}"
        ) from exc
    fills = gw.fills_for_order(order.hl_oid, _since_ms(order))
    if answer != "success" and "already canceled, or filled" not in answer:
        raise ApplicationError(ErrorCode.VENUE_ERROR, f"Hyperliquid refused the cancel: {answer}")
    order = apply_fills(order_id=order.pk, fills=fills, final=True)
    if order.status == Order.Status.CANCELLED:
        OrderEvent.objects.create(order=order, status="CANCEL_CONFIRMED", detail={"by": "user", "hl": answer})
    return order


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
    from trading.services import order_input, order_place

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
    order = order_place(user=position.user, inp=inp)
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
    for order in Order.objects.filter(hl_oid__in=list(by_oid), status__in=OPEN):
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
    """HL's own trades of an order that was booked from HL's answer (``services.hl_order_fill``: one
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


def backfill(*, since_ms: int) -> int:
    """After every reconnect (HL does not replay missed events): re-read the trading account's fills
    by REST and apply what the stream missed."""
    gw = gateway("trading")
    if gw is None:
        return 0
    return ingest_fills(gw.user_fills_by_time(since_ms))
