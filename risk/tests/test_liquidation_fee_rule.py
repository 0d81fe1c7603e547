"""The liquidation fee rule (issue 18), on both venues: an isolated liquidation is a taker close whose
fee comes out of the isolated margin after the loss; the rest of the margin is kept (the platform takes
the position over at the trigger mark, as HL's backstop does) — the user's cash never moves."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from risk.detection import liquidation_sweep
from risk.liquidation_execute import liquidations_drain
from risk.models import LiquidationRecord, LiquidationTrigger
from trading import margin, netting
from trading.config import trading_settings
from trading.models import Fill, Position
from trading.orders.input import order_input
from trading.orders.place import order_place
from trading.tests.hl_venue import Venue, sandbox_url, venue  # noqa: F401 - fixtures
from wallets.ledger import AccountRef, account_balance
from wallets.models import AccountKind, LedgerTransfer, TransferKind

D = Decimal


def _cash(user: Any) -> Decimal:
    return account_balance(AccountRef.user(user.pk, AccountKind.CASH))


def _last_transfer_id() -> int:
    return LedgerTransfer.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _user_transfers_since(user: Any, after_id: int) -> list[tuple[str, str, str, Decimal]]:
    """(kind, debit account, credit account, amount) of every posting touching the user since."""
    rows = LedgerTransfer.objects.filter(id__gt=after_id).select_related("debit", "credit")
    return [
        (t.kind, f"{t.debit.kind}/{t.debit.sub}", f"{t.credit.kind}/{t.credit.sub}", t.amount)
        for t in rows.order_by("id")
        if user.pk in (t.debit.user_id, t.credit.user_id)
    ]


def _assert_the_rule(position: Position, record: LiquidationRecord, fee_rate: Decimal) -> None:
    """Loss, then the fee, then the rest kept: all out of the margin, which ends at zero."""
    fills = list(Fill.objects.filter(position=position, is_liquidation=True))
    loss = -sum((f.realized_pnl for f in fills), D(0))
    fee = sum((f.fee for f in fills), D(0))
    expected_fee = sum((netting.fee_for(f.size, f.price, fee_rate) for f in fills), D(0))
    margin_before = record.margin_zeroed
    assert 0 < loss < margin_before, "the scenario is a liquidation the margin covers"
    assert fee == min(expected_fee, margin_before - loss) == record.fee > 0
    assert record.loss + record.fee == margin_before  # the client loss is the margin less the fee
    assert (
        account_balance(
            AccountRef.user(position.user_id, AccountKind.ISOLATED_MARGIN, sub=f"position:{position.pk}")
        )
        == 0
    )


def test_an_internal_isolated_liquidation_charges_the_taker_fee_from_the_margin_and_keeps_the_rest(
    trader: Any, open_position: Any, balance: Any
) -> None:
    position = open_position(trader, asset="ETH", size="2", entry="3500", leverage=20)
    cash = _cash(trader)
    fees_before = balance("fee_revenue")
    since = _last_transfer_id()
    assert position.liquidation_price is not None
    mark = margin.round_price(position.liquidation_price * D("0.994"), 4)  # 0.6 % below (issue 18)
    liquidation_sweep(marks={"ETH": mark}, wake=False)
    assert liquidations_drain() == 1
    position.refresh_from_db()
    record = LiquidationRecord.objects.get(position=position)
    assert position.status == "LIQUIDATED" and record.venue == "INTERNAL"
    fee_rate = trading_settings().fees["INTERNAL"].rate(maker=False)
    _assert_the_rule(position, record, fee_rate)
    assert _cash(trader) == cash  # to the cent: nothing came from or went back to cash
    assert balance("fee_revenue") == fees_before + record.fee
    # the rest of the margin is client loss with the realized loss, split 80/20
    assert record.platform_share + record.reserve_share == record.loss
    postings = _user_transfers_since(trader, since)
    assert postings and all(t[1].startswith("isolated_margin/") for t in postings), postings


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_an_hl_isolated_liquidation_charges_the_fee_from_the_margin_never_cash(
    venue: Venue,  # noqa: F811
    trader: Any,
) -> None:
    """Issue 18's case: SOL isolated 20x on HYPERLIQUID, HL's price 0.6 % below the liquidation price.
    The close fills on HL; HL's loss, our HL taker fee and the rest of the margin (the liquidation
    charge) all come out of the isolated margin: the user's cash is unchanged to the cent."""
    _bid, _ask, mid = venue.refresh_quote("SOL")
    order = order_place(
        user=trader,
        inp=order_input(
            asset="SOL",
            side="BUY",
            order_type="MARKET",
            size=str(margin.floor_size(D(20_000) / mid, 2)),
            leverage=20,
            margin_mode="ISOLATED",
        ),
    )
    assert order.route == "HYPERLIQUID" and order.status == "FILLED", order.error_message
    position = Position.objects.get(user=trader, source="HYPERLIQUID", asset="SOL", status="OPEN")
    assert position.liquidation_price is not None
    cash = _cash(trader)
    since = _last_transfer_id()
    liq_income_before = account_balance(AccountRef.platform(AccountKind.FEE_REVENUE, sub="liquidation"))
    crossed = margin.round_price(position.liquidation_price * D("0.994"), 2)
    venue.control("price", {"coin": "SOL", "px": str(crossed)})  # HL's own book moves there too
    venue.refresh_quote("SOL")
    liquidation_sweep(marks={"SOL": crossed}, wake=False)
    liquidations_drain(budget_s=20)
    trigger = LiquidationTrigger.objects.get(position_id=position.pk)
    assert trigger.status == "COMPLETED", trigger.errors
    position.refresh_from_db()
    record = LiquidationRecord.objects.get(position=position)
    assert position.status == "LIQUIDATED" and record.venue == "HYPERLIQUID"
    fee_rate = trading_settings().fees["HYPERLIQUID"].rate(maker=False)
    _assert_the_rule(position, record, fee_rate)
    assert _cash(trader) == cash  # to the cent
    # the charge: what HL's loss and the fee left of the margin
    hl_loss = -(record.hl_pnl or D(0))
    charge = record.margin_zeroed - hl_loss - record.fee
    drift_refill = -record.drift_amount if record.drift_amount < 0 else D(0)
    got = account_balance(AccountRef.platform(AccountKind.FEE_REVENUE, sub="liquidation")) - liq_income_before
    assert got == charge + min(drift_refill, hl_loss)
    # every posting on the user's accounts leaves the isolated margin: loss, fee, liquidation charge
    postings = _user_transfers_since(trader, since)
    assert {t[0] for t in postings} == {
        TransferKind.REALIZED_PNL,
        TransferKind.TRADING_FEE,
        TransferKind.LIQUIDATION,
    }, postings
    assert all(t[1].startswith("isolated_margin/") for t in postings), postings
