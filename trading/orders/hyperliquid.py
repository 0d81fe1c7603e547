"""HYPERLIQUID execution (spec 02): relaying users' orders through the platform's HL trading account.

Life of an HL-routed order:

1. **Prepare** (inside the order transaction, under the user's lock, written with the order in one
   round trip: ``hl_prepare``): the price to send is fixed (a market order is an IOC limit at
   mid ± slippage, rounded as HL requires), margin is checked at that worst price, IM + fee at that
   price are frozen as an order hold, the order gets its ``cloid`` (derived from our id) and
   ``hl_submitted_at``. Nothing has left the building; a rejection here freezes nothing.
2. **Send** (after commit, no DB transaction open during the network call, by the placing caller
   only): ``expiresAfter`` is ``hl_submitted_at`` + ``ORDER_EXPIRY_MS``, so an order HL has not seen
   by then can never execute — whenever the process actually got to send it.
3. **Apply** HL's answer. ``filled`` (total size, average price): booked at once in one transaction
   like an internal fill (``orders.fill.hl_order_fill``): the fill at HL's average price, the user's
   fee, the hold released, the order FILLED (or CANCELLED for the unfilled rest of an IOC). HL's
   per-trade details — trade ids and the exact fee HL charged the platform — arrive on the user stream
   (and its REST backfill) and are reconciled afterwards, once per order
   (``orders.hl_fills.fill_details_reconcile``). ``resting``: the order is OPEN with its hold; its
   fills arrive from the user stream or the backfill and are applied one by one, keyed on HL's trade
   id. ``error`` / ``status: err``: REJECTED with HL's message, hold released.
4. **Unknown outcome** (timeout, 5xx, dropped connection): the order's status is queried by cloid at
   once — never re-sent. If HL knows it, its trades are applied one by one (``apply_fills``). If HL
   does not and the action's expiry has passed, it never happened: the order fails and the hold is
   released. Otherwise ``hl_orders_resolve`` (Celery beat) tries again shortly.

An order is booked by exactly one of these paths: each takes the user's lock and re-reads the order,
and only an order still ACCEPTED (the answer) or still open (trades one by one) is booked.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.errors import ApplicationError, ErrorCode
from core.locks import user_lock
from core.money import (
    ZERO,
)
from core.sql import prepared
from core.sql.batch import SqlBatch, update_statement
from core.threads import ProcessThreadPool
from trading import margin, netting
from trading.account import account_state
from trading.config import TradingSettings, trading_settings
from trading.execution import (
    DIRECTION,
)
from trading.hl_accounts import hl_positions
from trading.marketdata import Quote
from trading.models import (
    Market,
    Order,
    OrderEvent,
    Source,
)
from trading.orders.fill import hl_order_fill, quotes_with
from trading.orders.hl_fills import apply_fills, since_ms
from trading.orders.internal import margin_check
from trading.orders.state import OPEN_STATUSES, LockedRead, hold_release, position_for_key, route_fee_rate
from trading.venues.hl import (
    ORDER_EXPIRY_MS,
    HLGateway,
    HLRequestError,
    OrderResult,
    gateway,
    order_cloid,
)
from wallets.ledger import AccountRef, TransferSpec, posting_prepare, posting_write
from wallets.models import AccountKind, TransferKind

logger = logging.getLogger(__name__)


def hl_prepare(
    *, order: Order, market: Market, quote: Quote, settings: TradingSettings, locked: LockedRead
) -> Order:
    """HL-routed (spec 02, step 1 of this module): margin checked and frozen at the price
    that will be sent (worst case for a market order), the cloid derived from the order id, and the
    order marked submitted — written with the order itself in ONE round trip. The send happens right
    after this transaction commits, by this caller only (``hl_submitted_at`` is committed first: a
    crash in between leaves an order the resolver finds unknown to HL and fails once the request's
    expiry, anchored on ``hl_submitted_at``, has passed)."""
    positions = locked.positions
    price = send_price(order, market, quote)
    fee_rate = route_fee_rate(settings, Source.HYPERLIQUID, maker=False)
    cash, holds = locked.cash, locked.holds
    quotes = quotes_with(quote, positions)
    state = account_state(cash=cash, order_holds=holds, positions=positions, quotes=quotes)
    rejected = margin_check(
        locked=locked, order=order, price=price, positions=positions, fee_rate=fee_rate, state=state
    )
    if rejected is not None:
        return rejected
    key = position_for_key(
        positions, asset=order.asset, source=Source.HYPERLIQUID, margin_mode=order.margin_mode
    )
    effect = netting.apply_fill(
        netting.PositionState(
            1 if key and key.direction == "LONG" else -1, key.size, key.entry_price, key.isolated_margin
        )
        if key
        else netting.FLAT,
        DIRECTION[order.side],
        order.size,
        price,
    )
    hold = hold_for(order, price, effect.opened_size, fee_rate)
    now = timezone.now()
    order.hl_limit_price = price
    order.cloid = order_cloid(order.pk)
    order.hold_amount = hold
    order.hl_submitted_at = now
    order.updated_at = now
    # the request is signed on a helper thread while this transaction is written and committed; it is
    # sent only after the commit (send_and_apply), so a rollback leaves a signature nobody sends
    locked.hl_signing = presign(order)
    batch = SqlBatch()
    writes = locked.order_writes_take()
    if writes is not None:
        writes.queue(batch)  # the order is inserted in this state
    else:
        batch.add(*update_statement(order, ORDER_HL_PREPARE_FIELDS))
    if hold > ZERO:
        posting = posting_prepare(
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
        posting_write(batch, posting, dict(locked.balances), replay_safe=False)
    prepared.run(batch, locked.commit)  # the transaction's last writes: its COMMIT may go with them
    return order


ORDER_HL_PREPARE_FIELDS = ("hl_limit_price", "cloid", "hold_amount", "hl_submitted_at", "updated_at")


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


# signs HL requests while their order's transaction commits (presign): signing is CPU (~1 ms) and the
# commit is a wait, so the two overlap
_signing = ProcessThreadPool("hl-sign", default_workers=4)


def expiry_ms(order: Order) -> int:
    """The order's ``expiresAfter``: ``hl_submitted_at`` + ``ORDER_EXPIRY_MS``."""
    assert order.hl_submitted_at is not None
    return int(order.hl_submitted_at.timestamp() * 1000) + ORDER_EXPIRY_MS


def wire_order(order: Order, *, reduce_only: bool) -> dict[str, Any]:
    """The order as ``HLGateway.order_action`` takes it."""
    return {
        "coin": order.asset,
        "is_buy": order.side == "BUY",
        "size": order.size,
        "price": order.hl_limit_price,
        "tif": hl_tif(order),
        "reduce_only": reduce_only,
        "cloid": order.cloid,
    }


def presign(order: Order) -> Future[dict[str, Any]] | None:
    """Start signing the request of a prepared order on a helper thread (``HLGateway.sign``: nonce and
    signature; nothing is sent). None for an order whose wire flags depend on HL's account, asked at the
    send (a close below HL's minimum value)."""
    if order.reduce_only and below_venue_minimum(order):
        return None
    try:
        gw = trading_gateway()
        action = gw.order_action([wire_order(order, reduce_only=False)])  # in this thread: it reads markets
        return _signing.get().submit(gw.sign, action, expires_at_ms=expiry_ms(order))
    except Exception:  # never a reason to refuse the order here: the send signs it and answers for it
        logger.warning("HL order %s: could not start signing ahead", order.pk, exc_info=True)
        return None


def send_and_apply(
    *, order: Order, quote: Quote | None = None, signing: Future[dict[str, Any]] | None = None
) -> Order:
    """Steps 2–4 for an order just prepared (ACCEPTED, ``hl_submitted_at`` committed). Called once, by
    the caller that placed it; everyone else (the resolver) only ever asks HL by cloid. ``quote``: the
    order's quote as read when it was placed (reused for the liquidation prices). ``signing``: its
    request being signed (``presign``); signed here when absent or when that failed."""
    gw = trading_gateway()
    assert order.hl_limit_price is not None and order.cloid is not None and order.hl_submitted_at is not None
    expires_at_ms = expiry_ms(order)
    try:
        # Reduce-only on the wire only where HL needs it: the trading account holds the netted position of
        # every user, so one user's close may well increase the account's net position (users long and
        # short at once). Reduce-only is enforced per user position in XBIT (order_place refuses oversize
        # reductions); HL takes an order below its minimum value only as reduce-only.
        wire_reduce_only = False
        if order.reduce_only and below_venue_minimum(order):
            if not account_can_reduce(gw, order):
                return hl_fail(
                    order,
                    ErrorCode.MIN_NOTIONAL,
                    f"This close is worth less than Hyperliquid's {trading_settings().min_order_value} USDC "
                    "minimum, and the platform's Hyperliquid account cannot take it as a reduce-only "
                    "order right now (other clients' positions net it the other way). Nothing was "
                    "traded; retry later or contact support.",
                )
            wire_reduce_only = True
        signed = None
        if signing is not None and not wire_reduce_only:
            try:
                signed = signing.result()
            except Exception:  # the nonce or the signature failed on the helper: signed again here
                logger.warning(
                    "HL order %s: signing ahead failed; signing at the send", order.pk, exc_info=True
                )
        result = gw.place_order(
            **wire_order(order, reduce_only=wire_reduce_only), expires_at_ms=expires_at_ms, signed=signed
        )
    except HLRequestError as exc:
        if exc.uncertain:
            logger.warning("HL order %s outcome unknown (%s); resolving by cloid", order.pk, exc.kind)
            return resolve(order=order)
        return hl_fail(order, ErrorCode.VENUE_ERROR, f"Hyperliquid refused the order: {exc.message}")
    return apply_result(order=order, result=result, quote=quote)


def below_venue_minimum(order: Order) -> bool:
    assert order.hl_limit_price is not None
    return order.size * order.hl_limit_price < trading_settings().min_order_value


def account_can_reduce(gw: HLGateway, order: Order) -> bool:
    """Whether the trading account's net position on HL is on the side this order reduces, by at least
    its size (HL refuses a reduce-only order that would increase or flip the position)."""
    szi = hl_positions(gw.user_state()).get(order.asset, ZERO)
    return (szi < ZERO if order.side == "BUY" else szi > ZERO) and abs(szi) >= order.size


def hl_tif(order: Order) -> str:
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
            return hl_fail(
                order,
                ErrorCode.SLIPPAGE_EXCEEDED,
                f"Nothing on Hyperliquid's book within the order's price limit {order.hl_limit_price} "
                "(the market moved); nothing was traded.",
                hl_error=result.error,
            )
        return hl_fail(order, ErrorCode.VENUE_ERROR, f"Hyperliquid: {result.error}", hl_error=result.error)
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
    return hl_order_fill(
        order=order, hl_oid=result.oid, size=result.total_size, price=result.avg_price, quote=quote
    )


def hl_fail(order: Order, code: ErrorCode, message: str, **detail: Any) -> Order:
    with transaction.atomic():
        user_lock(order.user_id)
        order = Order.objects.select_for_update(of=("self",)).get(pk=order.pk)
        if order.status not in (Order.Status.ACCEPTED, *OPEN_STATUSES):
            return order
        hold_release(order)
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
            return hl_fail(
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
    fills = gw.fills_for_order(oid, since_ms(order))
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
        return hl_fail(order, ErrorCode.VENUE_ERROR, f"Hyperliquid: order {hl_status}.")
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
            hl_fail(
                order,
                ErrorCode.VENUE_ERROR,
                "The order was not sent to Hyperliquid in time; nothing was traded.",
            )
        else:
            resolve(order=order)
    return len(pending)


# ------------------------------------------------------------------------------------------ cancel


def hl_cancel(*, order: Order) -> Order:
    """Cancel a resting HL order (called by ``order_cancel`` inside its transaction: the HL call is
    short — sent again for at most ``hl_cancel_retry_ms`` when its outcome is unknown — and the user's
    lock must cover the hold release). Fills that happened before the cancel are
    applied first; a fill that raced the cancel is applied by the stream or the backfill."""
    gw = trading_gateway()
    if order.hl_oid is None:
        raise ApplicationError(
            ErrorCode.INVALID_STATE, "The order is still being placed; try again in a moment."
        )
    answer = cancel_retrying(gw, order.asset, order.hl_oid, trading_settings().hl_cancel_retry_ms / 1000)
    try:
        fills = gw.fills_for_order(order.hl_oid, since_ms(order))
    except HLRequestError as exc:  # cancelled on HL; sent again, the cancel answers "already canceled"
        raise ApplicationError(
            ErrorCode.VENUE_ERROR,
            f"Hyperliquid took the cancel but its fills could not be read ({exc.message}); retry the cancel.",
        ) from exc
    if answer != "success" and "already canceled, or filled" not in answer:
        raise ApplicationError(ErrorCode.VENUE_ERROR, f"Hyperliquid refused the cancel: {answer}")
    order = apply_fills(order_id=order.pk, fills=fills, final=True)
    if order.status == Order.Status.CANCELLED:
        OrderEvent.objects.create(order=order, status="CANCEL_CONFIRMED", detail={"by": "user", "hl": answer})
    return order


# a cancel HL answered with a 5xx, a dropped connection or a timeout is sent again after these pauses
# (the last repeats; a cancel is the request a trader waits on in a bad minute, so the pauses stay short:
# about a dozen tries in the default 3 s budget, which a burst of 5xx shared with no other request
# — the soak's ten — does not exhaust)
CANCEL_RETRY_PAUSES_S = (0.05, 0.1, 0.2, 0.25)


def cancel_retrying(gw: HLGateway, coin: str, oid: int, budget_s: float) -> str:
    """HL's answer to cancelling ``oid``. A cancel by oid is idempotent — sent twice, the second answer
    is "already canceled, or filled" — so a request whose outcome is unknown (5xx, timeout, dropped
    connection) is sent again until ``budget_s`` has passed since the first try (the last try goes at
    the end of the budget, not a pause short of it); then, or on a refusal that is certain,
    ``502 VENUE_ERROR``."""
    deadline = time.monotonic() + budget_s
    tries = 0
    while True:
        try:
            return gw.cancel(coin, oid)
        except HLRequestError as exc:
            left = deadline - time.monotonic()
            if not exc.uncertain or left <= 0:
                raise ApplicationError(
                    ErrorCode.VENUE_ERROR, f"Hyperliquid did not confirm the cancel: {exc.message}"
                ) from exc
            pause = min(CANCEL_RETRY_PAUSES_S[min(tries, len(CANCEL_RETRY_PAUSES_S) - 1)], left)
            tries += 1
            logger.warning("HL cancel of oid %s: %s; sending it again (try %d)", oid, exc.kind, tries + 1)
            time.sleep(pause)
