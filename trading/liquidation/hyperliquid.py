"""The liquidation close of a HYPERLIQUID position: a reduce-only market close on HL (outside any
lock), then the settlement of the drift between HL's P&L and XBIT's at the trigger mark, in one
transaction under the user's lock (see :mod:`trading.liquidation`)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from django.db import transaction

from core.errors import ApplicationError, ErrorCode
from core.locks import user_lock
from core.money import ZERO
from trading import netting
from trading.liquidation.announce import after_close
from trading.liquidation.records import SIGN, LiquidationClose
from trading.liquidation.settlement import cash_balance
from trading.models import Fill, MarginMode, Position, Source
from trading.orders.hyperliquid import available as hl_available
from trading.positions import reduce_only_close
from wallets.ledger import AccountRef, TransferSpec, ledger_post
from wallets.models import AccountKind, TransferKind


def liquidation_close_hl(
    *,
    position: Position,
    trigger_mark: Decimal,
    idempotency_key: str,
    refund_favourable_drift: bool = False,
    on_settled: Callable[[LiquidationClose], None] | None = None,
) -> LiquidationClose:
    """Liquidate a HYPERLIQUID position: a reduce-only market close on the trading account (HL's real
    fills, applied by ``trading.positions.reduce_only_close``), then the settlement here, in one transaction under the user's
    lock. Raises ``ApplicationError(VENUE_ERROR)`` when HL refused or is unreachable (the caller
    retries with the same key; ``reduce_only_close`` resolves an earlier attempt by its cloid).
    Must NOT be called inside a transaction: the venue call happens outside any lock. ``on_settled``
    runs inside the settlement transaction (the caller records the outcome atomically with it)."""
    if not hl_available():
        raise ApplicationError(ErrorCode.VENUE_ERROR, "HYPERLIQUID execution is not available.")
    snapshot = Position.objects.get(pk=position.pk)
    margin_before = snapshot.isolated_margin
    size = snapshot.size
    if snapshot.status == Position.Status.OPEN:
        result = reduce_only_close(
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
    with transaction.atomic():
        user_lock(snapshot.user_id)
        user_cash = AccountRef.user(snapshot.user_id, AccountKind.CASH)
        reserve = AccountRef.platform(AccountKind.RISK_RESERVE)
        ref = ("position", snapshot.pk)
        transfers: list[TransferSpec] = []
        cash = cash_balance(snapshot.user_id)
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
        after_close(close, trigger_id=idempotency_key)
        if on_settled is not None:
            on_settled(close)
    return close
