"""The money of an INTERNAL liquidation (see :mod:`trading.liquidation`): the fill request of a
liquidation close, its fee rate, and the settlement after the fill — the isolated margin's rest taken
with the complementary 80/20 split between the B-book and the risk reserve, and a bankrupt remainder
paid to the B-book by the reserve. Shared by the one-by-one and the batched paths."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.money import ZERO
from trading import netting
from trading.account import user_balances
from trading.config import trading_settings
from trading.execution import FillRequest, FillResult
from trading.liquidation.records import CLOSE_SIDE, SIGN, LiquidationClose
from trading.models import Position, Source
from wallets.ledger import AccountRef, TransferSpec
from wallets.models import AccountKind, TransferKind


def cash_balance(user_id: int) -> Decimal:
    return user_balances(user_id).get(AccountKind.CASH, ZERO)


def liquidation_fee_rate(source: str) -> Decimal:
    """The taker fee rate a liquidation close of a ``source`` position pays (the rule above)."""
    return trading_settings().fees[source].rate(maker=False)


def liquidation_request(
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


@dataclass(frozen=True)
class Settlement:
    """What an INTERNAL liquidation settles beyond its fill (``settle``)."""

    transfers: list[TransferSpec]
    loss: Decimal
    platform_share: Decimal
    reserve_share: Decimal
    margin_zeroed: Decimal


def settle(
    *,
    user_id: int,
    position_id: int,
    isolated: bool,
    margin_before: Decimal,
    result: FillResult,
    reserve_share: Decimal,
) -> Settlement:
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
    return Settlement(transfers, loss, platform_total, reserve_total, margin_zeroed)


def internal_close(
    *,
    position_id: int,
    user_id: int,
    asset: str,
    margin_mode: str,
    direction: str,
    entry: Decimal,
    size: Decimal,
    mark: Decimal,
    settlement: Settlement,
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
