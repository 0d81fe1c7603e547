"""Trading services: place, cancel, close, margin and leverage changes, the internal limit-order queue.

Each service is one transaction that first takes the user's advisory lock (``core.locks``), so
one user's margin checks and postings are serialised while different users run in parallel.
Validation happens before anything is written: a rejected request freezes nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Model, Q
from django.utils import timezone

from core import metrics
from core.accounts.models import User
from core.accounts.selectors import kyc_limits_for
from core.errors import ApplicationError, ErrorCode
from core.locks import USER_NAMESPACE, user_lock
from core.money import (
    MONEY_INPUT,
    PRICE_INPUT,
    SIZE_INPUT,
    ZERO,
    DecimalInputError,
    DecimalShape,
    decimal_from_input,
    q_usdc,
)
from core.observability import bind_order
from core.sql import prepared
from core.sql.batch import SqlBatch, insert_statement, next_ids, update_statement
from routing.decision import Decision, Reason, Route, decide
from routing.models import RoutingDecisionLog
from routing.selectors import asset_routing, in_canary_cohort
from trading import margin, netting
from trading.account import AccountState, account_state, user_balances
from trading.config import TradingSettings, trading_settings
from trading.execution import (
    DIRECTION,
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
    LeverageSetting,
    MarginMode,
    Market,
    Order,
    OrderEvent,
    Position,
    Source,
    TradingState,
)
from trading.selectors import market_get
from wallets.ledger import AccountRef, TransferSpec, ledger_post, posting_prepare, posting_write
from wallets.models import USDC, AccountKind, TransferKind

logger = logging.getLogger(__name__)

OPEN_STATUSES = (Order.Status.OPEN, Order.Status.PARTIALLY_FILLED)
DEFAULT_LEVERAGE = 10


# ------------------------------------------------------------------------------------------ input


@dataclass(frozen=True)
class OrderInput:
    asset: str
    side: str
    order_type: str
    size: Decimal
    limit_price: Decimal | None
    leverage: int | None
    margin_mode: str
    reduce_only: bool
    tif: str
    slippage_bps: int | None
    client_order_id: str | None
    position_id: int | None

    def fingerprint(self) -> str:
        body = {
            "asset": self.asset,
            "side": self.side,
            "type": self.order_type,
            "size": format(self.size.normalize(), "f"),
            "price": format(self.limit_price.normalize(), "f") if self.limit_price is not None else None,
            "leverage": self.leverage,
            "mode": self.margin_mode,
            "reduce_only": self.reduce_only,
            "tif": self.tif,
            "slippage_bps": self.slippage_bps,
            "position_id": self.position_id,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _decimal(value: Any, code: ErrorCode, field: str, shape: DecimalShape) -> Decimal:
    """A size or price from a client (or our own code): the strict input parser (issue #17)."""
    try:
        number = decimal_from_input(value if not isinstance(value, float) else repr(value), shape)
    except DecimalInputError as exc:
        raise ApplicationError(
            code, f"{field} {exc.message}.", {"field": field, "reason": exc.reason}
        ) from None
    return number


def order_input(
    *,
    asset: str,
    side: str,
    order_type: str,
    size: Any,
    limit_price: Any = None,
    leverage: int | None = None,
    margin_mode: str = MarginMode.CROSS,
    reduce_only: bool = False,
    tif: str = Order.Tif.GTC,
    slippage_bps: int | None = None,
    client_order_id: str | None = None,
    position_id: int | None = None,
) -> OrderInput:
    side = str(side).upper()
    order_type = str(order_type).upper()
    margin_mode = str(margin_mode).upper()
    tif = str(tif).upper()
    if side not in DIRECTION:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "side must be BUY or SELL.", {"field": "side"})
    if order_type not in Order.Type.values:
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "type must be MARKET or LIMIT.", {"field": "type"})
    if margin_mode not in MarginMode.values:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, "margin_mode must be ISOLATED or CROSS.", {"field": "margin_mode"}
        )
    if tif not in Order.Tif.values:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, "time_in_force must be GTC, IOC or ALO.", {"field": "time_in_force"}
        )
    price = None
    if order_type == Order.Type.LIMIT:
        if limit_price is None:
            raise ApplicationError(
                ErrorCode.INVALID_PRICE, "A limit order needs a limit price.", {"field": "limit_price"}
            )
        price = _decimal(limit_price, ErrorCode.INVALID_PRICE, "limit_price", PRICE_INPUT)
    elif limit_price is not None:
        raise ApplicationError(
            ErrorCode.INVALID_PRICE, "A market order takes no limit price.", {"field": "limit_price"}
        )
    if leverage is not None and (not isinstance(leverage, int) or isinstance(leverage, bool) or leverage < 1):
        raise ApplicationError(
            ErrorCode.LEVERAGE_EXCEEDED, "leverage must be a whole number ≥ 1.", {"field": "leverage"}
        )
    if slippage_bps is not None and (not isinstance(slippage_bps, int) or slippage_bps < 0):
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR, "slippage_bps must be a whole number ≥ 0.", {"field": "slippage_bps"}
        )
    if client_order_id is not None and not (1 <= len(client_order_id) <= 64):
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR,
            "client_order_id must be 1–64 characters.",
            {"field": "client_order_id"},
        )
    return OrderInput(
        asset=str(asset).upper(),
        side=side,
        order_type=order_type,
        size=_decimal(size, ErrorCode.INVALID_SIZE, "size", SIZE_INPUT),
        limit_price=price,
        leverage=leverage,
        margin_mode=margin_mode,
        reduce_only=bool(reduce_only),
        tif=tif if order_type == Order.Type.LIMIT else Order.Tif.IOC,
        slippage_bps=slippage_bps,
        client_order_id=client_order_id or None,
        position_id=position_id,
    )


# ------------------------------------------------------------------------------------------ helpers


def _market(asset: str) -> Market:
    try:
        return market_get(asset)
    except Market.DoesNotExist:
        raise ApplicationError(
            ErrorCode.UNKNOWN_SYMBOL, f"Unknown symbol {asset}.", {"field": "symbol"}
        ) from None


def _validate_against_market(inp: OrderInput, market: Market, settings: TradingSettings) -> None:
    if market.is_delisted:
        raise ApplicationError(ErrorCode.SYMBOL_SUSPENDED, f"{market.asset} is delisted.")
    if not margin.is_valid_size(inp.size, market.sz_decimals):
        raise ApplicationError(
            ErrorCode.INVALID_SIZE,
            f"Size must be a multiple of {Decimal(1).scaleb(-market.sz_decimals)} for {market.asset}.",
            {
                "field": "size",
                "sz_decimals": market.sz_decimals,
                "nearest": str(margin.round_size(inp.size, market.sz_decimals)),
            },
        )
    if inp.limit_price is not None and not margin.is_valid_price(inp.limit_price, market.sz_decimals):
        raise ApplicationError(
            ErrorCode.INVALID_PRICE,
            "Price must have at most 5 significant figures and "
            f"{6 - market.sz_decimals} decimals for {market.asset}.",
            {"field": "limit_price", "nearest": str(margin.round_price(inp.limit_price, market.sz_decimals))},
        )
    if inp.leverage is not None and inp.leverage > market.max_leverage:
        raise ApplicationError(
            ErrorCode.LEVERAGE_EXCEEDED,
            f"{market.asset} allows at most {market.max_leverage}x.",
            {"field": "leverage", "max_leverage": market.max_leverage},
        )
    if market.only_isolated and inp.margin_mode != MarginMode.ISOLATED and not inp.reduce_only:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR,
            f"{market.asset} trades in isolated margin only.",
            {"field": "margin_mode"},
        )
    if inp.slippage_bps is not None and inp.slippage_bps > settings.max_slippage_bps:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR,
            f"slippage_bps may be at most {settings.max_slippage_bps}.",
            {"field": "slippage_bps"},
        )


def _quote_or_fail(asset: str, settings: TradingSettings) -> Quote:
    quote = get_quote(asset)
    if quote is None or not quote.mark:
        raise ApplicationError(
            ErrorCode.STALE_PRICE, f"No live price for {asset}; try again shortly.", http_status=503
        )
    return quote


def _event(order: Order, status: str, **detail: Any) -> OrderEvent:
    return OrderEvent(order=order, status=status, detail=detail, created_at=timezone.now())


def _set_status(order: Order, status: str, **detail: Any) -> None:
    order.status = status
    order.updated_at = timezone.now()
    OrderEvent.objects.create(order=order, status=status, detail=detail)


def _balances(user_id: int) -> tuple[Decimal, Decimal]:
    """(cash, order holds) of a user from the ledger."""
    balances = user_balances(user_id)
    return balances.get(AccountKind.CASH, ZERO), balances.get(AccountKind.ORDER_HOLD, ZERO)


def _open_positions(user_id: int, *, lock: bool = False) -> list[Position]:
    qs = Position.objects.filter(user_id=user_id, status=Position.Status.OPEN).order_by("id")
    if lock:
        qs = qs.select_for_update()
    return list(qs)


def _user_state(user_id: int, positions: list[Position]) -> AccountState:
    cash, holds = _balances(user_id)
    assets = sorted({p.asset for p in positions})
    quotes = get_quotes(assets) if assets else {}
    return account_state(cash=cash, order_holds=holds, positions=positions, quotes=quotes)


def _set_liquidation_prices(state: AccountState) -> list[Position]:
    """Set each position's displayed liquidation price from ``state``; returns those that moved."""
    changed = []
    for view in state.positions:
        liq = (
            view.liquidation_price.quantize(Decimal("0.00000001"), rounding=ROUND_HALF_EVEN)
            if view.liquidation_price
            else None
        )
        if view.position.liquidation_price != liq:
            view.position.liquidation_price = liq
            changed.append(view.position)
    return changed


def _refresh_liquidation_prices(state: AccountState) -> None:
    changed = _set_liquidation_prices(state)
    if changed:
        Position.objects.bulk_update(changed, ["liquidation_price"])


def _leverage_for(locked: _Locked, inp: OrderInput, market: Market, existing: Position | None) -> int:
    if existing is not None:
        return existing.leverage
    if inp.leverage is not None:
        return inp.leverage
    return min(locked.leverage or DEFAULT_LEVERAGE, market.max_leverage)


@dataclass
class _Locked:
    """What one order transaction reads under the user's lock, in one round trip (``_lock_and_read``)."""

    positions: list[Position]  # open, locked
    balances: dict[str, Decimal]  # ledger key -> balance of the user's USDC accounts holding money, locked
    cash: Decimal
    holds: Decimal
    leverage: int | None  # the user's LeverageSetting for the asset and margin mode
    order_id: int | None
    fill_ids: list[int]
    position_id: int | None
    order: Order | None = None  # an existing order read (and locked) with the rest (``lock_order``)


def _lock_and_read(
    user_id: int,
    inp: OrderInput | None = None,
    *,
    draw_fill_ids: bool,
    asset: str = "",
    margin_mode: str = "",
    source: str = Source.INTERNAL,
    lock_order: int | None = None,
) -> _Locked:
    """One round trip: the user's advisory lock (``core.locks.user_lock``, taken first as
    everywhere), then — under it — the open positions (locked), the user's USDC ledger accounts that
    hold money plus cash (locked: they are the balances the margin check uses and the fill posts to;
    lock order user accounts → platform accounts as in ``wallets.ledger``), the leverage setting, and
    ids drawn for the order, its fill and a position it may open (a new ``source`` position only when
    no open one of the same key exists). ``lock_order``: an existing order of the user, locked and
    read too (a fill of an order placed earlier)."""
    if not connection.in_atomic_block:
        raise RuntimeError("the order path runs inside a transaction")
    asset = inp.asset if inp is not None else asset
    margin_mode = inp.margin_mode if inp is not None else margin_mode
    batch = SqlBatch()
    batch.add("SELECT pg_advisory_xact_lock(%s, %s)", [USER_NAMESPACE, int(user_id)])
    i_positions = batch.add(
        f"SELECT {_position_columns()} FROM {Position._meta.db_table} "  # noqa: S608 - our own column names
        "WHERE user_id = %s AND status = %s ORDER BY id FOR UPDATE",
        [user_id, Position.Status.OPEN],
    )
    i_accounts = batch.add(
        "SELECT key, kind, balance FROM ledger_accounts WHERE user_id = %s AND asset = %s "
        "AND (balance <> 0 OR kind = %s) ORDER BY id FOR UPDATE",
        [user_id, USDC, AccountKind.CASH],
    )
    i_leverage = batch.add(
        f"SELECT leverage FROM {LeverageSetting._meta.db_table} "  # noqa: S608
        "WHERE user_id = %s AND asset = %s AND margin_mode = %s",
        [user_id, asset, margin_mode],
    )
    order_seq = "nextval(pg_get_serial_sequence('trading_order', 'id'))" if inp is not None else "NULL"
    i_ids = batch.add(
        f"SELECT {order_seq}, "  # noqa: S608
        "CASE WHEN %s THEN nextval(pg_get_serial_sequence('trading_fill', 'id')) END, "
        "CASE WHEN %s AND NOT EXISTS (SELECT 1 FROM trading_position WHERE user_id = %s AND asset = %s "
        "AND source = %s AND margin_mode = %s AND status = %s) "
        "THEN nextval(pg_get_serial_sequence('trading_position', 'id')) END",
        [draw_fill_ids, draw_fill_ids, user_id, asset, source, margin_mode, Position.Status.OPEN],
    )
    i_order = -1
    if lock_order is not None:
        i_order = batch.add(
            f"SELECT {_order_columns()} FROM {Order._meta.db_table} "  # noqa: S608 - our own column names
            "WHERE id = %s AND user_id = %s FOR UPDATE",
            [lock_order, user_id],
        )
    results = prepared.run(batch)
    names = _position_attnames()
    positions = [Position.from_db("default", names, row) for row in results[i_positions] or []]
    balances: dict[str, Decimal] = {}
    per_kind: dict[str, Decimal] = {}
    for key, kind, balance in results[i_accounts] or []:
        balances[key] = balance
        per_kind[kind] = per_kind.get(kind, ZERO) + balance
    leverage_rows = results[i_leverage] or []
    order_id, fill_id, position_id = (results[i_ids] or [(None, None, None)])[0]
    order_rows = (results[i_order] or []) if lock_order is not None else []
    return _Locked(
        order=Order.from_db("default", _order_attnames(), order_rows[0]) if order_rows else None,
        positions=positions,
        balances=balances,
        cash=per_kind.get(AccountKind.CASH, ZERO),
        holds=per_kind.get(AccountKind.ORDER_HOLD, ZERO),
        leverage=leverage_rows[0][0] if leverage_rows else None,
        order_id=order_id,
        fill_ids=[fill_id] if fill_id is not None else [],
        position_id=position_id,
    )


@functools.cache
def _attnames(model: type[Model]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields]


@functools.cache
def _columns(model: type[Model]) -> str:
    return ", ".join(connection.ops.quote_name(str(f.column)) for f in model._meta.concrete_fields)


def _position_attnames() -> list[str]:
    return _attnames(Position)


def _position_columns() -> str:
    return _columns(Position)


def _order_attnames() -> list[str]:
    return _attnames(Order)


def _order_columns() -> str:
    return _columns(Order)


def _decide(
    inp: OrderInput, market: Market, quote: Quote, settings: TradingSettings, user_id: int
) -> Decision:
    assert quote.mark is not None  # _quote_or_fail refused quotes without a mark
    decision = decide(
        notional=inp.size * quote.mark,
        config=asset_routing(market.asset),
        in_cohort=in_canary_cohort(user_id),
    )
    if decision.route is Route.INTERNAL and not quote.is_book_fresh(settings.book_stale_seconds):
        decision = Decision(Route.HYPERLIQUID, Reason.STALE_PRICE, decision.mode, decision.threshold)
    return decision


_PENDING = "_xbit_pending_writes"


@dataclass
class _OrderWrites:
    """A new order's INSERT, its lifecycle events and its routing decision log, held back so a fill can
    send them with its own writes in one round trip. Any other path writes them first
    (``_ensure_written``), so the ORM code after it finds the row in place."""

    order: Order
    events: list[OrderEvent]
    log: RoutingDecisionLog | None

    def attach(self) -> None:
        setattr(self.order, _PENDING, self)

    def queue(self, batch: SqlBatch) -> None:
        setattr(self.order, _PENDING, None)
        batch.add(*insert_statement(Order, [self.order], with_pk=True))
        batch.add(*insert_statement(OrderEvent, self.events, with_pk=False))
        if self.log is not None:
            batch.add(*insert_statement(RoutingDecisionLog, [self.log], with_pk=False))
        self.order._state.adding = False
        self.order._state.db = "default"


def _pending_writes(order: Order) -> _OrderWrites | None:
    return getattr(order, _PENDING, None)


def _ensure_written(order: Order) -> None:
    writes = _pending_writes(order)
    if writes is not None:
        batch = SqlBatch()
        writes.queue(batch)
        prepared.run(batch)


def _fee_rate(settings: TradingSettings, route: str, *, maker: bool) -> Decimal:
    return settings.fees[route].rate(maker=maker)


# ------------------------------------------------------------------------------------------ place


def order_validate(inp: OrderInput) -> None:
    """The checks ``order_place`` makes against the market before anything is written (symbol, size and
    price steps, notional, leverage): raises the same errors, writes nothing."""
    settings = trading_settings()
    _validate_against_market(inp, _market(inp.asset), settings)


def order_place(*, user: User, inp: OrderInput) -> Order:
    """Place an order (spec 02). Idempotent on ``client_order_id``: the same id returns the same order
    (or the same rejection); the same id with other parameters is IDEMPOTENCY_CONFLICT.

    Side effects (one transaction): order + lifecycle events, routing decision log, and for an
    INTERNAL fill the fill, position, ledger transfers and an outbox ``trading.fill`` event; for a
    resting internal limit order a margin + fee hold."""
    fingerprint = inp.fingerprint()
    if inp.client_order_id:
        existing = Order.objects.filter(user=user, client_order_id=inp.client_order_id).first()
        if existing is not None:
            return _replay(existing, fingerprint)
    settings = trading_settings()
    market = _market(inp.asset)
    _validate_against_market(inp, market, settings)
    if (user.trading_restricted or user.blacklisted) and not inp.reduce_only:
        raise ApplicationError(ErrorCode.USER_RESTRICTED, "This account may only reduce positions.")
    quote = _quote_or_fail(market.asset, settings)
    started = time.perf_counter_ns()
    # An opening order's venue depends only on its notional and the routing config, not on locked
    # state: decide before the transaction (and draw fill/position ids with the locking read when the
    # order is likely to fill internally).
    decision = None if inp.reduce_only else _decide(inp, market, quote, settings, user.pk)
    latency_us = (time.perf_counter_ns() - started) // 1000
    if decision is not None:
        metrics.ROUTING_DECISIONS.labels(decision.route.value, str(decision.reason)).inc()
        metrics.ROUTING_DECISION_SECONDS.observe(latency_us / 1_000_000)
    rejection: ApplicationError | None = None
    try:
        with transaction.atomic():
            locked = _lock_and_read(
                user.pk, inp, draw_fill_ids=decision is None or decision.route is Route.INTERNAL
            )
            try:
                order = _place_locked(
                    user=user,
                    inp=inp,
                    market=market,
                    quote=quote,
                    settings=settings,
                    fingerprint=fingerprint,
                    decision=decision,
                    latency_us=latency_us,
                    locked=locked,
                )
            except _RejectAfterCommit as rejected:
                rejection = rejected.error  # the REJECTED order commits; the caller gets the error
    except IntegrityError as exc:
        if inp.client_order_id and "order_client_id_unique_per_user" in str(exc):
            return _replay(Order.objects.get(user=user, client_order_id=inp.client_order_id), fingerprint)
        raise
    bind_order(order.pk if rejection is None else (rejection.details or {}).get("order_id"))
    if rejection is not None:
        raise rejection
    if order.route == Source.INTERNAL and order.status == Order.Status.FILLED:
        metrics.INTERNAL_EXECUTION_SECONDS.observe((time.perf_counter_ns() - started) / 1e9)
    if order.route == Source.HYPERLIQUID and order.status == Order.Status.ACCEPTED:
        # the hold is committed; now (and only now) the order leaves for HL — no transaction is open
        # during the network call
        from trading import hl_execution

        order = hl_execution.send_and_apply(order=order, quote=quote)
        if order.status == Order.Status.REJECTED and order.error_code:
            raise ApplicationError(ErrorCode(order.error_code), order.error_message, {"order_id": order.pk})
    return order


def _replay(order: Order, fingerprint: str) -> Order:
    if order.request_hash != fingerprint:
        raise ApplicationError(
            ErrorCode.IDEMPOTENCY_CONFLICT,
            "This client_order_id was already used with different parameters.",
            {"order_id": order.pk, "client_order_id": order.client_order_id},
        )
    if order.status == Order.Status.REJECTED and order.error_code:
        raise ApplicationError(
            ErrorCode(order.error_code), order.error_message, {"order_id": order.pk, "replayed": True}
        )
    return order


def _reject(order: Order, code: ErrorCode, message: str, **details: Any) -> ApplicationError:
    """Persist a rejection (support sees it, a retry replays it) and build the error to raise after
    the transaction commits."""
    _ensure_written(order)
    _release_hold(order)
    order.status = Order.Status.REJECTED
    order.error_code = str(code)
    order.error_message = message
    order.updated_at = timezone.now()
    order.save(update_fields=["status", "error_code", "error_message", "hold_amount", "updated_at"])
    OrderEvent.objects.create(
        order=order, status=order.status, detail={"code": str(code), "message": message}
    )
    return ApplicationError(code, message, {"order_id": order.pk, **details})


def _place_locked(
    *,
    user: User,
    inp: OrderInput,
    market: Market,
    quote: Quote,
    settings: TradingSettings,
    fingerprint: str,
    decision: Decision | None,
    latency_us: int,
    locked: _Locked,
) -> Order:
    positions = locked.positions
    reduce_target = _reduce_target(inp, positions) if inp.reduce_only else None
    if inp.reduce_only and reduce_target is None:
        raise ApplicationError(ErrorCode.REDUCE_ONLY, "Reduce-only order but there is no position to reduce.")
    if not inp.reduce_only:
        if market.trading_state == TradingState.HALTED:
            raise ApplicationError(
                ErrorCode.MARKET_HALTED,
                f"{market.asset} is halted: {market.state_reason or 'by risk control'}.",
            )
        if market.trading_state == TradingState.REDUCE_ONLY:
            raise ApplicationError(ErrorCode.REDUCE_ONLY, f"{market.asset} accepts reduce-only orders only.")
    mark = quote.mark
    assert mark is not None  # _quote_or_fail refused quotes without a mark
    price_for_value = inp.limit_price or mark
    notional = inp.size * mark
    limit = kyc_limits_for(user) if not inp.reduce_only else None  # one cached read on the hot path
    if limit is not None and notional > limit.max_order_notional:
        raise ApplicationError(
            ErrorCode.KYC_LIMIT_EXCEEDED,
            f"Your verification level ({limit.status}) allows orders up to {limit.max_order_notional:,.0f} USDC.",
            {"max_order_notional": str(limit.max_order_notional)},
        )
    if not inp.reduce_only and inp.size * price_for_value < settings.min_order_value:
        raise ApplicationError(
            ErrorCode.MIN_NOTIONAL,
            f"Order value must be at least {settings.min_order_value} USDC.",
            {"min_order_value": str(settings.min_order_value)},
        )
    if reduce_target is not None and inp.size > reduce_target.size:
        raise ApplicationError(
            ErrorCode.REDUCE_ONLY,
            "A reduce-only order cannot be larger than the position.",
            {"position_size": str(reduce_target.size)},
        )

    # venue: a reduction goes where the position is; an opening order asked routing (order_place)
    if reduce_target is not None:
        decision = Decision(
            Route(reduce_target.source), "position_venue", asset_routing(market.asset).mode, None
        )
    assert decision is not None

    source = decision.route.value if decision.route is not Route.NONE else Source.HYPERLIQUID
    same_key = next(
        (
            p
            for p in positions
            if p.asset == market.asset and p.source == source and p.margin_mode == inp.margin_mode
        ),
        None,
    )
    leverage = _leverage_for(
        locked,
        inp,
        market,
        same_key
        if same_key is not None and same_key.direction == ("LONG" if inp.side == "BUY" else "SHORT")
        else None,
    )
    now = timezone.now()
    order = Order(
        id=locked.order_id,
        user=user,
        client_order_id=inp.client_order_id,
        request_hash=fingerprint,
        asset=market.asset,
        side=inp.side,
        order_type=inp.order_type,
        size=inp.size,
        limit_price=inp.limit_price,
        leverage=leverage,
        margin_mode=inp.margin_mode,
        reduce_only=inp.reduce_only,
        tif=inp.tif,
        slippage_bps=inp.slippage_bps,
        position=reduce_target,
        status=Order.Status.ACCEPTED,
        route=decision.route.value if decision.route is not Route.NONE else None,
        reference_price=quote.mark,
        created_at=now,
        updated_at=now,
    )
    log = None
    if reduce_target is None:
        log = RoutingDecisionLog(
            order_id=order.pk,
            user_id=user.pk,
            asset=market.asset,
            notional=q_usdc(notional),
            route=decision.route.value,
            mode=decision.mode.value,
            threshold=decision.threshold,
            reason=str(decision.reason),
            latency_us=latency_us,
            created_at=now,
        )
    # written with the fill (one round trip) or, on any other path, before the order is next touched
    _OrderWrites(
        order, [_event(order, Order.Status.NEW), _event(order, Order.Status.ACCEPTED, route=order.route)], log
    ).attach()

    if decision.route is Route.NONE:
        error = _reject(
            order,
            ErrorCode.NO_ROUTE,
            f"No venue can take this order now ({decision.reason}).",
            reason=str(decision.reason),
        )
        raise _RejectAfterCommit(error)
    if decision.route is Route.HYPERLIQUID:
        from trading import hl_execution

        if not hl_execution.available():
            error = _reject(
                order,
                ErrorCode.NO_ROUTE,
                "Orders routed to Hyperliquid are not available yet.",
                reason=str(decision.reason),
            )
            raise _RejectAfterCommit(error)
        return _prepare_hl(order=order, market=market, quote=quote, settings=settings, locked=locked)
    return _execute_internal(order=order, market=market, quote=quote, settings=settings, locked=locked)


def _prepare_hl(
    *, order: Order, market: Market, quote: Quote, settings: TradingSettings, locked: _Locked
) -> Order:
    """HL-routed (spec 02, step 1 of ``trading.hl_execution``): margin checked and frozen at the price
    that will be sent (worst case for a market order), the cloid derived from the order id, and the
    order marked submitted — written with the order itself in ONE round trip. The send happens right
    after this transaction commits, by this caller only (``hl_submitted_at`` is committed first: a
    crash in between leaves an order the resolver finds unknown to HL and fails once the request's
    expiry, anchored on ``hl_submitted_at``, has passed)."""
    from trading import hl_execution
    from trading.venues.hl import order_cloid

    positions = locked.positions
    price = hl_execution.send_price(order, market, quote)
    fee_rate = _fee_rate(settings, Source.HYPERLIQUID, maker=False)
    cash, holds = locked.cash, locked.holds
    quotes = _quotes_for(quote, positions)
    state = account_state(cash=cash, order_holds=holds, positions=positions, quotes=quotes)
    _margin_check(order=order, price=price, positions=positions, fee_rate=fee_rate, state=state)
    key = next(
        (
            p
            for p in positions
            if p.asset == order.asset
            and p.source == Source.HYPERLIQUID
            and p.margin_mode == order.margin_mode
        ),
        None,
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
    hold = hl_execution.hold_for(order, price, effect.opened_size, fee_rate)
    now = timezone.now()
    order.hl_limit_price = price
    order.cloid = order_cloid(order.pk)
    order.hold_amount = hold
    order.hl_submitted_at = now
    order.updated_at = now
    batch = SqlBatch()
    writes = _pending_writes(order)
    if writes is not None:
        writes.queue(batch)  # the order is inserted in this state
    else:
        batch.add(*update_statement(order, _ORDER_HL_PREPARE_FIELDS))
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
    prepared.run(batch)
    return order


_ORDER_HL_PREPARE_FIELDS = ("hl_limit_price", "cloid", "hold_amount", "hl_submitted_at", "updated_at")


class _RejectAfterCommit(Exception):
    """Carries a rejection out of ``transaction.atomic`` without rolling back the REJECTED order."""

    def __init__(self, error: ApplicationError) -> None:
        self.error = error


def _reduce_target(inp: OrderInput, positions: list[Position]) -> Position | None:
    opposite = "SHORT" if inp.side == "BUY" else "LONG"
    candidates = [p for p in positions if p.asset == inp.asset and p.direction == opposite]
    if inp.position_id is not None:
        return next((p for p in candidates if p.pk == inp.position_id), None)
    same_mode = [p for p in candidates if p.margin_mode == inp.margin_mode]
    pool = same_mode or candidates
    if len(pool) > 1:
        raise ApplicationError(
            ErrorCode.VALIDATION_ERROR,
            "You hold this asset on more than one venue: say which position to reduce.",
            {"field": "position_id", "positions": [p.pk for p in pool]},
        )
    return pool[0] if pool else None


# ------------------------------------------------------------------------------------------ INTERNAL


def _execute_internal(
    *, order: Order, market: Market, quote: Quote, settings: TradingSettings, locked: _Locked
) -> Order:
    positions = locked.positions
    if order.order_type == Order.Type.MARKET:
        price = quote.ask if order.side == "BUY" else quote.bid
        if not price:
            raise _RejectAfterCommit(_reject(order, ErrorCode.STALE_PRICE, "No book to fill against."))
        slippage = (
            order.slippage_bps if order.slippage_bps is not None else settings.market_default_slippage_bps
        )
        mark = quote.mark
        assert mark is not None
        if abs(price - mark) * 10_000 > mark * slippage:
            raise _RejectAfterCommit(
                _reject(
                    order,
                    ErrorCode.SLIPPAGE_EXCEEDED,
                    f"Fill price {price} is more than {slippage} bps from mark {quote.mark}.",
                )
            )
        return _fill_internal(
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
            raise _RejectAfterCommit(
                _reject(order, ErrorCode.INVALID_PRICE, "Post-only order would have matched immediately.")
            )
        return _fill_internal(
            order=order,
            market=market,
            price=touch,
            maker=False,
            settings=settings,
            positions=positions,
            locked=locked,
            quote=quote,
        )
    _ensure_written(order)
    if order.tif == Order.Tif.IOC:
        order.status = Order.Status.CANCELLED
        order.save(update_fields=["status", "updated_at"])
        OrderEvent.objects.create(order=order, status=order.status, detail={"reason": "IOC could not match"})
        return order
    return _rest_internal(order=order, market=market, settings=settings, positions=positions, locked=locked)


def _margin_check(
    *,
    order: Order,
    price: Decimal,
    positions: list[Position],
    fee_rate: Decimal,
    state: AccountState,
    hold: Decimal = ZERO,
) -> None:
    """Enough free money for the part of the order that opens or grows exposure (spec 02 pre-trade):
    isolated needs cash ≥ IM + fee; cross needs available-to-trade ≥ IM + fee."""
    if order.reduce_only:
        return
    key = next(
        (
            p
            for p in positions
            if p.asset == order.asset and p.source == order.route and p.margin_mode == order.margin_mode
        ),
        None,
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
        return
    free = state.cash if order.margin_mode == MarginMode.ISOLATED else state.available_to_trade
    free += hold  # an order's own hold is released when it fills
    if free < needed:
        raise _RejectAfterCommit(
            _reject(
                order,
                ErrorCode.INSUFFICIENT_MARGIN,
                "Not enough margin for this order.",
                required=str(needed),
                available=str(max(free, ZERO)),
            )
        )


def _fill_internal(
    *,
    order: Order,
    market: Market,
    price: Decimal,
    maker: bool,
    settings: TradingSettings,
    positions: list[Position],
    locked: _Locked,
    quote: Quote,
    hold: Decimal = ZERO,
    fill_size: Decimal | None = None,
) -> Order:
    """Fill (the rest of) an internal order at ``price``: margin checked, then everything computed in
    memory from the locking read and written in ONE round trip (``_fill_locked``)."""
    fee_rate = _fee_rate(settings, Source.INTERNAL, maker=maker)
    # one read of balances and marks serves the margin check, the fill and the liquidation prices after it
    quotes = _quotes_for(quote, positions)
    state = account_state(cash=locked.cash, order_holds=locked.holds, positions=positions, quotes=quotes)
    _margin_check(order=order, price=price, positions=positions, fee_rate=fee_rate, state=state, hold=hold)
    target = (
        order.position
        if order.reduce_only
        else next(
            (
                p
                for p in positions
                if p.asset == order.asset
                and p.source == Source.INTERNAL
                and p.margin_mode == order.margin_mode
            ),
            None,
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
    return _fill_locked(
        order=order,
        req=req,
        target=target,
        locked=locked,
        quotes=quotes,
        hold=hold,
        status=status,
        detail={"price": str(price), "size": str(size)},
    )


def _fill_locked(
    *,
    order: Order,
    req: FillRequest,
    target: Position | None,
    locked: _Locked,
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
    fill_ids, position_id = _ids_for(locked, req, target)
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
    event = _event(order, status, **detail)
    remaining = [
        p for p in locked.positions if p.status == Position.Status.OPEN and p not in result.closed_positions
    ]
    if result.position is not None and result.position not in remaining:
        remaining.append(result.position)
    after = account_state(
        cash=result.cash_after, order_holds=locked.holds - hold, positions=remaining, quotes=quotes
    )
    moved = _set_liquidation_prices(after)

    writes = _pending_writes(order)
    if writes is not None:
        writes.events.append(event)
        writes.queue(batch)
    else:
        batch.add(*update_statement(order, _ORDER_FILL_FIELDS + order_fields))
        batch.add(*insert_statement(OrderEvent, [event], with_pk=False))
    fill_statements(batch, plan, balances)
    written = {p.pk for p in plan.updated} | ({plan.created.pk} if plan.created is not None else set())
    for p in moved:
        if p.pk not in written:
            batch.add(*update_statement(p, ("liquidation_price",)))
    prepared.run(batch)
    return order


def hl_order_fill(
    *, order: Order, hl_oid: int, size: Decimal, price: Decimal, quote: Quote | None = None
) -> Order:
    """HL answered ``filled`` for an order we sent (total ``size`` at the average ``price``): book it at
    once in ONE transaction under the user's lock — the hold released, the order done (FILLED, or
    CANCELLED for the unfilled rest of an IOC), the fill at HL's average price (VWAP entry), position,
    the user's fee, ledger, outbox event — like an internal fill. HL's own per-trade details (trade
    ids, the fee HL charged the platform) follow asynchronously: ``hl_execution.fill_details_reconcile``.

    Idempotent: only an order still ACCEPTED is booked (a resolver that got there first, having applied
    HL's trades one by one, wins; this call then returns the order as it is). ``quote``: the order's
    quote read before the send (the liquidation prices use it); read again when not given. ``order``
    supplies only what never changes (user, asset, margin mode): its state is re-read under the lock."""
    if size <= ZERO or price <= ZERO:
        raise ValueError(f"HL reported a fill of {size} at {price}")
    settings = trading_settings()
    if quote is None or quote.asset != order.asset:
        quote = get_quote(order.asset)
    with transaction.atomic():
        locked = _lock_and_read(
            order.user_id,
            draw_fill_ids=True,
            asset=order.asset,
            margin_mode=order.margin_mode,
            source=Source.HYPERLIQUID,
            lock_order=order.pk,
        )
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
            target = next(
                (
                    p
                    for p in positions
                    if p.asset == order.asset
                    and p.source == Source.HYPERLIQUID
                    and p.margin_mode == order.margin_mode
                ),
                None,
            )
        if target is not None and order.position_id == target.pk:
            order.position = target  # the locked instance: the fill and liquidation prices see one object
        size = min(size, order.remaining)
        fee_rate = _fee_rate(settings, Source.HYPERLIQUID, maker=False)  # answered at once: it crossed
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
            _quotes_for(quote, positions) if quote is not None else get_quotes({p.asset for p in positions})
        )
        return _fill_locked(
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


_ORDER_FILL_FIELDS = (
    "filled_size",
    "avg_fill_price",
    "fee_total",
    "status",
    "updated_at",
    "position",
    "hold_amount",
)


def _ids_for(locked: _Locked, req: FillRequest, target: Position | None) -> tuple[list[int], int | None]:
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


def _quotes_for(quote: Quote, positions: list[Position]) -> dict[str, Quote]:
    """Marks for the account state: the order's own quote (already read) and one pipelined read of the
    other assets the user holds."""
    others = sorted({p.asset for p in positions} - {quote.asset})
    quotes = get_quotes(others) if others else {}
    quotes[quote.asset] = quote
    return quotes


def _rest_internal(
    *, order: Order, market: Market, settings: TradingSettings, positions: list[Position], locked: _Locked
) -> Order:
    """Park the order in the internal queue with a hold of IM + maker fee at its limit price."""
    assert order.limit_price is not None
    _ensure_written(order)
    fee_rate = _fee_rate(settings, Source.INTERNAL, maker=True)
    open_count = Order.objects.filter(user_id=order.user_id, status__in=OPEN_STATUSES).count()
    if open_count > settings.max_open_orders_per_user:
        raise _RejectAfterCommit(
            _reject(
                order, ErrorCode.RATE_LIMITED, f"At most {settings.max_open_orders_per_user} open orders."
            )
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
            raise _RejectAfterCommit(
                _reject(
                    order,
                    ErrorCode.INSUFFICIENT_MARGIN,
                    "Not enough margin to rest this order.",
                    required=str(hold),
                    available=str(max(free, ZERO)),
                )
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


# ------------------------------------------------------------------------------------------ public wrappers


def order_cancel(*, user: User, order_id: int) -> Order:
    """Cancel an open order; an internal one releases its hold. Cancelling a finished order is
    INVALID_STATE (with its status), cancelling twice returns the cancelled order."""
    with transaction.atomic():
        user_lock(user.pk)
        order = Order.objects.select_for_update().filter(user=user, pk=order_id).first()
        if order is None:
            raise ApplicationError(ErrorCode.NOT_FOUND, "No such order.")
        if order.status == Order.Status.CANCELLED:
            return order
        if order.status not in OPEN_STATUSES:
            raise ApplicationError(
                ErrorCode.INVALID_STATE, f"The order is {order.status}.", {"status": order.status}
            )
        if order.route == Source.HYPERLIQUID:
            from trading import hl_execution

            return hl_execution.cancel(order=order)
        _release_hold(order)
        _set_status(order, Order.Status.CANCELLED, by="user")
        order.save(update_fields=["status", "hold_amount", "updated_at"])
        return order


def _release_hold(order: Order) -> None:
    if order.hold_amount > ZERO:
        ledger_post(
            key=f"order-hold-release:{order.pk}",
            transfers=[
                TransferSpec(
                    AccountRef.user(order.user_id, AccountKind.ORDER_HOLD, sub=f"order:{order.pk}"),
                    AccountRef.user(order.user_id, AccountKind.CASH),
                    order.hold_amount,
                    TransferKind.ORDER_RELEASE,
                    "order",
                    order.pk,
                )
            ],
        )
        order.hold_amount = ZERO


def position_close(
    *, user: User, position_id: int, size: Any = None, client_order_id: str | None = None
) -> Order:
    """Close all or part of a position at market on its own venue (spec 02 Closing)."""
    position = Position.objects.filter(user=user, pk=position_id, status=Position.Status.OPEN).first()
    if position is None:
        raise ApplicationError(ErrorCode.NOT_FOUND, "No such open position.")
    amount = (
        position.size if size in (None, "") else _decimal(size, ErrorCode.INVALID_SIZE, "size", SIZE_INPUT)
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
    return order_place(user=user, inp=inp)


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
        quote = _quote_or_fail(position.asset, trading_settings())
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
        _refresh_liquidation_prices(_user_state(user.pk, _open_positions(user.pk)))
        position.refresh_from_db()
    return position


@transaction.atomic
def leverage_set(*, user: User, asset: str, margin_mode: str, leverage: int) -> LeverageSetting:
    """The leverage for the next orders of this asset and margin mode. An open cross position takes
    the new leverage only if the account stays within its initial margin; an open isolated position
    keeps its leverage (add or remove margin instead)."""
    user_lock(user.pk)
    market = _market(asset)
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
    positions = _open_positions(user.pk, lock=True)
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
        state = _user_state(user.pk, positions)
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
    try:
        with transaction.atomic():
            locked = _lock_and_read(
                order.user_id, draw_fill_ids=True, asset=order.asset, margin_mode=order.margin_mode
            )
            order = Order.objects.select_for_update(of=("self",)).select_related("position").get(pk=order_id)
            if order.status not in OPEN_STATUSES or order.route != Source.INTERNAL:
                return order
            touch = quote.ask if order.side == "BUY" else quote.bid
            if not touch or (touch > order.limit_price if order.side == "BUY" else touch < order.limit_price):
                return order
            market = _market(order.asset)
            positions = locked.positions
            if order.reduce_only and (
                order.position is None or order.position.status != Position.Status.OPEN
            ):
                _release_hold(order)
                _set_status(order, Order.Status.CANCELLED, reason="position closed")
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
            return _fill_internal(
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
    except _RejectAfterCommit:
        return Order.objects.get(pk=order_id)


def orders_expire(*, now: Any = None, limit: int = 500) -> int:
    """Expire GTC internal orders past their ``expires_at`` (spec 02: 7 days), releasing holds."""
    now = now or timezone.now()
    expired = 0
    ids = list(
        Order.objects.filter(
            status__in=OPEN_STATUSES, route=Source.INTERNAL, expires_at__lte=now
        ).values_list("id", "user_id")[:limit]
    )
    for order_id, user_id in ids:
        with transaction.atomic():
            user_lock(user_id)
            order = Order.objects.select_for_update().get(pk=order_id)
            if order.status not in OPEN_STATUSES:
                continue
            _release_hold(order)
            _set_status(order, Order.Status.EXPIRED, reason="GTC expiry")
            order.save(update_fields=["status", "hold_amount", "updated_at"])
            expired += 1
    return expired
