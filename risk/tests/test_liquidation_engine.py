"""The liquidation engine end to end against PostgreSQL (spec 03): detection → trigger → execution in
the ledger domain → record; the worked examples to the cent."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from core.events.models import OutboxEvent
from risk.detection import liquidation_sweep
from risk.liquidation_execute import liquidations_drain
from risk.liquidation_triggers import liquidation_claim
from risk.models import LiquidationRecord, LiquidationTrigger
from trading.models import Fill

D = Decimal
pytestmark = pytest.mark.usefixtures("btc_mmr_0_004")


def test_spec_isolated_example_liquidates_at_72280_and_the_user_loses_the_800_margin_fee_included(
    trader: Any, open_position: Any, balance: Any, mailoutbox: Any
) -> None:
    position = open_position(trader, size="0.1", entry="80000", leverage=10)
    assert position.isolated_margin == D("800") and position.entry_price == D("80000")
    assert f"{position.liquidation_price:.2f}" == "72289.16"
    cash_before = balance("cash", trader)
    fees_before = balance("fee_revenue")

    assert liquidation_sweep(marks={"BTC": D("72300")}, wake=False)["created"] == 0
    report = liquidation_sweep(marks={"BTC": D("72280")}, wake=False)
    assert report["created"] == 1
    trigger = LiquidationTrigger.objects.get()
    assert trigger.trigger_id.startswith(f"liq:iso:{position.pk}:") and trigger.status == "PENDING"
    assert trigger.trigger_price == D("72280") and trigger.venue == "INTERNAL"

    assert liquidations_drain() == 1
    trigger.refresh_from_db()
    position.refresh_from_db()
    assert trigger.status == "COMPLETED" and trigger.attempts == 1 and trigger.completed_at is not None
    assert position.status == "LIQUIDATED" and position.size == 0 and position.isolated_margin == 0
    # the liquidation fee rule (issue 18): out of the 800 margin, the 772 loss, then the taker fee
    # 0.1 × 72,280 × 0.045 % = 3.2526, then the rest (24.7474) is kept; the client loss 800 − 3.2526 is
    # split 80/20
    fee = D("3.2526")
    assert (trigger.margin_zeroed, trigger.loss, trigger.platform_share, trigger.reserve_share) == (
        D("800"),
        D("796.7474"),
        D("637.39792"),
        D("159.34948"),
    )
    record = LiquidationRecord.objects.get(trigger=trigger)
    assert (record.trigger_price, record.close_price, record.size, record.venue) == (
        D("72280"),
        D("72280"),
        D("0.1"),
        "INTERNAL",
    )
    assert record.xbit_pnl == D("-772") and record.bankrupt_amount == 0 and record.fee == fee
    # the ledger: the user lost exactly the margin, cash untouched; the fee is revenue, the rest 80/20
    assert balance("cash", trader) == cash_before
    assert balance("isolated_margin", trader, sub=f"position:{position.pk}") == 0
    assert balance("bbook_pnl") == D("637.39792") and balance("risk_reserve") == D("159.34948")
    assert balance("fee_revenue") == fees_before + fee
    fill = Fill.objects.get(position=position, is_liquidation=True)
    assert fill.price == D("72280") and fill.realized_pnl == D("-772") and fill.fee == fee
    # events for risk, the user's stream, and an email
    topics = list(OutboxEvent.objects.values_list("topic", flat=True))
    assert "trading.liquidation" in topics and "user.liquidation" in topics
    # the sweep does not trigger it again, and a replayed execution changes nothing
    assert liquidation_sweep(marks={"BTC": D("70000")}, wake=False)["created"] == 0
    assert liquidation_claim(trigger_id=trigger.trigger_id) is None


@pytest.mark.django_db(transaction=True)  # the email goes out from another thread (and connection)
def test_the_email_is_sent_after_commit_by_a_default_queue_task(
    trader: Any, open_position: Any, mailoutbox: Any, monkeypatch: Any
) -> None:
    from risk.liquidation_background import background_flush
    from xbit_admin.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)  # the queued task runs where it is queued
    open_position(trader, size="0.1", entry="80000", leverage=10)
    liquidation_sweep(marks={"BTC": D("72000")}, wake=False)
    liquidations_drain()
    background_flush()
    assert len(mailoutbox) == 1 and "liquidated" in mailoutbox[0].subject
    assert mailoutbox[0].to == [trader.email] and "Margin lost: 800" in mailoutbox[0].body


def test_a_position_changed_after_detection_is_not_liquidated_on_the_stale_trigger(
    trader: Any, open_position: Any
) -> None:
    from trading.positions import position_margin_adjust

    position = open_position(trader, size="0.1", entry="80000", leverage=10)
    liquidation_sweep(marks={"BTC": D("72280")}, wake=False)
    position_margin_adjust(user=trader, position_id=position.pk, amount="500", idempotency_key="more")
    liquidations_drain()
    trigger = LiquidationTrigger.objects.get()
    position.refresh_from_db()
    assert trigger.status == "CANCELLED" and position.status == "OPEN"
    assert "superseded" in trigger.errors[-1]["note"]
    # with the extra 500 the position is safe at 72,280; far lower it is triggered again (new version)
    assert liquidation_sweep(marks={"BTC": D("72280")}, wake=False)["created"] == 0
    assert liquidation_sweep(marks={"BTC": D("66000")}, wake=False)["created"] == 1
    liquidations_drain()
    position.refresh_from_db()
    assert position.status == "LIQUIDATED"


def test_a_bankrupt_isolated_position_never_leaves_the_user_negative(
    trader: Any, open_position: Any, balance: Any
) -> None:
    position = open_position(trader, size="0.1", entry="80000", leverage=10)
    cash_before = balance("cash", trader)
    liquidation_sweep(marks={"BTC": D("70000")}, wake=False)  # loss 1,000 > margin 800
    liquidations_drain()
    trigger = LiquidationTrigger.objects.get()
    assert trigger.status == "COMPLETED"
    assert (trigger.loss, trigger.bankrupt_amount) == (D("800"), D("200"))  # no margin left for a fee
    assert (trigger.platform_share, trigger.reserve_share) == (D("640"), D("160"))
    assert balance("cash", trader) == cash_before  # only the margin was lost
    # the reserve took its 160 share and paid the 200 the user could not: the B-book got 640 + 200
    assert balance("risk_reserve") == D("-40") and balance("bbook_pnl") == D("840")
    position.refresh_from_db()
    assert position.status == "LIQUIDATED"


def test_a_short_is_liquidated_when_the_mark_rises(trader: Any, open_position: Any, balance: Any) -> None:
    position = open_position(trader, side="SELL", size="0.1", entry="80000", leverage=10)
    # short: (80,000 + 8,000) / 1.004 = 87,649.40…
    assert f"{position.liquidation_price:.2f}" == "87649.40"
    assert liquidation_sweep(marks={"BTC": D("87600")}, wake=False)["created"] == 0
    liquidation_sweep(marks={"BTC": D("87700")}, wake=False)
    liquidations_drain()
    position.refresh_from_db()
    assert position.status == "LIQUIDATED"
    # fee 0.1 × 87,700 × 0.045 % = 3.9465; the rest of the 800 split 80/20
    assert balance("bbook_pnl") == D("636.8428") and balance("risk_reserve") == D("159.2107")
