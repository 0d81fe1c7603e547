"""Take-profit / stop-loss triggers on the mark price, for positions on either venue.

A trigger is attached to an open position; when the mark crosses its price it places a reduce-only
order closing (part of) the position through the normal order path (``order_place(by="system")``), so
the position's venue takes it: an INTERNAL position closes internally, a HYPERLIQUID one on HL.

Exactly once, whatever the number of checkers and crashes:
* the check claims a crossing trigger with one conditional UPDATE (ACTIVE → TRIGGERED, committed) —
  only one checker wins it;
* the order it places carries a ``client_order_id`` derived from the trigger (``order_place`` is
  idempotent on it), so a checker that died after the claim is replaced by ``tpsl_resume``, which finds
  the same order instead of placing a second.

Checkers: the feed process on every mark (``TpslTrigger``, at most every ``trigger_check_interval_ms``)
and the beat task ``trading.tpsl_check`` as a safety net."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import close_old_connections, connections, transaction
from django.db.models import Q
from django.utils import timezone

from core.accounts.models import User
from core.errors import ApplicationError, ErrorCode
from core.money import PRICE_INPUT, SIZE_INPUT
from trading import margin
from trading.config import trading_settings
from trading.feed.hooks import FEED_HOOKS
from trading.marketdata import Quote, get_quote, get_quotes
from trading.models import Order, Position, TpslOrder
from trading.orders.input import decimal_field, market_for, order_input
from trading.orders.place import order_place

logger = logging.getLogger(__name__)

RESUME_AFTER = timedelta(seconds=10)  # a TRIGGERED row without its order this long: its checker died
# refusals that leave no order behind and pass by themselves: a fired trigger tries again
RETRYABLE = frozenset({ErrorCode.STALE_PRICE, ErrorCode.SERVICE_UNAVAILABLE})


def fires_above(kind: str, direction: str) -> bool:
    """A long's take-profit and a short's stop-loss fire when the mark rises to the trigger."""
    return (kind == TpslOrder.Kind.TAKE_PROFIT) == (direction == Position.Direction.LONG)


def crossed(trigger_above: bool, trigger_price: Decimal, mark: Decimal) -> bool:
    return mark >= trigger_price if trigger_above else mark <= trigger_price


def tpsl_create(
    *,
    user: User,
    position_id: int,
    kind: str,
    trigger_price: object,
    size: object = None,
    limit_price: object = None,
) -> TpslOrder:
    """Attach a TP or SL to the user's open position. The trigger must be on the far side of the
    current mark (one that would fire at once is INVALID_TRIGGER: close the position instead). The same
    trigger asked for again while it is live answers the live one (a retry sets nothing twice)."""
    kind = str(kind).upper()
    if kind not in TpslOrder.Kind.values:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, "kind must be TAKE_PROFIT or STOP_LOSS.", {"field": "kind"}
        )
    position = Position.objects.filter(user=user, pk=position_id, status=Position.Status.OPEN).first()
    if position is None:
        raise ApplicationError(ErrorCode.NOT_FOUND, "No such open position.")
    market = market_for(position.asset)
    trigger = decimal_field(trigger_price, ErrorCode.INVALID_PRICE, "trigger_price", PRICE_INPUT)
    for name, value in (("trigger_price", trigger), ("limit_price", limit_price)):
        if value is None:
            continue
        value = decimal_field(value, ErrorCode.INVALID_PRICE, name, PRICE_INPUT)
        if not margin.is_valid_price(value, market.sz_decimals):
            raise ApplicationError(
                ErrorCode.INVALID_PRICE,
                f"{name} must have at most 5 significant figures and {6 - market.sz_decimals} decimals.",
                {"field": name, "nearest": str(margin.round_price(value, market.sz_decimals))},
            )
    limit = (
        decimal_field(limit_price, ErrorCode.INVALID_PRICE, "limit_price", PRICE_INPUT)
        if limit_price
        else None
    )
    amount = decimal_field(size, ErrorCode.INVALID_SIZE, "size", SIZE_INPUT) if size is not None else None
    if amount is not None and not margin.is_valid_size(amount, market.sz_decimals):
        raise ApplicationError(
            ErrorCode.INVALID_SIZE,
            f"Size must be a multiple of {Decimal(1).scaleb(-market.sz_decimals)}.",
            {"field": "size"},
        )
    above = fires_above(kind, position.direction)
    quote = get_quote(position.asset)
    if quote is None or quote.mark is None:
        raise ApplicationError(ErrorCode.STALE_PRICE, f"No mark for {position.asset}; try again shortly.")
    if crossed(above, trigger, quote.mark):
        raise ApplicationError(
            ErrorCode.INVALID_TRIGGER,
            f"The mark {quote.mark} is already {'at or above' if above else 'at or below'} {trigger}.",
            {"field": "trigger_price", "mark": str(quote.mark)},
        )
    spec = {"kind": kind, "trigger_price": trigger, "size": amount, "limit_price": limit}
    with transaction.atomic():
        # the position's row serialises two creations of the same trigger: the second finds the first
        Position.objects.select_for_update().filter(pk=position.pk).first()
        same = TpslOrder.objects.filter(position=position, status=TpslOrder.Status.ACTIVE, **spec).first()
        if same is not None:
            return same  # the same request again (a retry): the trigger already set
        return TpslOrder.objects.create(
            user=user,
            position=position,
            asset=position.asset,
            side="SELL" if position.direction == Position.Direction.LONG else "BUY",
            trigger_above=above,
            **spec,
        )


def tpsl_cancel(*, user: User, tpsl_id: int) -> TpslOrder:
    """Cancel a live trigger; cancelling twice answers the cancelled trigger, one already fired is
    INVALID_STATE."""
    with transaction.atomic():
        row = TpslOrder.objects.select_for_update().filter(user=user, pk=tpsl_id).first()
        if row is None:
            raise ApplicationError(ErrorCode.NOT_FOUND, "No such TP/SL order.")
        if row.status == TpslOrder.Status.CANCELLED:
            return row
        if row.status != TpslOrder.Status.ACTIVE:
            raise ApplicationError(
                ErrorCode.INVALID_STATE, f"The trigger is {row.status}.", {"status": row.status}
            )
        row.status = TpslOrder.Status.CANCELLED
        row.error_message = "cancelled by the user"
        row.updated_at = timezone.now()
        row.save(update_fields=["status", "error_message", "updated_at"])
    return row


# ------------------------------------------------------------------------------------------ checking


def tpsl_check(asset: str, mark: Decimal) -> int:
    """Fire every live trigger of ``asset`` that ``mark`` crosses; returns how many this call fired."""
    crossing = Q(trigger_above=True, trigger_price__lte=mark) | Q(
        trigger_above=False, trigger_price__gte=mark
    )
    ids = list(
        TpslOrder.objects.filter(crossing, asset=asset, status=TpslOrder.Status.ACTIVE)
        .order_by("id")
        .values_list("id", flat=True)[:500]
    )
    return sum(1 for tpsl_id in ids if tpsl_fire(tpsl_id, mark) is not None)


def tpsl_fire(tpsl_id: int, mark: Decimal) -> TpslOrder | None:
    """Claim the trigger (only one caller succeeds) and place its order. None if another had it."""
    now = timezone.now()
    claimed = TpslOrder.objects.filter(pk=tpsl_id, status=TpslOrder.Status.ACTIVE).update(
        status=TpslOrder.Status.TRIGGERED, trigger_mark=mark, triggered_at=now, updated_at=now
    )
    if not claimed:
        return None
    return tpsl_place(TpslOrder.objects.select_related("position", "user").get(pk=tpsl_id))


def tpsl_place(row: TpslOrder) -> TpslOrder:
    """Place (or find, after a crash) the order of a TRIGGERED trigger, and record the outcome."""
    existing = Order.objects.filter(user_id=row.user_id, client_order_id=row.client_order_id).first()
    if existing is not None:
        return _settle(row, existing, None)
    position = row.position
    if position.status != Position.Status.OPEN:
        return _finish(row, TpslOrder.Status.CANCELLED, message="the position is closed")
    size = min(row.size, position.size) if row.size is not None else position.size
    try:
        inp = order_input(
            asset=row.asset,
            side=row.side,
            order_type="LIMIT" if row.limit_price is not None else "MARKET",
            size=size,
            limit_price=row.limit_price,
            margin_mode=position.margin_mode,
            reduce_only=True,
            client_order_id=row.client_order_id,
            position_id=position.pk,
        )
        order = order_place(user=row.user, inp=inp, by="system")
    except ApplicationError as exc:
        recorded = Order.objects.filter(user_id=row.user_id, client_order_id=row.client_order_id).first()
        if recorded is None and exc.code in RETRYABLE:
            # refused before any order was recorded (no live price yet): stays TRIGGERED, and the
            # resumer places it again with the same client_order_id
            TpslOrder.objects.filter(pk=row.pk).update(error_message=exc.message, updated_at=timezone.now())
            logger.warning("TP/SL %s: %s; retrying", row.pk, exc.message)
            return row
        return _settle(row, recorded, exc)
    return _settle(row, order, None)


def _settle(row: TpslOrder, order: Order | None, exc: ApplicationError | None) -> TpslOrder:
    if order is not None and order.status != Order.Status.REJECTED and exc is None:
        return _finish(row, TpslOrder.Status.PLACED, order=order)
    code = str(exc.code) if exc is not None else (order.error_code if order is not None else "")
    message = exc.message if exc is not None else (order.error_message if order is not None else "")
    return _finish(row, TpslOrder.Status.FAILED, order=order, code=code, message=message)


def _finish(
    row: TpslOrder, status: str, *, order: Order | None = None, code: str = "", message: str = ""
) -> TpslOrder:
    TpslOrder.objects.filter(pk=row.pk, status=TpslOrder.Status.TRIGGERED).update(
        status=status, order=order, error_code=code, error_message=message, updated_at=timezone.now()
    )
    row.refresh_from_db()
    return row


def tpsl_resume(*, now: datetime | None = None) -> int:
    """TRIGGERED triggers whose checker died before recording the order: place or find it."""
    cutoff = (now or timezone.now()) - RESUME_AFTER
    rows = TpslOrder.objects.filter(
        status=TpslOrder.Status.TRIGGERED, order__isnull=True, triggered_at__lt=cutoff
    ).select_related("position", "user")[:200]
    return sum(1 for row in rows if tpsl_place(row).status != TpslOrder.Status.TRIGGERED)


def tpsl_orphans_cancel() -> int:
    """Live triggers whose position is gone (closed by the other trigger, by hand or liquidated)."""
    return (
        TpslOrder.objects.filter(status=TpslOrder.Status.ACTIVE)
        .exclude(position__status=Position.Status.OPEN)
        .update(
            status=TpslOrder.Status.CANCELLED,
            error_message="the position is closed",
            updated_at=timezone.now(),
        )
    )


def tpsl_check_all() -> int:
    """Beat task body: every asset with live triggers against its current mark, then the repairs."""
    settings = trading_settings()
    tpsl_orphans_cancel()
    assets = sorted(
        set(
            TpslOrder.objects.filter(status=TpslOrder.Status.ACTIVE)
            .values_list("asset", flat=True)
            .distinct()
        )
    )
    fired = 0
    for asset, quote in get_quotes(assets).items():
        if quote.is_mark_fresh(settings.book_stale_seconds) and quote.mark is not None:
            fired += tpsl_check(asset, quote.mark)
    tpsl_resume()
    return fired


# ------------------------------------------------------------------------------------------ feed loop


class TpslTrigger:
    """Runs in the feed process: the mark hook records the latest mark per asset (µs, on the websocket
    thread); a worker thread checks them at most every ``trigger_check_interval_ms``."""

    def __init__(self) -> None:
        self._latest: dict[str, Decimal] = {}
        self._checked: dict[str, Decimal] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def on_mark(self, asset: str, quote: Quote) -> None:
        if quote.mark is None:
            return
        with self._lock:
            self._latest[asset] = quote.mark
        self._wake.set()
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="tpsl-trigger", daemon=True)
            self._thread.start()

    def stop(self, *, wait: float = 0) -> None:
        self._stop.set()
        self._wake.set()
        if wait and self._thread is not None:
            self._thread.join(wait)

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            connections.close_all()  # this thread's own connection

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            with self._lock:
                pending = {a: m for a, m in self._latest.items() if self._checked.get(a) != m}
            try:
                # one query for the assets that have live triggers; the others' marks need no check
                live = set(
                    TpslOrder.objects.filter(status=TpslOrder.Status.ACTIVE)
                    .values_list("asset", flat=True)
                    .distinct()
                )
            except Exception:  # the database away: try again on the next mark
                logger.exception("TP/SL trigger could not read the live triggers")
                _drop_connection()
                live = set()
                pending = {}
            self._checked.update({a: m for a, m in pending.items() if a not in live})
            pending = {a: m for a, m in pending.items() if a in live}
            for asset, mark in pending.items():
                try:
                    tpsl_check(asset, mark)
                    self._checked[asset] = mark
                except Exception:
                    logger.exception("TP/SL trigger for %s failed; retrying on the next mark", asset)
                    _drop_connection()
            try:
                interval = trading_settings().trigger_check_interval_ms / 1000
            except Exception:  # the database away: keep the loop alive, check again in a second
                interval = 1.0
                _drop_connection()
            self._stop.wait(interval)


def _drop_connection() -> None:
    """After a database error: drop this thread's connection if it is broken, never raise (closing
    checks the connection, which raises while the database is still away: the thread died of it)."""
    try:
        close_old_connections()
    except Exception:  # still away: the next pass connects anew
        connections.close_all()


TPSL_TRIGGER = TpslTrigger()


def register() -> None:
    if TPSL_TRIGGER.on_mark not in FEED_HOOKS.mark:
        FEED_HOOKS.on_mark(TPSL_TRIGGER.on_mark)
