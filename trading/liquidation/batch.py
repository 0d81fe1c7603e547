"""INTERNAL liquidations of many positions in one transaction, set based
(:class:`InternalLiquidationBatch`), and the raw-row helpers its caller reads with."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from core.errors import ApplicationError, ErrorCode
from core.events.models import OutboxEvent
from core.events.services import outbox_statement
from core.locks import USER_NAMESPACE
from core.money import ZERO
from core.sql.batch import SqlBatch
from core.sql.json_rows import insert_rows, update_rows
from trading import margin
from trading.account import margin_table_for_asset
from trading.execution import POSITION_FILL_FIELDS, FillPlan, fill_event_payload, fill_plan
from trading.liquidation.announce import liquidation_emails_send
from trading.liquidation.prices import lean_liquidation_prices, quotes_or_none
from trading.liquidation.records import OPEN_ORDER_STATUSES, LiquidationClose, close_events
from trading.liquidation.settlement import internal_close, liquidation_fee_rate, liquidation_request, settle
from trading.models import Fill, MarginMode, Order, Position, Source
from wallets.ledger import AccountRef, posting_prepare
from wallets.models import USDC, AccountKind, LedgerAccount
from wallets.posting_set import PostingSet

M = TypeVar("M", bound=Model)

_POSITION_ATTNAMES = [f.attname for f in Position._meta.concrete_fields]


_POSITION_COLUMNS = ", ".join(f'"{f.column}"' for f in Position._meta.concrete_fields)


def instances_from_rows(model: type[M], rows: Iterable[Sequence[Any]]) -> list[M]:
    """Model instances from raw rows holding every concrete column in field order (a :class:`SqlBatch`
    result), with the fields' own conversions (JSON)."""
    fields = model._meta.concrete_fields
    names = [f.attname for f in fields]
    converters = [(i, f.from_db_value) for i, f in enumerate(fields) if hasattr(f, "from_db_value")]
    out = []
    for row in rows:
        values = list(row)
        for i, convert in converters:
            values[i] = convert(values[i], None, connection)
        out.append(model.from_db("default", names, values))
    return out


def concrete_columns(model: type[Model]) -> str:
    return ", ".join(connection.ops.quote_name(str(f.column)) for f in model._meta.concrete_fields)


@dataclass(slots=True)
class _OutboxRow:
    """An outbox event row as :func:`insert_rows` writes it (the model's columns, without a model)."""

    event_id: uuid.UUID
    topic: str
    aggregate: str
    payload: dict[str, Any]
    created_at: datetime
    published_at: datetime | None = None


class InternalLiquidationBatch:
    """INTERNAL liquidations of many positions of many users in ONE transaction (the caller's), set
    based: the same fills, postings, events and results as :func:`liquidation_close_internal` one by
    one, in three round trips whatever the number of positions.

    Protocol (the caller — risk — decides WHETHER, this class does HOW)::

        batch = InternalLiquidationBatch(user_ids=…, isolated_position_ids=…, cross_user_ids=…, …)
        read = SqlBatch()
        batch.queue_lock(read)       # the users' locks, ascending user id: the FIRST locks taken
        …                            # the caller's own locking reads (its command rows)
        batch.queue_read(read)       # open positions and USDC accounts of the users (locked), fill ids
        batch.load(read.run())
        batch.close(position, mark, key)   # each close, in memory (checks every posting)
        write = SqlBatch()
        …                            # the caller's writes
        batch.queue_write(write)     # positions, fills, every posting (platform rows locked last and
        batch.verify(write.run())    # moved once), events; on commit ``notify(closes)`` (emails)

    Lock order: user advisory locks (ascending ids), the caller's rows, positions (id order), user
    ledger accounts (id order), platform accounts last — as the order path and ``wallets.ledger``.
    Cross liquidations whose user has resting INTERNAL orders are not for this class (the caller
    runs them one by one: cancelling orders goes through the order service)."""

    def __init__(
        self,
        *,
        user_ids: Iterable[int],
        isolated_position_ids: Iterable[int] = (),
        cross_user_ids: Iterable[int] = (),
        reserve_share: Decimal,
        fee_rate: Decimal | None = None,
        notify: Callable[[list[LiquidationClose]], None] | None = None,
    ) -> None:
        self.user_ids = sorted({int(u) for u in user_ids})
        self.isolated_position_ids = sorted({int(p) for p in isolated_position_ids})
        self.cross_user_ids = sorted({int(u) for u in cross_user_ids})
        self.reserve_share = reserve_share
        self.fee_rate = liquidation_fee_rate(Source.INTERNAL) if fee_rate is None else fee_rate
        self.notify = notify or liquidation_emails_send
        self.closes: list[tuple[LiquidationClose, str, FillPlan]] = []
        self._tables: dict[str, margin.MarginTable] = {}
        self._positions: dict[int, Position] = {}
        self._by_user: defaultdict[int, list[Position]] = defaultdict(list)
        self._holds: dict[int, Decimal] = {}
        self._with_orders: set[int] = set()
        self._ids: list[int] = []
        self._ledger: PostingSet | None = None
        self._i: dict[str, int] = {}

    # ---------------------------------------------------------------- read
    def queue_lock(self, batch: SqlBatch) -> None:
        """The users' advisory locks (``core.locks.user_lock``) in ascending id order, in one
        statement (PostgreSQL evaluates the volatile lock calls after the sort): two batches sharing
        users queue on the first common one instead of deadlocking."""
        if not connection.in_atomic_block:
            raise RuntimeError("a liquidation batch runs inside the caller's transaction")
        batch.add(
            "SELECT pg_advisory_xact_lock(%s, u) FROM unnest(%s::int[]) WITH ORDINALITY AS t(u, n) ORDER BY n",
            [USER_NAMESPACE, self.user_ids],
        )

    def queue_read(self, batch: SqlBatch) -> None:
        self._i["positions"] = batch.add(
            f"SELECT {_POSITION_COLUMNS} FROM {Position._meta.db_table} "  # noqa: S608 - our own columns
            "WHERE user_id = ANY(%s) AND status = %s ORDER BY id FOR UPDATE",
            [self.user_ids, Position.Status.OPEN],
        )
        self._i["accounts"] = batch.add(
            f"SELECT key, kind, user_id, balance FROM {LedgerAccount._meta.db_table} "  # noqa: S608 - the model's table
            "WHERE user_id = ANY(%s) AND asset = %s "
            "AND (balance <> 0 OR kind = %s) ORDER BY id FOR UPDATE",
            [self.user_ids, USDC, AccountKind.CASH],
        )
        if self.cross_user_ids:
            self._i["orders"] = batch.add(
                f"SELECT DISTINCT user_id FROM {Order._meta.db_table} "  # noqa: S608
                "WHERE user_id = ANY(%s) AND route = %s AND status = ANY(%s)",
                [self.cross_user_ids, Source.INTERNAL, list(OPEN_ORDER_STATUSES)],
            )
        # one fill per position a liquidation may close: the isolated targets and the cross books
        self._i["ids"] = batch.add(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s + "  # noqa: S608
            f"(SELECT count(*) FROM {Position._meta.db_table} WHERE user_id = ANY(%s) AND status = %s "
            "AND margin_mode = %s))",
            [
                Fill._meta.db_table,
                len(self.isolated_position_ids),
                self.cross_user_ids,
                Position.Status.OPEN,
                MarginMode.CROSS,
            ],
        )

    def load(self, results: list[list[tuple[Any, ...]] | None]) -> None:
        rows = results[self._i["positions"]] or []
        self._positions = {
            p.pk: p for p in (Position.from_db("default", _POSITION_ATTNAMES, r) for r in rows)
        }
        self._by_user = defaultdict(list)
        for p in self._positions.values():  # id order, as read
            self._by_user[p.user_id].append(p)
        balances: dict[str, Decimal] = {}
        holds: dict[int, Decimal] = defaultdict(lambda: ZERO)
        for key, kind, user_id, balance in results[self._i["accounts"]] or []:
            balances[key] = balance
            if kind == AccountKind.ORDER_HOLD:
                holds[user_id] += balance
        self._holds = dict(holds)
        self._ledger = PostingSet(balances)
        if "orders" in self._i:
            self._with_orders = {row[0] for row in results[self._i["orders"]] or []}
        self._ids = [row[0] for row in results[self._i["ids"]] or []]

    # ---------------------------------------------------------------- the locked state, as it evolves
    def position(self, position_id: int) -> Position | None:
        """The open position (locked), or None when it is no longer open."""
        p = self._positions.get(position_id)
        return p if p is not None and p.status == Position.Status.OPEN else None

    def open_positions(self, user_id: int, margin_mode: str | None = None) -> list[Position]:
        return [
            p
            for p in self._by_user.get(user_id, ())
            if p.status == Position.Status.OPEN and (margin_mode is None or p.margin_mode == margin_mode)
        ]

    def margin_table(self, asset: str) -> margin.MarginTable:
        """The asset's margin table, read once per batch."""
        table = self._tables.get(asset)
        if table is None:
            table = self._tables[asset] = margin_table_for_asset(asset)
        return table

    def has_open_orders(self, user_id: int) -> bool:
        return user_id in self._with_orders

    def cash(self, user_id: int) -> Decimal:
        assert self._ledger is not None, "load() first"
        return self._ledger.balances.get(AccountRef.user(user_id, AccountKind.CASH).key, ZERO)

    def collateral(self, user_id: int) -> Decimal:
        """Cross collateral: cash plus order holds (``margin_cross.CrossAccount``)."""
        return self.cash(user_id) + self._holds.get(user_id, ZERO)

    # ---------------------------------------------------------------- closes
    def close(self, position: Position, mark: Decimal, idempotency_key: str) -> LiquidationClose:
        """Liquidate ``position`` (one of the batch's, open, INTERNAL) at ``mark``, in memory: the fill,
        the postings ``key`` and ``key:settle`` (checked against the locked balances), the close.
        Raises ``INVALID_STATE`` / ``INSUFFICIENT_BALANCE``; the caller's transaction must then be
        rolled back (the batch's state is not undone)."""
        if self._ledger is None:
            raise RuntimeError("load() first")
        if (
            position.source != Source.INTERNAL
            or position.status != Position.Status.OPEN
            or self._positions.get(position.pk) is not position
        ):
            raise ApplicationError(ErrorCode.INVALID_STATE, "Not an open INTERNAL position of this batch.")
        if position.margin_mode == MarginMode.CROSS and self.has_open_orders(position.user_id):
            raise ApplicationError(ErrorCode.INVALID_STATE, "Cross liquidation with resting orders.")
        if not self._ids:
            raise RuntimeError("the batch drew too few fill ids")
        isolated = position.margin_mode == MarginMode.ISOLATED
        margin_before = position.isolated_margin
        direction = position.direction
        size = position.size
        entry = position.entry_price
        user_id = position.user_id
        req = liquidation_request(position, mark, idempotency_key, self.reserve_share, self.fee_rate)
        plan = fill_plan(
            req=req,
            position=position,
            cash_available=self.cash(user_id),
            fill_ids=[self._ids.pop(0)],
            position_id=None,
        )
        result = plan.result
        settlement = settle(
            user_id=user_id,
            position_id=position.pk,
            isolated=isolated,
            margin_before=margin_before,
            result=result,
            reserve_share=self.reserve_share,
        )
        if plan.transfers:
            self._ledger.add(posting_prepare(key=plan.ledger_key, transfers=plan.transfers))
        if settlement.transfers:
            self._ledger.add(posting_prepare(key=f"{idempotency_key}:settle", transfers=settlement.transfers))
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
        self.closes.append((close, idempotency_key, plan))
        return close

    # ---------------------------------------------------------------- write
    def queue_write(self, batch: SqlBatch) -> None:
        """Queue every write of the closes: positions (the closed ones, and the displayed liquidation
        prices of the users' other positions), fills, the postings (ONE statement; the platform
        accounts locked here, last, and moved once by their net delta) and the events. On commit
        ``notify`` gets the closes (default: the users' emails, sent right away)."""
        if not self.closes:
            return
        assert self._ledger is not None
        closed = [plan.updated[0] for _close, _key, plan in self.closes]
        written = {p.pk for p in closed}
        users = sorted({c.user_id for c, _key, _plan in self.closes})
        remaining = {u: self.open_positions(u) for u in users}
        quotes = quotes_or_none(sorted({p.asset for ps in remaining.values() for p in ps}))
        moved = []
        for user_id, positions in remaining.items():
            if positions:
                moved += lean_liquidation_prices(
                    positions,
                    cash=self.cash(user_id),
                    holds=self._holds.get(user_id, ZERO),
                    quotes=quotes,
                    table=self.margin_table,
                )
        batch.add(*update_rows(closed, POSITION_FILL_FIELDS))
        others = [p for p in moved if p.pk not in written]
        if others:
            batch.add(*update_rows(others, ("liquidation_price",)))
        batch.add(
            *insert_rows(Fill, [f for _c, _k, plan in self.closes for f in plan.result.fills], with_pk=True)
        )
        events: list[_OutboxRow] = []
        now = timezone.now()
        for close, key, plan in self.closes:
            result = plan.result
            fill_payload = fill_event_payload(
                plan.req,
                result.fills,
                result.position,
                result.closed_positions,
                result.realized_pnl,
                result.fee,
            )
            messages = [("trading.fill", f"user:{plan.req.user_id}", fill_payload)]
            for topic, aggregate, payload in messages + close_events(close, trigger_id=key):
                events.append(_OutboxRow(uuid.uuid4(), topic, aggregate, payload, now))
        outbox_statement(topic="trading.liquidation", payload={})  # only registers the relay's nudge
        batch.add(*insert_rows(OutboxEvent, events, with_pk=False))
        if self._ledger:
            self._i["ledger"] = self._ledger.queue(batch)
        closes = [c for c, _key, _plan in self.closes]
        notify = self.notify
        transaction.on_commit(lambda: notify(closes))

    def verify(self, results: list[list[tuple[Any, ...]] | None]) -> None:
        """After the write round trip: every transfer was written (else raise: roll back)."""
        if "ledger" not in self._i or self._ledger is None:
            return
        rows = results[self._i["ledger"]] or [(0,)]
        if rows[0][0] != self._ledger.transfer_count:
            raise RuntimeError(
                f"the liquidation batch wrote {rows[0][0]} of {self._ledger.transfer_count} ledger transfers"
            )
