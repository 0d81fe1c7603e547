"""Liquidation execution in the ledger domain (spec 03, "Execution").

Risk detects and sends a command (its ``trigger_id`` is the idempotency key); these services turn one
position's liquidation into fills, position changes and ledger transfers, and report what happened.
They never decide WHETHER to liquidate — only how — and never import risk.

* INTERNAL, settled at the trigger mark through ``execution.fill_apply`` (is_liquidation, no fee):
  - isolated: the whole isolated margin is zeroed; it is all client loss, split platform (B-book)
    / risk reserve by ``reserve_share`` (80/20): ``fill_apply`` splits the realized loss, and the
    margin remainder it would have released to cash is taken here with the complementary split,
    so the shares of the whole margin are exact to the micro-dollar;
  - cross: realized loss from cash, split 80/20 by ``fill_apply``;
  - bankrupt (loss beyond what the user has): the user's balance stops at zero and the risk reserve
    pays the uncollected part to the B-book (recorded as ``bankrupt_amount``).
* HYPERLIQUID, through ``hl_execution.reduce_only_close(..., is_liquidation=True)`` (HL's real fills
  via ``fill_apply``), then settled here: drift = HL's P&L − XBIT's P&L at the trigger mark; isolated
  margin is zeroed (remainder to ``fee_revenue``/``liquidation``; the reserve makes that whole when
  HL lost more); cross users are settled at XBIT's computed value (the reserve refunds what HL took
  beyond it; a favourable difference is platform profit unless ``refund_favourable_drift``).

Every INTERNAL service runs inside the caller's transaction, which must hold ``user_lock`` (taken
first) and the position row. Events: ``trading.fill`` (from ``fill_apply``), ``trading.liquidation``
(for risk and consoles) and ``user.liquidation`` (the user's websocket stream); an email on commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from django.core.mail import send_mail
from django.db import connection, transaction
from django.utils import timezone

from trading import margin, netting
from trading.account import account_state, user_balances
from trading.execution import FillRequest, FillResult, fill_apply
from trading.marketdata import get_quotes
from trading.models import Fill, MarginMode, Order, Position, Source
from wallets.ledger import AccountRef, TransferSpec, ledger_post
from wallets.models import AccountKind, TransferKind
from xbit_admin.errors import ApplicationError, ErrorCode
from xbit_admin.events.services import outbox_emit
from xbit_admin.money import ZERO

logger = logging.getLogger(__name__)

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
        return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(self).items()}


def _require_lock_context() -> None:
    if not connection.in_atomic_block:
        raise RuntimeError("liquidation services run inside the caller's transaction (user_lock first)")


def position_version(position: Position) -> int:
    """A position's version for trigger ids: its ``updated_at`` in µs (changes with every write)."""
    return int(position.updated_at.timestamp() * 1_000_000)


def _cash(user_id: int) -> Decimal:
    return user_balances(user_id).get(AccountKind.CASH, ZERO)


def _liquidation_fill(
    position: Position, price: Decimal, idempotency_key: str, reserve_share: Decimal, cash: Decimal
) -> FillResult:
    return fill_apply(
        req=FillRequest(
            user_id=position.user_id,
            asset=position.asset,
            source=position.source,
            margin_mode=position.margin_mode,
            side=CLOSE_SIDE[position.direction],  # type: ignore[index]
            size=position.size,
            price=price,
            leverage=position.leverage,
            fee_rate=ZERO,  # the liquidation charge is the margin remainder (isolated), not a fee
            maker=False,
            reserve_share=reserve_share,
            is_liquidation=True,
            idempotency_key=idempotency_key,
        ),
        position=position,
        cash_available=cash,
    )


def liquidation_close_internal(
    *, position: Position, mark: Decimal, idempotency_key: str, reserve_share: Decimal
) -> LiquidationClose:
    """Close an INTERNAL position at ``mark`` as a liquidation (see the module docstring).

    Caller: inside a transaction that took ``user_lock(position.user_id)`` first and locked the row.
    Idempotency: ``idempotency_key`` names the ledger postings (``key`` and ``key:settle``).
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
    result = _liquidation_fill(position, mark, idempotency_key, reserve_share, cash)
    pnl = result.realized_pnl
    uncollected = result.uncollected_loss
    bbook = AccountRef.platform(AccountKind.BBOOK_PNL)
    reserve = AccountRef.platform(AccountKind.RISK_RESERVE)
    user_cash = AccountRef.user(user_id, AccountKind.CASH)
    ref = ("position", position.pk)
    transfers: list[TransferSpec] = []
    collected = max(-pnl, ZERO) - uncollected  # what fill_apply took from the user for the loss
    if isolated:
        # whatever fill_apply released from the margin to cash is taken too: the margin is zeroed
        remainder = margin_before - collected if pnl < ZERO else margin_before
        loss = collected + remainder
        platform_total, reserve_total = netting.split_client_loss(loss, reserve_share)
        platform_done, reserve_done = netting.split_client_loss(collected, reserve_share)
        if platform_total - platform_done > ZERO:
            transfers.append(
                TransferSpec(user_cash, bbook, platform_total - platform_done, TransferKind.LIQUIDATION, *ref)
            )
        if reserve_total - reserve_done > ZERO:
            transfers.append(
                TransferSpec(user_cash, reserve, reserve_total - reserve_done, TransferKind.LIQUIDATION, *ref)
            )
        margin_zeroed = margin_before
    else:
        loss = collected
        platform_total, reserve_total = netting.split_client_loss(loss, reserve_share)
        margin_zeroed = ZERO
    if uncollected > ZERO:
        # bankrupt: the user stops at zero; the reserve pays the B-book what the user could not
        transfers.append(TransferSpec(reserve, bbook, uncollected, TransferKind.LIQUIDATION, *ref))
    if transfers:
        ledger_post(key=f"{idempotency_key}:settle", transfers=transfers)
    close = LiquidationClose(
        position_id=position.pk,
        user_id=user_id,
        asset=position.asset,
        venue=Source.INTERNAL,
        margin_mode=position.margin_mode,
        direction=direction,
        trigger_price=mark,
        close_price=mark,
        size=size,
        margin_zeroed=margin_zeroed,
        loss=loss,
        platform_share=platform_total,
        reserve_share=reserve_total,
        bankrupt_amount=uncollected,
        xbit_pnl=(Decimal(SIGN[direction]) * (mark - entry) * size).quantize(netting.USDC),  # type: ignore[index]
        fee=result.fee,
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
    from xbit_admin.locks import user_lock

    with transaction.atomic():
        user_lock(snapshot.user_id)
        user_cash = AccountRef.user(snapshot.user_id, AccountKind.CASH)
        reserve = AccountRef.platform(AccountKind.RISK_RESERVE)
        ref = ("position", snapshot.pk)
        transfers: list[TransferSpec] = []
        cash = _cash(snapshot.user_id)
        hl_loss = max(-hl_pnl, ZERO)
        xbit_loss = max(-xbit_pnl, ZERO)
        if snapshot.margin_mode == MarginMode.ISOLATED:
            liq_income = AccountRef.platform(AccountKind.FEE_REVENUE, sub="liquidation")
            collected = min(hl_loss, margin_before)
            remainder = min(max(margin_before - collected, ZERO), cash)
            if remainder > ZERO:
                transfers.append(
                    TransferSpec(user_cash, liq_income, remainder, TransferKind.LIQUIDATION, *ref)
                )
            if drift < ZERO:
                transfers.append(
                    TransferSpec(reserve, liq_income, min(-drift, collected), TransferKind.DRIFT, *ref)
                )
            loss = margin_before
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
            fee=sum((f.fee for f in fills), ZERO),
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
    from xbit_admin.accounts.models import User

    user = User.objects.get(pk=user_id)
    for order_id in ids:
        order_cancel(user=user, order_id=order_id)


def _after_close(close: LiquidationClose, *, trigger_id: str) -> None:
    """Events, the remaining positions' displayed liquidation prices, and the user's email."""
    payload = {"trigger_id": trigger_id, "at": timezone.now().isoformat(), **close.as_event()}
    outbox_emit(topic="trading.liquidation", aggregate=f"user:{close.user_id}", payload=payload)
    outbox_emit(
        topic="user.liquidation",
        aggregate=f"user:{close.user_id}",
        payload={
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
        },
    )
    refresh_liquidation_prices(close.user_id)
    transaction.on_commit(lambda: _email(close))


def refresh_liquidation_prices(user_id: int) -> None:
    """Recompute the displayed liquidation price of the user's open positions (after a liquidation or
    a funding settlement changed margin or cash)."""
    positions = list(Position.objects.filter(user_id=user_id, status=Position.Status.OPEN))
    if not positions:
        return
    balances = user_balances(user_id)
    try:
        quotes = get_quotes(sorted({p.asset for p in positions}))
    except Exception:  # Redis down: entry prices stand in for marks (only cross prices depend on them)
        quotes = {}
    state = account_state(
        cash=balances.get(AccountKind.CASH, ZERO),
        order_holds=balances.get(AccountKind.ORDER_HOLD, ZERO),
        positions=positions,
        quotes=quotes,
    )
    changed = []
    for view in state.positions:
        liq = view.liquidation_price.quantize(netting.PRICE) if view.liquidation_price else None
        if view.position.liquidation_price != liq:
            view.position.liquidation_price = liq
            changed.append(view.position)
    if changed:
        Position.objects.bulk_update(changed, ["liquidation_price"])


def _email(close: LiquidationClose) -> None:
    from xbit_admin.accounts.models import User

    try:
        email = User.objects.filter(pk=close.user_id).values_list("email", flat=True).first()
        if not email:
            return
        send_mail(
            subject=f"Your {close.asset} position was liquidated",
            message=(
                f"Your {close.direction.lower()} {close.size} {close.asset} position ({close.margin_mode.lower()} "
                f"margin) was liquidated at {close.close_price} after the mark reached {close.trigger_price}.\n"
                f"Loss: {close.loss} USDC."
            ),
            from_email=None,
            recipient_list=[email],
        )
    except Exception:  # an email must never undo or block a liquidation
        logger.exception("liquidation email to user %s failed", close.user_id)


def isolated_still_liquidatable(position: Position, mark: Decimal, table: margin.MarginTable) -> bool:
    side = margin.Side.LONG if position.direction == Position.Direction.LONG else margin.Side.SHORT
    return margin.isolated_is_liquidatable(
        side, position.entry_price, mark, position.size, position.isolated_margin, table
    )
