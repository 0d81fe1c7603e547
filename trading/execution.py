"""Applying fills to positions and the ledger — the one place where a trade becomes money.

``fill_apply`` runs inside the caller's transaction (which holds the user's lock) and, for one fill
of one order, writes (in one round trip, after one that draws ids and locks the user's accounts;
the order path uses ``fill_plan`` + ``fill_statements`` to send them with its own writes): the fill row(s), the position change, every ledger transfer (margin freeze or
release, realized P&L with the 80/20 client-loss split, fees), and the outbox event. A flip is two
legs: the old position closes, a new one opens, each with its own fill row and fee share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone

from core.errors import ApplicationError, ErrorCode
from core.events.services import NOTIFY_STATEMENT, outbox_statement
from core.money import ZERO
from core.sql.batch import SqlBatch, insert_statement, new_instance, next_ids, update_statement
from trading import netting
from trading.models import Fill, MarginMode, Order, Position, Source
from wallets.ledger import (
    AccountRef,
    TransferSpec,
    posting_lock_user_accounts,
    posting_prepare,
    posting_write,
)
from wallets.models import AccountKind, LedgerBatch, TransferKind

DIRECTION = {"BUY": 1, "SELL": -1}
POSITION_DIRECTION = {1: Position.Direction.LONG, -1: Position.Direction.SHORT}
SIGN: dict[str, int] = {Position.Direction.LONG: 1, Position.Direction.SHORT: -1}


@dataclass
class FillRequest:
    """One execution of (part of) an order at one price."""

    user_id: int
    asset: str
    source: str
    margin_mode: str
    side: str
    size: Decimal
    price: Decimal
    leverage: int
    fee_rate: Decimal
    maker: bool
    reserve_share: Decimal
    order: Order | None = None
    is_liquidation: bool = False
    hl_fill_price: Decimal | None = None
    hl_fee: Decimal | None = None
    hl_tid: int | None = None
    idempotency_key: str = ""  # defaults to the first fill row's id
    # when the trade happened at the venue (HL's trade time); the fill, and the position it opens or
    # closes, are dated there, so "what was held at the funding instant" follows HL's timeline
    executed_at: datetime | None = None

    @classmethod
    def for_order(
        cls,
        order: Order,
        *,
        source: str,
        size: Decimal,
        price: Decimal,
        fee_rate: Decimal,
        maker: bool,
        reserve_share: Decimal,
        **extra: Any,
    ) -> FillRequest:
        """A fill of ``order``: user, asset, margin mode, side and leverage come from the order."""
        return cls(
            user_id=order.user_id,
            asset=order.asset,
            source=source,
            margin_mode=order.margin_mode,
            side=order.side,
            size=size,
            price=price,
            leverage=order.leverage,
            fee_rate=fee_rate,
            maker=maker,
            reserve_share=reserve_share,
            order=order,
            **extra,
        )


def is_liquidation_order(order: Order) -> bool:
    """An order the liquidation engine sent (its client id carries the ``liq:`` prefix)."""
    return bool(order.client_order_id and order.client_order_id.startswith("liq:"))


@dataclass
class FillResult:
    fills: list[Fill]
    position: Position | None  # the open position after the fill (None when flat)
    closed_positions: list[Position] = field(default_factory=list)
    realized_pnl: Decimal = ZERO
    fee: Decimal = ZERO
    uncollected_loss: Decimal = ZERO
    cash_after: Decimal = ZERO
    # an INTERNAL isolated liquidation: what is left on the closed position's margin account after the
    # loss and the fee, for ``trading.liquidation`` to settle in the same transaction
    margin_left: Decimal = ZERO


def position_state(position: Position | None) -> netting.PositionState:
    if position is None:
        return netting.FLAT
    return netting.PositionState(
        SIGN[position.direction], position.size, position.entry_price, position.isolated_margin
    )


def _counterparty(source: str) -> AccountRef:
    # INTERNAL: XBIT's B-book is the counterparty; HYPERLIQUID: the P&L was realized on the platform's HL
    # trading account, so it settles against that account's P&L bucket
    if source == Source.INTERNAL:
        return AccountRef.platform(AccountKind.BBOOK_PNL)
    return AccountRef.platform(AccountKind.HL_PNL, sub="trading")


# written on every fill to the position(s) it touches (the row is locked by the caller)
POSITION_FILL_FIELDS = (
    "size",
    "entry_price",
    "isolated_margin",
    "liquidation_price",
    "status",
    "realized_pnl",
    "fees_paid",
    "closed_at",
    "updated_at",
)


@dataclass
class FillPlan:
    """A fill computed in memory (ids drawn in advance), not yet written: see :func:`fill_statements`."""

    req: FillRequest
    result: FillResult
    transfers: list[TransferSpec]
    updated: list[Position]  # existing positions to write
    created: Position | None  # the position this fill opens
    ledger_key: str


def fill_ids_needed(req: FillRequest, position: Position | None) -> tuple[int, bool]:
    """(number of fill rows, whether a new position row is opened) for this fill."""
    effect = netting.apply_fill(position_state(position), DIRECTION[req.side], req.size, req.price)
    fills = int(effect.closed_size > ZERO) + int(effect.opened_size > ZERO)
    return fills, effect.opened_size > ZERO and (position is None or effect.flipped or effect.after.is_flat)


def fill_apply(*, req: FillRequest, position: Position | None, cash_available: Decimal) -> FillResult:
    """Apply one fill. ``position`` is the user's open position for (asset, source, margin mode), locked
    by the caller; ``cash_available`` is the user's cash balance (used to cap what a bankrupt cross
    close can collect; the ledger's own check stays the last line).

    Two round trips: ids drawn and the user's ledger accounts locked, then every write at once. A
    replayed ``idempotency_key`` moves no money (the ledger's replay; a different content is
    IDEMPOTENCY_CONFLICT)."""
    n_fills, new_position = fill_ids_needed(req, position)
    read = SqlBatch()
    i_ids = next_ids(read, {Fill: n_fills, Position: int(new_position)})
    user_refs = [AccountRef.user(req.user_id, AccountKind.CASH)]
    if position is not None and req.margin_mode == MarginMode.ISOLATED:
        user_refs.append(_margin_account(req.user_id, position.pk))
    i_lock = posting_lock_user_accounts(read, user_refs)
    i_key = read.add(
        f"SELECT fingerprint FROM {LedgerBatch._meta.db_table} WHERE key = %s",  # noqa: S608 - the model's table
        [req.idempotency_key or ""],
    )
    results = read.run()
    ids = list((results[i_ids] or [()])[0])
    plan = fill_plan(
        req=req,
        position=position,
        cash_available=cash_available,
        fill_ids=ids[:n_fills],
        position_id=ids[n_fills] if new_position else None,
    )
    write = SqlBatch()
    existing = results[i_key]
    replayed = bool(existing)
    if replayed and plan.transfers:
        posting = posting_prepare(key=plan.ledger_key, transfers=plan.transfers)
        if existing and existing[0][0] != posting.fingerprint:
            raise ApplicationError(
                ErrorCode.IDEMPOTENCY_CONFLICT,
                "This idempotency key was already used for different transfers.",
                {"key": plan.ledger_key},
            )
    fill_statements(write, plan, dict(results[i_lock] or []), post_ledger=not replayed)
    write.run()
    return plan.result


def _margin_account(user_id: int, position_id: int) -> AccountRef:
    return AccountRef.user(user_id, AccountKind.ISOLATED_MARGIN, sub=f"position:{position_id}")


def fill_statements(
    batch: SqlBatch, plan: FillPlan, balances: dict[str, Decimal], *, post_ledger: bool = True
) -> None:
    """Queue the fill's writes: position(s), fill rows, the ledger posting (checked against the locked
    user ``balances``, which it advances), the outbox event and the relay's nudge (a NOTIFY, delivered
    when the transaction commits)."""
    for position in plan.updated:
        batch.add(*update_statement(position, POSITION_FILL_FIELDS))
    if plan.created is not None:
        batch.add(*insert_statement(Position, [plan.created], with_pk=True))
    batch.add(*insert_statement(Fill, plan.result.fills, with_pk=True))
    if plan.transfers and post_ledger:
        posting = posting_prepare(key=plan.ledger_key, transfers=plan.transfers)
        posting_write(batch, posting, balances, replay_safe=False)
    realized = plan.result.realized_pnl
    sql, params, _event = outbox_statement(
        nudge_after_commit=False,  # the NOTIFY goes with the writes (delivered at the commit)
        topic="trading.fill",
        aggregate=f"user:{plan.req.user_id}",
        payload=fill_event_payload(
            plan.req,
            plan.result.fills,
            plan.result.position,
            plan.result.closed_positions,
            realized,
            plan.result.fee,
        ),
    )
    batch.add(sql, params)
    batch.add(*NOTIFY_STATEMENT)


def fill_plan(
    *,
    req: FillRequest,
    position: Position | None,
    cash_available: Decimal,
    fill_ids: list[int],
    position_id: int | None,
) -> FillPlan:
    """The fill in memory: fill rows, the position change, every ledger transfer (margin freeze or
    release, realized P&L with the 80/20 client-loss split, fees). ``fill_ids`` and ``position_id`` are
    pre-drawn ids (:func:`fill_ids_needed` says how many). Writes nothing."""
    now = req.executed_at or timezone.now()
    direction = DIRECTION[req.side]
    effect = netting.apply_fill(position_state(position), direction, req.size, req.price)
    isolated = req.margin_mode == MarginMode.ISOLATED
    cash = AccountRef.user(req.user_id, AccountKind.CASH)
    counterparty = _counterparty(req.source)
    transfers: list[TransferSpec] = []
    fills: list[Fill] = []
    closed_positions: list[Position] = []
    updated: list[Position] = []
    created: Position | None = None
    total_fee = ZERO
    uncollected = ZERO
    margin_kept = ZERO
    running_cash = cash_available
    ref = ("order", req.order.pk if req.order else "")
    ids = iter(fill_ids)

    def fee_leg(size: Decimal) -> Decimal:
        return netting.fee_for(size, req.price, req.fee_rate)

    # --- closing leg ------------------------------------------------------------------------
    if effect.closed_size > ZERO:
        assert position is not None
        leg_fee = fee_leg(effect.closed_size)
        fill = new_instance(
            Fill,
            id=next(ids),
            order=req.order,
            user_id=req.user_id,
            position=position,
            asset=req.asset,
            source=req.source,
            side=req.side,
            size=effect.closed_size,
            price=req.price,
            liquidity=Fill.Liquidity.MAKER if req.maker else Fill.Liquidity.TAKER,
            fee=leg_fee,
            fee_rate=req.fee_rate,
            realized_pnl=effect.realized_pnl,
            closed_size=effect.closed_size,
            is_liquidation=req.is_liquidation,
            hl_fill_price=req.hl_fill_price,
            hl_fee=req.hl_fee,
            hl_tid=req.hl_tid,
            created_at=now,
        )
        fills.append(fill)
        pnl = effect.realized_pnl
        margin_acc = _margin_account(req.user_id, position.pk)
        # where the user's money for this leg sits: the released isolated margin, else cash
        source_acc = margin_acc if isolated else cash
        source_funds = effect.margin_released if isolated else running_cash
        # an isolated liquidation costs the user the position's margin and never cash (spec 03):
        # the margin pays the loss, then the fee; nothing is released to cash
        kept = isolated and req.is_liquidation
        margin_left = ZERO  # what stays on the margin account after the loss (the fee comes out of it)
        if pnl >= ZERO:
            if kept:
                margin_left = effect.margin_released
            elif isolated and effect.margin_released > ZERO:
                transfers.append(
                    TransferSpec(margin_acc, cash, effect.margin_released, TransferKind.MARGIN_RELEASE, *ref)
                )
            if pnl > ZERO:
                transfers.append(TransferSpec(counterparty, cash, pnl, TransferKind.REALIZED_PNL, *ref))
            running_cash += (effect.margin_released if isolated and not kept else ZERO) + pnl
        else:
            loss = -pnl
            collected = min(loss, max(source_funds, ZERO))
            uncollected += loss - collected
            if req.source == Source.INTERNAL:
                platform_part, reserve_part = netting.split_client_loss(collected, req.reserve_share)
                if platform_part > ZERO:
                    transfers.append(
                        TransferSpec(source_acc, counterparty, platform_part, TransferKind.REALIZED_PNL, *ref)
                    )
                if reserve_part > ZERO:
                    transfers.append(
                        TransferSpec(
                            source_acc,
                            AccountRef.platform(AccountKind.RISK_RESERVE),
                            reserve_part,
                            TransferKind.RESERVE_ALLOCATION,
                            *ref,
                        )
                    )
            elif collected > ZERO:
                transfers.append(
                    TransferSpec(source_acc, counterparty, collected, TransferKind.REALIZED_PNL, *ref)
                )
            if req.source != Source.INTERNAL and loss > collected:
                # HL took the whole loss from our trading account: the reserve covers what the user could not
                transfers.append(
                    TransferSpec(
                        AccountRef.platform(AccountKind.RISK_RESERVE),
                        counterparty,
                        loss - collected,
                        TransferKind.LIQUIDATION,
                        *ref,
                    )
                )
            if kept:
                margin_left = effect.margin_released - collected
            elif isolated:
                rest = effect.margin_released - collected
                if rest > ZERO:
                    transfers.append(TransferSpec(margin_acc, cash, rest, TransferKind.MARGIN_RELEASE, *ref))
                running_cash += rest
            else:
                running_cash -= collected
        if kept:
            # the fee comes out of what the loss left of the margin (none when the loss took it all)
            fee_taken = min(leg_fee, max(margin_left, ZERO))
            margin_left -= fee_taken
        else:
            fee_taken = min(leg_fee, max(running_cash, ZERO))
            running_cash -= fee_taken
        if fee_taken > ZERO:
            transfers.append(
                TransferSpec(
                    margin_acc if kept else cash,
                    AccountRef.platform(AccountKind.FEE_REVENUE),
                    fee_taken,
                    TransferKind.TRADING_FEE,
                    *ref,
                )
            )
        fill.fee = fee_taken
        total_fee += fee_taken

        position.realized_pnl += pnl
        position.fees_paid += fee_taken
        position.updated_at = now
        if effect.after.is_flat or effect.flipped:
            position.size = ZERO
            position.isolated_margin = ZERO
            position.status = Position.Status.LIQUIDATED if req.is_liquidation else Position.Status.CLOSED
            position.closed_at = now
            position.liquidation_price = None
            closed_positions.append(position)
            if kept and margin_left > ZERO and req.source != Source.INTERNAL:
                # HYPERLIQUID: the rest of the margin is the platform's liquidation charge (HL's backstop
                # keeps it too), taken with the fill; INTERNAL leaves it to ``trading.liquidation``'s
                # settlement (same transaction), which splits it 80/20 with the loss
                transfers.append(
                    TransferSpec(
                        margin_acc,
                        AccountRef.platform(AccountKind.FEE_REVENUE, sub="liquidation"),
                        margin_left,
                        TransferKind.LIQUIDATION,
                        *ref,
                    )
                )
                margin_left = ZERO
        else:
            position.size = effect.after.size
            # a partly filled isolated liquidation keeps what it did not spend in the position's pool
            position.isolated_margin = effect.after.isolated_margin + margin_left
            margin_left = ZERO
        margin_kept = margin_left
        updated.append(position)

    # --- opening leg ------------------------------------------------------------------------
    open_position: Position | None = None if (effect.after.is_flat or effect.flipped) else position
    if effect.opened_size > ZERO:
        leg_fee = fee_leg(effect.opened_size)
        if open_position is None:
            assert position_id is not None
            open_position = created = new_instance(
                Position,
                id=position_id,
                user_id=req.user_id,
                asset=req.asset,
                source=req.source,
                margin_mode=req.margin_mode,
                direction=POSITION_DIRECTION[direction],
                size=effect.opened_size,
                entry_price=req.price,
                leverage=req.leverage,
                opened_at=now,
                updated_at=now,
            )
            created._state.adding = False  # written by fill_statements; later saves are UPDATEs
            created._state.db = "default"
        else:
            open_position.size = effect.after.size
            open_position.entry_price = effect.after.entry
            if open_position not in updated:
                updated.append(open_position)
        margin = (
            netting.initial_margin_for(effect.opened_size, req.price, open_position.leverage)
            if isolated
            else ZERO
        )
        if margin > ZERO:
            transfers.append(
                TransferSpec(
                    cash,
                    _margin_account(req.user_id, open_position.pk),
                    margin,
                    TransferKind.MARGIN_FREEZE,
                    *ref,
                )
            )
            open_position.isolated_margin += margin
            running_cash -= margin
        running_cash -= leg_fee
        if leg_fee > ZERO:
            transfers.append(
                TransferSpec(
                    cash,
                    AccountRef.platform(AccountKind.FEE_REVENUE),
                    leg_fee,
                    TransferKind.TRADING_FEE,
                    *ref,
                )
            )
        total_fee += leg_fee
        open_position.fees_paid += leg_fee
        open_position.updated_at = now
        fills.append(
            new_instance(
                Fill,
                id=next(ids),
                order=req.order,
                user_id=req.user_id,
                position=open_position,
                asset=req.asset,
                source=req.source,
                side=req.side,
                size=effect.opened_size,
                price=req.price,
                liquidity=Fill.Liquidity.MAKER if req.maker else Fill.Liquidity.TAKER,
                fee=leg_fee,
                fee_rate=req.fee_rate,
                is_liquidation=req.is_liquidation,
                hl_fill_price=req.hl_fill_price,
                hl_fee=req.hl_fee if not fills else None,
                hl_tid=req.hl_tid if not fills else None,
                created_at=now,
            )
        )
    for fill in fills:
        fill._state.adding = False
        fill._state.db = "default"
    realized = sum((f.realized_pnl for f in fills), ZERO)
    result = FillResult(
        fills, open_position, closed_positions, realized, total_fee, uncollected, running_cash, margin_kept
    )
    return FillPlan(req, result, transfers, updated, created, req.idempotency_key or f"fill:{fills[0].pk}")


def fill_event_payload(
    req: FillRequest,
    fills: list[Fill],
    open_position: Position | None,
    closed: list[Position],
    realized: Decimal,
    fee: Decimal,
) -> dict[str, Any]:
    """What consumers (exposure, liquidation watcher, user stream, consoles) need, self-contained: the
    resulting state of every position touched, so a consumer can set rather than add (idempotent)."""
    touched = [*closed, *([open_position] if open_position is not None else [])]
    return {
        "fill_ids": [f.pk for f in fills],
        "order_id": req.order.pk if req.order else None,
        "user_id": req.user_id,
        "asset": req.asset,
        "source": req.source,
        "margin_mode": req.margin_mode,
        "side": req.side,
        "size": str(req.size),
        "price": str(req.price),
        "realized_pnl": str(realized),
        "fee": str(fee),
        "is_liquidation": req.is_liquidation,
        "positions": [
            {
                "id": p.pk,
                "status": p.status,
                "direction": p.direction,
                "size": str(p.size),
                "entry_price": str(p.entry_price),
                "isolated_margin": str(p.isolated_margin),
                "leverage": p.leverage,
            }
            for p in touched
        ],
    }
