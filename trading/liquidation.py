"""Liquidation execution in the ledger domain (spec 03, "Execution").

Risk detects and sends a command (its ``trigger_id`` is the idempotency key); these services turn one
position's liquidation into fills, position changes and ledger transfers, and report what happened.
They never decide WHETHER to liquidate — only how — and never import risk.

**The liquidation fee rule (issue 18), one rule for both venues.** A liquidation is a taker close: the
fill is charged the venue's taker fee on the closed notional (``FeeSchedule``: INTERNAL's, or the
HYPERLIQUID schedule HL-routed closes pay), recorded on the fill as its fee.

* isolated: the user loses exactly the position's isolated margin — never cash. Out of the margin, in
  order: the realized loss at the close price, the fee (capped at what the loss left, so nothing when
  the loss took it all), and the rest, which is NOT returned: the platform takes the position over
  at the trigger mark as HL's backstop liquidator does, and HL's backstop keeps the margin too
  (spec 03: "the user's isolated margin is zeroed"). A loss beyond the margin is the reserve's.
* cross: the fee is charged from cash like any close (capped at the cash left; never negative).

* INTERNAL, settled at the trigger mark through ``execution.fill_apply`` (is_liquidation):
  - isolated: the margin less the fee is client loss, split platform (B-book) / risk reserve by
    ``reserve_share`` (80/20): ``fill_apply`` splits the realized loss and takes the fee from the
    margin; the rest of the margin (still on the margin account) is taken here with the
    complementary split, so the shares of the whole client loss are exact to the micro-dollar;
  - cross: realized loss from cash, split 80/20 by ``fill_apply``; the fee from cash;
  - bankrupt (loss beyond what the user has): the user's balance stops at zero and the risk reserve
    pays the uncollected part to the B-book (recorded as ``bankrupt_amount``).
* HYPERLIQUID, through ``hl_execution.reduce_only_close(..., is_liquidation=True)`` (HL's real fills
  via ``fill_apply``, which takes HL's loss and the fee from the isolated margin and the rest as the
  liquidation charge to ``fee_revenue``/``liquidation``), then settled here: drift = HL's P&L − XBIT's
  P&L at the trigger mark (isolated: the reserve makes the liquidation charge whole when HL lost more);
  cross users are settled at XBIT's computed value (the reserve refunds what HL took beyond it; a
  favourable difference is platform profit unless ``refund_favourable_drift``).

``loss`` on a close is the client loss without the fee (isolated: the margin less the fee), ``fee`` the
fee, ``margin_zeroed`` the margin the user lost (isolated: ``loss + fee``).

Every INTERNAL service runs inside the caller's transaction, which must hold ``user_lock`` (taken
first) and the position row. Events: ``trading.fill`` (from ``fill_apply``), ``trading.liquidation``
(for risk and consoles) and ``user.liquidation`` (the user's websocket stream); an email on commit.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from django.core.mail import EmailMessage, get_connection
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from core.errors import ApplicationError, ErrorCode
from core.events.models import OutboxEvent
from core.events.services import outbox_emit, outbox_statement
from core.locks import USER_NAMESPACE
from core.money import ZERO
from core.sql.batch import SqlBatch
from core.sql.json_rows import insert_rows, update_rows
from trading import margin, netting
from trading.account import SIGN as ACCOUNT_SIGN
from trading.account import account_state, margin_table_for_asset, mark_of, user_balances
from trading.execution import (
    POSITION_FILL_FIELDS,
    FillPlan,
    FillRequest,
    FillResult,
    fill_apply,
    fill_plan,
)
from trading.execution import _fill_event as fill_event_payload
from trading.marketdata import Quote, get_quotes
from trading.models import Fill, MarginMode, Order, Position, Source
from wallets.ledger import AccountRef, TransferSpec, ledger_post, posting_prepare
from wallets.models import USDC, AccountKind, TransferKind
from wallets.posting_set import PostingSet

logger = logging.getLogger(__name__)
M = TypeVar("M", bound=Model)

CLOSE_SIDE: dict[str, str] = {Position.Direction.LONG: "SELL", Position.Direction.SHORT: "BUY"}
SIGN: dict[str, int] = {Position.Direction.LONG: 1, Position.Direction.SHORT: -1}
OPEN_ORDER_STATUSES = ("NEW", "ACCEPTED", "OPEN", "PARTIALLY_FILLED")


@dataclass
class LiquidationClose:
    """What one position's liquidation did (risk records it as a LiquidationRecord)."""

    position_id: int
    user_id: int
    asset: str
    venue: str
    margin_mode: str
    direction: str
    trigger_price: Decimal
    close_price: Decimal
    size: Decimal
    margin_zeroed: Decimal = ZERO
    loss: Decimal = ZERO
    platform_share: Decimal = ZERO
    reserve_share: Decimal = ZERO
    bankrupt_amount: Decimal = ZERO
    xbit_pnl: Decimal = ZERO
    hl_pnl: Decimal | None = None
    drift_amount: Decimal = ZERO
    fee: Decimal = ZERO
    replayed: bool = False

    def as_event(self) -> dict[str, Any]:
        values = ((f.name, getattr(self, f.name)) for f in fields(self))  # flat: no deep copy (asdict)
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in values}

    @classmethod
    def from_event(cls, data: dict[str, Any]) -> LiquidationClose:
        """The close back from :meth:`as_event` (a task's arguments)."""
        values = dict(data)
        for f in fields(cls):
            if f.type in ("Decimal", "Decimal | None") and values.get(f.name) is not None:
                values[f.name] = Decimal(values[f.name])
        return cls(**values)


def _require_lock_context() -> None:
    if not connection.in_atomic_block:
        raise RuntimeError("liquidation services run inside the caller's transaction (user_lock first)")


def position_version(position: Position) -> int:
    """A position's version for trigger ids: its ``updated_at`` in µs (changes with every write)."""
    return int(position.updated_at.timestamp() * 1_000_000)


def _cash(user_id: int) -> Decimal:
    return user_balances(user_id).get(AccountKind.CASH, ZERO)


def liquidation_fee_rate(source: str) -> Decimal:
    """The taker fee rate a liquidation close of a ``source`` position pays (the rule above)."""
    from trading.config import trading_settings

    return trading_settings().fees[source].rate(maker=False)


def _liquidation_request(
    position: Position, price: Decimal, idempotency_key: str, reserve_share: Decimal, fee_rate: Decimal
) -> FillRequest:
    return FillRequest(
        user_id=position.user_id,
        asset=position.asset,
        source=position.source,
        margin_mode=position.margin_mode,
        side=CLOSE_SIDE[position.direction],
        size=position.size,
        price=price,
        leverage=position.leverage,
        fee_rate=fee_rate,  # a taker close; isolated: out of the margin (``fill_plan``)
        maker=False,
        reserve_share=reserve_share,
        is_liquidation=True,
        idempotency_key=idempotency_key,
    )


def _liquidation_fill(
    position: Position,
    price: Decimal,
    idempotency_key: str,
    reserve_share: Decimal,
    cash: Decimal,
    fee_rate: Decimal,
) -> FillResult:
    return fill_apply(
        req=_liquidation_request(position, price, idempotency_key, reserve_share, fee_rate),
        position=position,
        cash_available=cash,
    )


@dataclass(frozen=True)
class _Settlement:
    """What an INTERNAL liquidation settles beyond its fill (``_settle``)."""

    transfers: list[TransferSpec]
    loss: Decimal
    platform_share: Decimal
    reserve_share: Decimal
    margin_zeroed: Decimal


def _settle(
    *,
    user_id: int,
    position_id: int,
    isolated: bool,
    margin_before: Decimal,
    result: FillResult,
    reserve_share: Decimal,
) -> _Settlement:
    """The settlement of an INTERNAL liquidation after its fill (pure): what the loss and the fee left of
    the isolated margin (still on the margin account) is taken with the complementary 80/20 split, and a
    bankrupt remainder is paid to the B-book by the reserve. The one-by-one and the batched paths both
    use it."""
    pnl = result.realized_pnl
    uncollected = result.uncollected_loss
    bbook = AccountRef.platform(AccountKind.BBOOK_PNL)
    reserve = AccountRef.platform(AccountKind.RISK_RESERVE)
    ref = ("position", position_id)
    transfers: list[TransferSpec] = []
    collected = max(-pnl, ZERO) - uncollected  # what the fill took from the user for the loss
    if isolated:
        margin_acc = AccountRef.user(user_id, AccountKind.ISOLATED_MARGIN, sub=f"position:{position_id}")
        remainder = result.margin_left  # the margin less the loss and the fee: the margin is zeroed
        loss = margin_before - result.fee  # the client loss: the whole margin but the fee
        if remainder != loss - collected:
            raise RuntimeError(
                f"liquidation of position {position_id}: the fill left {remainder} of a {margin_before} margin"
                f" (loss {collected}, fee {result.fee})"
            )
        platform_total, reserve_total = netting.split_client_loss(loss, reserve_share)
        platform_done, reserve_done = netting.split_client_loss(collected, reserve_share)
        if platform_total - platform_done > ZERO:
            transfers.append(
                TransferSpec(
                    margin_acc, bbook, platform_total - platform_done, TransferKind.LIQUIDATION, *ref
                )
            )
        if reserve_total - reserve_done > ZERO:
            transfers.append(
                TransferSpec(
                    margin_acc, reserve, reserve_total - reserve_done, TransferKind.LIQUIDATION, *ref
                )
            )
        margin_zeroed = margin_before
    else:
        loss = collected
        platform_total, reserve_total = netting.split_client_loss(loss, reserve_share)
        margin_zeroed = ZERO
    if uncollected > ZERO:
        # bankrupt: the user stops at zero; the reserve pays the B-book what the user could not
        transfers.append(TransferSpec(reserve, bbook, uncollected, TransferKind.LIQUIDATION, *ref))
    return _Settlement(transfers, loss, platform_total, reserve_total, margin_zeroed)


def _internal_close(
    *,
    position_id: int,
    user_id: int,
    asset: str,
    margin_mode: str,
    direction: str,
    entry: Decimal,
    size: Decimal,
    mark: Decimal,
    settlement: _Settlement,
    result: FillResult,
) -> LiquidationClose:
    return LiquidationClose(
        position_id=position_id,
        user_id=user_id,
        asset=asset,
        venue=Source.INTERNAL,
        margin_mode=margin_mode,
        direction=direction,
        trigger_price=mark,
        close_price=mark,
        size=size,
        margin_zeroed=settlement.margin_zeroed,
        loss=settlement.loss,
        platform_share=settlement.platform_share,
        reserve_share=settlement.reserve_share,
        bankrupt_amount=result.uncollected_loss,
        xbit_pnl=(Decimal(SIGN[direction]) * (mark - entry) * size).quantize(netting.USDC),
        fee=result.fee,
    )


def liquidation_close_internal(
    *,
    position: Position,
    mark: Decimal,
    idempotency_key: str,
    reserve_share: Decimal,
    fee_rate: Decimal | None = None,
) -> LiquidationClose:
    """Close an INTERNAL position at ``mark`` as a liquidation (see the module docstring), one by one:
    the reference path (``InternalLiquidationBatch`` does the same for many positions at once).

    Caller: inside a transaction that took ``user_lock(position.user_id)`` first and locked the row.
    Idempotency: ``idempotency_key`` names the ledger postings (``key`` and ``key:settle``).
    ``fee_rate``: the liquidation fee rate (default: INTERNAL's taker rate).
    """
    _require_lock_context()
    if position.source != Source.INTERNAL or position.status != Position.Status.OPEN:
        raise ApplicationError(ErrorCode.INVALID_STATE, "Not an open INTERNAL position.")
    isolated = position.margin_mode == MarginMode.ISOLATED
    margin_before = position.isolated_margin
    direction = position.direction
    size = position.size
    entry = position.entry_price
    user_id = position.user_id
    if not isolated:
        _cancel_internal_orders(user_id)
    cash = _cash(user_id)
    if fee_rate is None:
        fee_rate = liquidation_fee_rate(Source.INTERNAL)
    result = _liquidation_fill(position, mark, idempotency_key, reserve_share, cash, fee_rate)
    settlement = _settle(
        user_id=user_id,
        position_id=position.pk,
        isolated=isolated,
        margin_before=margin_before,
        result=result,
        reserve_share=reserve_share,
    )
    if settlement.transfers:
        ledger_post(key=f"{idempotency_key}:settle", transfers=settlement.transfers)
    close = _internal_close(
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
    _after_close(close, trigger_id=idempotency_key)
    return close


def liquidation_close_hl(
    *,
    position: Position,
    trigger_mark: Decimal,
    idempotency_key: str,
    refund_favourable_drift: bool = False,
    on_settled: Callable[[LiquidationClose], None] | None = None,
) -> LiquidationClose:
    """Liquidate a HYPERLIQUID position: a reduce-only market close on the trading account (HL's real
    fills, applied by ``hl_execution``), then the settlement here, in one transaction under the user's
    lock. Raises ``ApplicationError(VENUE_ERROR)`` when HL refused or is unreachable (the caller
    retries with the same key; ``reduce_only_close`` resolves an earlier attempt by its cloid).
    Must NOT be called inside a transaction: the venue call happens outside any lock. ``on_settled``
    runs inside the settlement transaction (the caller records the outcome atomically with it)."""
    from trading import hl_execution

    if not getattr(hl_execution, "available", lambda: False)() or not hasattr(
        hl_execution, "reduce_only_close"
    ):
        raise ApplicationError(ErrorCode.VENUE_ERROR, "HYPERLIQUID execution is not available.")
    snapshot = Position.objects.get(pk=position.pk)
    margin_before = snapshot.isolated_margin
    size = snapshot.size
    if snapshot.status == Position.Status.OPEN:
        result = hl_execution.reduce_only_close(
            position=snapshot, size=size, idempotency_key=idempotency_key, is_liquidation=True
        )
        if not result.complete:
            raise ApplicationError(
                ErrorCode.VENUE_ERROR,
                f"HL filled {result.filled_size} of {size}: {result.error or 'partial fill'}",
                {"filled_size": str(result.filled_size)},
            )
        fills: list[Fill] = list(result.fills)
    else:
        # a previous attempt closed it (crash after HL filled): settle from the recorded fills
        fills = list(Fill.objects.filter(position_id=snapshot.pk, is_liquidation=True))
        size = sum((f.size for f in fills), ZERO) or snapshot.size
    hl_pnl = sum((f.realized_pnl for f in fills), ZERO)
    closed = sum((f.closed_size for f in fills), ZERO) or size
    avg = (
        (sum((f.price * f.size for f in fills), ZERO) / sum((f.size for f in fills), ZERO))
        if fills
        else trigger_mark
    )
    direction = snapshot.direction
    xbit_pnl = (Decimal(SIGN[direction]) * (trigger_mark - snapshot.entry_price) * closed).quantize(
        netting.USDC
    )  # type: ignore[index]
    drift = hl_pnl - xbit_pnl
    from core.locks import user_lock

    with transaction.atomic():
        user_lock(snapshot.user_id)
        user_cash = AccountRef.user(snapshot.user_id, AccountKind.CASH)
        reserve = AccountRef.platform(AccountKind.RISK_RESERVE)
        ref = ("position", snapshot.pk)
        transfers: list[TransferSpec] = []
        cash = _cash(snapshot.user_id)
        hl_loss = max(-hl_pnl, ZERO)
        xbit_loss = max(-xbit_pnl, ZERO)
        fee = sum((f.fee for f in fills), ZERO)
        if snapshot.margin_mode == MarginMode.ISOLATED:
            # the fills took HL's loss, the fee and the rest of the margin as the liquidation charge
            # (``execution.fill_plan``): the user's cash is not touched; only the drift is settled here
            liq_income = AccountRef.platform(AccountKind.FEE_REVENUE, sub="liquidation")
            collected = min(hl_loss, margin_before)
            if drift < ZERO and collected > ZERO:
                transfers.append(
                    TransferSpec(reserve, liq_income, min(-drift, collected), TransferKind.DRIFT, *ref)
                )
            loss = margin_before - fee
            margin_zeroed = margin_before
        else:
            paid = hl_loss  # fill_apply took HL's loss from cash (the reserve covered any shortfall)
            if drift < ZERO and paid > xbit_loss:
                transfers.append(TransferSpec(reserve, user_cash, paid - xbit_loss, TransferKind.DRIFT, *ref))
            elif drift > ZERO and not refund_favourable_drift:
                extra = min(drift, cash)
                if extra > ZERO:
                    transfers.append(
                        TransferSpec(
                            user_cash,
                            AccountRef.platform(AccountKind.FEE_REVENUE, sub="drift"),
                            extra,
                            TransferKind.DRIFT,
                            *ref,
                        )
                    )
            loss = xbit_loss
            margin_zeroed = ZERO
        transfers = [t for t in transfers if t.amount > ZERO]
        if transfers:
            ledger_post(key=f"{idempotency_key}:settle", transfers=transfers)
        bankrupt = max(hl_loss - margin_before, ZERO) if snapshot.margin_mode == MarginMode.ISOLATED else ZERO
        close = LiquidationClose(
            position_id=snapshot.pk,
            user_id=snapshot.user_id,
            asset=snapshot.asset,
            venue=Source.HYPERLIQUID,
            margin_mode=snapshot.margin_mode,
            direction=direction,
            trigger_price=trigger_mark,
            close_price=avg,
            size=closed,
            margin_zeroed=margin_zeroed,
            loss=loss,
            bankrupt_amount=bankrupt,
            xbit_pnl=xbit_pnl,
            hl_pnl=hl_pnl,
            drift_amount=drift,
            fee=fee,
        )
        _after_close(close, trigger_id=idempotency_key)
        if on_settled is not None:
            on_settled(close)
    return close


def _cancel_internal_orders(user_id: int) -> None:
    """A cross liquidation first cancels the user's resting INTERNAL orders so their holds count as
    cash (HL cancels open orders before liquidating too). Runs under the caller's user lock."""
    from trading.services import order_cancel

    ids = list(
        Order.objects.filter(user_id=user_id, route=Source.INTERNAL, status__in=OPEN_ORDER_STATUSES)
        .order_by("id")
        .values_list("id", flat=True)
    )
    if not ids:
        return
    from core.accounts.models import User

    user = User.objects.get(pk=user_id)
    for order_id in ids:
        order_cancel(user=user, order_id=order_id)


def _close_events(close: LiquidationClose, *, trigger_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(topic, aggregate, payload) of the events announcing one liquidation close."""
    aggregate = f"user:{close.user_id}"
    payload = {"trigger_id": trigger_id, "at": timezone.now().isoformat(), **close.as_event()}
    user_payload = {
        "user_id": close.user_id,
        "position_id": close.position_id,
        "asset": close.asset,
        "direction": close.direction,
        "size": str(close.size),
        "trigger_price": str(close.trigger_price),
        "close_price": str(close.close_price),
        "loss": str(close.loss),
        "margin_mode": close.margin_mode,
        "venue": close.venue,
    }
    return [("trading.liquidation", aggregate, payload), ("user.liquidation", aggregate, user_payload)]


def _after_close(close: LiquidationClose, *, trigger_id: str) -> None:
    """Events, the remaining positions' displayed liquidation prices, and the user's email."""
    for topic, aggregate, payload in _close_events(close, trigger_id=trigger_id):
        outbox_emit(topic=topic, aggregate=aggregate, payload=payload)
    refresh_liquidation_prices(close.user_id)
    transaction.on_commit(lambda: _email(close))


def refresh_liquidation_prices(user_id: int) -> None:
    """Recompute the displayed liquidation price of the user's open positions (after a liquidation or
    a funding settlement changed margin or cash)."""
    positions = list(Position.objects.filter(user_id=user_id, status=Position.Status.OPEN))
    if not positions:
        return
    balances = user_balances(user_id)
    changed = _moved_liquidation_prices(
        positions,
        cash=balances.get(AccountKind.CASH, ZERO),
        holds=balances.get(AccountKind.ORDER_HOLD, ZERO),
        quotes=_quotes_or_none(sorted({p.asset for p in positions})),
    )
    if changed:
        Position.objects.bulk_update(changed, ["liquidation_price"])


def _quotes_or_none(assets: list[str]) -> dict[str, Quote]:
    try:
        return get_quotes(assets) if assets else {}
    except Exception:  # Redis down: entry prices stand in for marks (only cross prices depend on them)
        return {}


def _moved_liquidation_prices(
    positions: list[Position], *, cash: Decimal, holds: Decimal, quotes: dict[str, Quote]
) -> list[Position]:
    """Set the displayed liquidation price of ``positions`` (one user's open ones); returns those
    that moved."""
    state = account_state(cash=cash, order_holds=holds, positions=positions, quotes=quotes)
    changed = []
    for view in state.positions:
        liq = view.liquidation_price.quantize(netting.PRICE) if view.liquidation_price else None
        if view.position.liquidation_price != liq:
            view.position.liquidation_price = liq
            changed.append(view.position)
    return changed


def _lean_liquidation_prices(
    positions: list[Position],
    *,
    cash: Decimal,
    holds: Decimal,
    quotes: dict[str, Quote],
    table: Callable[[str], margin.MarginTable],
) -> list[Position]:
    """:func:`_moved_liquidation_prices` computing only what the displayed prices need (the same
    formulas as ``account_state``: isolated from the position alone, cross from the cross account at
    the quotes' marks); ``table`` gives an asset's margin table (the batch keeps them)."""
    crosses = [
        margin.CrossPosition(
            asset=p.asset,
            side=ACCOUNT_SIGN[p.direction],
            size=p.size,
            entry=p.entry_price,
            mark=mark_of(p.asset, quotes, p.entry_price),
            leverage=p.leverage,
            table=table(p.asset),
            ref=p.pk,
        )
        for p in positions
        if p.margin_mode == MarginMode.CROSS and p.status == Position.Status.OPEN
    ]
    cross_liq: dict[str, Decimal | None] = {}
    if crosses:
        account = margin.CrossAccount(
            cash_collateral=cash + holds, positions=tuple(crosses), order_holds=holds
        )
        for asset in {cp.asset for cp in crosses}:
            try:
                cross_liq[asset] = margin.cross_liquidation_price(account, asset)
            except ValueError:
                cross_liq[asset] = None
    changed = []
    for p in positions:
        if p.status != Position.Status.OPEN:
            continue
        if p.margin_mode == MarginMode.ISOLATED:
            price = margin.isolated_liquidation_price(
                ACCOUNT_SIGN[p.direction], p.entry_price, p.size, p.isolated_margin, table(p.asset)
            )
        else:
            price = cross_liq.get(p.asset)
        liq = price.quantize(netting.PRICE) if price else None
        if p.liquidation_price != liq:
            p.liquidation_price = liq
            changed.append(p)
    return changed


def _email_message(close: LiquidationClose, email: str) -> EmailMessage:
    return EmailMessage(
        subject=f"Your {close.asset} position was liquidated",
        body=(
            f"Your {close.direction.lower()} {close.size} {close.asset} position ({close.margin_mode.lower()} "
            f"margin) was liquidated at {close.close_price} after the mark reached {close.trigger_price}.\n"
            + (
                f"Margin lost: {close.margin_zeroed} USDC (loss {close.loss} USDC, liquidation fee {close.fee} USDC)."
                if close.margin_mode == MarginMode.ISOLATED
                else f"Loss: {close.loss} USDC, liquidation fee: {close.fee} USDC."
            )
        ),
        to=[email],
    )


def _email(close: LiquidationClose) -> None:
    liquidation_emails_send([close])


def liquidation_emails_send(closes: list[LiquidationClose]) -> None:
    """The users' liquidation emails (after commit): one read of the addresses, one mail connection.
    Never raises: an email must never undo or block a liquidation."""
    from core.accounts.models import User

    try:
        emails = dict(User.objects.filter(pk__in={c.user_id for c in closes}).values_list("id", "email"))
        messages = [_email_message(c, emails[c.user_id]) for c in closes if emails.get(c.user_id)]
        if messages:
            get_connection(fail_silently=False).send_messages(messages)
    except Exception:  # an email must never undo or block a liquidation
        logger.exception("liquidation emails to users %s failed", sorted({c.user_id for c in closes}))


# ------------------------------------------------------------------------------------------ batches
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
            "SELECT key, kind, user_id, balance FROM ledger_accounts WHERE user_id = ANY(%s) AND asset = %s "
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
        """Cross collateral: cash plus order holds (``margin.CrossAccount``)."""
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
        req = _liquidation_request(position, mark, idempotency_key, self.reserve_share, self.fee_rate)
        plan = fill_plan(
            req=req,
            position=position,
            cash_available=self.cash(user_id),
            fill_ids=[self._ids.pop(0)],
            position_id=None,
        )
        result = plan.result
        settlement = _settle(
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
        close = _internal_close(
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
        quotes = _quotes_or_none(sorted({p.asset for ps in remaining.values() for p in ps}))
        moved = []
        for user_id, positions in remaining.items():
            if positions:
                moved += _lean_liquidation_prices(
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
            for topic, aggregate, payload in messages + _close_events(close, trigger_id=key):
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


def isolated_still_liquidatable(position: Position, mark: Decimal, table: margin.MarginTable) -> bool:
    side = margin.Side.LONG if position.direction == Position.Direction.LONG else margin.Side.SHORT
    return margin.isolated_is_liquidatable(
        side, position.entry_price, mark, position.size, position.isolated_margin, table
    )
