"""What every order transaction shares: the user's lock and the one-round-trip locked read
(``lock_and_read``), the user's account state and the displayed liquidation prices, the order's
deferred first writes (``OrderWrites``), events, rejection (``reject_order``: the REJECTED row commits with
the transaction and the error, kept on the ``LockedRead``, is raised after it) and the release of an
order's hold.

Each service is one transaction that first takes the user's advisory lock (``core.locks``), so one
user's margin checks and postings are serialised while different users run in parallel."""

from __future__ import annotations

import functools
import logging
from concurrent.futures import Future
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from django.db import connection
from django.db.models import Model
from django.utils import timezone

from core.errors import ApplicationError, ErrorCode
from core.locks import USER_NAMESPACE
from core.money import (
    ZERO,
)
from core.sql import prepared
from core.sql.batch import SqlBatch, insert_statement, new_instance
from core.sql.transaction import LastBatchCommit
from routing.models import RoutingDecisionLog
from trading.account import AccountState, account_state, user_balances
from trading.config import TradingSettings
from trading.marketdata import get_quotes
from trading.models import (
    LeverageSetting,
    Market,
    Order,
    OrderEvent,
    Position,
    Source,
)
from trading.orders.input import DEFAULT_LEVERAGE, OrderInput
from wallets.ledger import AccountRef, TransferSpec, ledger_post
from wallets.models import USDC, AccountKind, LedgerAccount, TransferKind

logger = logging.getLogger(__name__)

OPEN_STATUSES = (Order.Status.OPEN, Order.Status.PARTIALLY_FILLED)


def order_event(order: Order, status: str, **detail: Any) -> OrderEvent:
    return new_instance(OrderEvent, order=order, status=status, detail=detail, created_at=timezone.now())


def order_status_set(order: Order, status: str, **detail: Any) -> None:
    order.status = status
    order.updated_at = timezone.now()
    OrderEvent.objects.create(order=order, status=status, detail=detail)


def cash_and_holds(user_id: int) -> tuple[Decimal, Decimal]:
    """(cash, order holds) of a user from the ledger."""
    balances = user_balances(user_id)
    return balances.get(AccountKind.CASH, ZERO), balances.get(AccountKind.ORDER_HOLD, ZERO)


def open_positions(user_id: int, *, lock: bool = False) -> list[Position]:
    qs = Position.objects.filter(user_id=user_id, status=Position.Status.OPEN).order_by("id")
    if lock:
        qs = qs.select_for_update()
    return list(qs)


def account_state_of(user_id: int, positions: list[Position]) -> AccountState:
    cash, holds = cash_and_holds(user_id)
    assets = sorted({p.asset for p in positions})
    quotes = get_quotes(assets) if assets else {}
    return account_state(cash=cash, order_holds=holds, positions=positions, quotes=quotes)


def liquidation_prices_set(state: AccountState) -> list[Position]:
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


def liquidation_prices_save(state: AccountState) -> None:
    changed = liquidation_prices_set(state)
    if changed:
        Position.objects.bulk_update(changed, ["liquidation_price"])


def user_liquidation_prices_refresh(user_id: int) -> None:
    """Recompute and save the displayed liquidation prices of every open position of the user."""
    liquidation_prices_save(account_state_of(user_id, open_positions(user_id)))


def leverage_for(locked: LockedRead, inp: OrderInput, market: Market, existing: Position | None) -> int:
    if existing is not None:
        return existing.leverage
    if inp.leverage is not None:
        return inp.leverage
    return min(locked.leverage or DEFAULT_LEVERAGE, market.max_leverage)


@dataclass
class LockedRead:
    """What one order transaction reads under the user's lock, in one round trip (``lock_and_read``)."""

    positions: list[Position]  # open, locked
    balances: dict[str, Decimal]  # ledger key -> balance of the user's USDC accounts holding money, locked
    cash: Decimal
    holds: Decimal
    leverage: int | None  # the user's LeverageSetting for the asset and margin mode
    order_id: int | None
    fill_ids: list[int]
    position_id: int | None
    order: Order | None = None  # an existing order read (and locked) with the rest (``lock_order``)
    # a new order's first writes, held back to go with the fill's in one round trip (``OrderWrites``)
    new_order_writes: OrderWrites | None = None
    # the order was rejected in this transaction (``reject_order``): raised after the commit
    rejection: ApplicationError | None = None
    # an HL-routed order's request, being signed while the transaction commits (``orders.hyperliquid``)
    hl_signing: Future[dict[str, Any]] | None = None
    # leave for the transaction's last batch to carry its COMMIT (``core.sql.transaction``): set by a
    # caller whose transaction ends with the writes of ``fill_locked`` or ``hl_prepare``
    commit: LastBatchCommit | None = None

    def order_writes_take(self) -> OrderWrites | None:
        """The held-back writes of the new order, once: whoever takes them sends them."""
        writes, self.new_order_writes = self.new_order_writes, None
        return writes


def lock_and_read(
    user_id: int,
    inp: OrderInput | None = None,
    *,
    draw_fill_ids: bool,
    asset: str = "",
    margin_mode: str = "",
    source: str = Source.INTERNAL,
    lock_order: int | None = None,
) -> LockedRead:
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
        f"SELECT {position_columns()} FROM {Position._meta.db_table} "  # noqa: S608 - our own column names
        "WHERE user_id = %s AND status = %s ORDER BY id FOR UPDATE",
        [user_id, Position.Status.OPEN],
    )
    i_accounts = batch.add(
        f"SELECT key, kind, balance FROM {LedgerAccount._meta.db_table} "  # noqa: S608 - the model's table
        "WHERE user_id = %s AND asset = %s "
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
            f"SELECT {order_columns()} FROM {Order._meta.db_table} "  # noqa: S608 - our own column names
            "WHERE id = %s AND user_id = %s FOR UPDATE",
            [lock_order, user_id],
        )
    results = prepared.run(batch)
    names = position_attnames()
    positions = [Position.from_db("default", names, row) for row in results[i_positions] or []]
    balances: dict[str, Decimal] = {}
    per_kind: dict[str, Decimal] = {}
    for key, kind, balance in results[i_accounts] or []:
        balances[key] = balance
        per_kind[kind] = per_kind.get(kind, ZERO) + balance
    leverage_rows = results[i_leverage] or []
    order_id, fill_id, position_id = (results[i_ids] or [(None, None, None)])[0]
    order_rows = (results[i_order] or []) if lock_order is not None else []
    return LockedRead(
        order=Order.from_db("default", order_attnames(), order_rows[0]) if order_rows else None,
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


def position_attnames() -> list[str]:
    return _attnames(Position)


def position_columns() -> str:
    return _columns(Position)


def order_attnames() -> list[str]:
    return _attnames(Order)


def order_columns() -> str:
    return _columns(Order)


@dataclass
class OrderWrites:
    """A new order's INSERT, its lifecycle events and its routing decision log, held back on the
    transaction's ``LockedRead`` so a fill can send them with its own writes in one round trip. Any
    other path writes them first (``ensure_written``), so the ORM code after it finds the row in place."""

    order: Order
    events: list[OrderEvent]
    log: RoutingDecisionLog | None

    def queue(self, batch: SqlBatch) -> None:
        batch.add(*insert_statement(Order, [self.order], with_pk=True))
        batch.add(*insert_statement(OrderEvent, self.events, with_pk=False))
        if self.log is not None:
            batch.add(*insert_statement(RoutingDecisionLog, [self.log], with_pk=False))
        self.order._state.adding = False
        self.order._state.db = "default"


def ensure_written(locked: LockedRead) -> None:
    """Send the new order's held-back writes now (a path that is not a fill needs the row in place)."""
    writes = locked.order_writes_take()
    if writes is not None:
        batch = SqlBatch()
        writes.queue(batch)
        prepared.run(batch)


def route_fee_rate(settings: TradingSettings, route: str, *, maker: bool) -> Decimal:
    return settings.fees[route].rate(maker=maker)


def reject_order(locked: LockedRead, order: Order, code: ErrorCode, message: str, **details: Any) -> Order:
    """Persist a rejection (support sees it, a retry replays it) and note on ``locked`` the error the
    caller raises once the transaction has committed (``LockedRead.rejection``). Returns the order:
    the path that rejected it returns it too, so the transaction ends normally and keeps the row."""
    ensure_written(locked)
    hold_release(order)
    order.status = Order.Status.REJECTED
    order.error_code = str(code)
    order.error_message = message
    order.updated_at = timezone.now()
    order.save(update_fields=["status", "error_code", "error_message", "hold_amount", "updated_at"])
    OrderEvent.objects.create(
        order=order, status=order.status, detail={"code": str(code), "message": message}
    )
    locked.rejection = ApplicationError(code, message, {"order_id": order.pk, **details})
    return order


def position_for_key(
    positions: list[Position], *, asset: str, source: str, margin_mode: str
) -> Position | None:
    """The open position an order on (asset, venue, margin mode) adds to or reduces: there is at most
    one per key (a database constraint)."""
    return next(
        (p for p in positions if p.asset == asset and p.source == source and p.margin_mode == margin_mode),
        None,
    )


def reduce_target_of(inp: OrderInput, positions: list[Position]) -> Position | None:
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


def hold_release(order: Order) -> None:
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
