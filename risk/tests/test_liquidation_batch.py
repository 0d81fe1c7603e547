"""Set-based INTERNAL liquidations (issue 10): a worker claims a batch of triggers and executes them in
one transaction. The batch must do exactly what the one-by-one path does — same closes, same fills,
same postings, same balances to the cent — in a handful of round trips, and one bad trigger must not
hold up the others."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.errors import ApplicationError
from core.events.models import OutboxEvent
from risk.config import risk_config, risk_config_update
from risk.detection import liquidation_sweep
from risk.liquidation_background import background_flush
from risk.liquidation_execute import liquidation_execute, liquidations_drain
from risk.liquidation_triggers import liquidation_claim
from risk.models import LiquidationRecord, LiquidationTrigger
from trading.models import Fill, Order, Position
from trading.orders.input import order_input
from trading.orders.place import order_place
from trading.positions import position_margin_adjust
from wallets.ledger import AccountRef, TransferSpec, account_balance, ledger_post
from wallets.models import AccountKind, BalanceLog, LedgerAccount, LedgerTransfer, TransferKind

D = Decimal
pytestmark = pytest.mark.usefixtures("btc_mmr_0_004")

MARKS = {"BTC": D("72000"), "ETH": D("3050")}
PLATFORM = (AccountKind.BBOOK_PNL, AccountKind.RISK_RESERVE, AccountKind.FEE_REVENUE)


def _platform() -> dict[str, Decimal]:
    return {kind: account_balance(AccountRef.platform(kind)) for kind in PLATFORM}


def _scenario(make_trader: Any, fund: Any, open_position: Any) -> list[Any]:
    """Eight traders whose positions cover what a liquidation can meet at BTC 72,000 / ETH 3,050."""
    users = [make_trader() for _ in range(8)]
    for user in users:
        fund(user, "20000")
    a, b, c, d, e, f, g, h = users
    open_position(a, size="0.1", entry="79900", leverage=10)  # loss 790 < margin 799
    open_position(b, size="0.1", entry="80500", leverage=10)  # bankrupt: loss 850 > margin 805
    open_position(c, side="SELL", size="0.1", entry="65500", leverage=10)  # a short: loss 650
    # cross, most losing first: BTC −800 closes, then ETH −50 is healthy again (cash set below)
    open_position(d, size="0.1", entry="80000", leverage=10, margin_mode="CROSS")
    open_position(d, asset="ETH", side="SELL", size="1", entry="3000", leverage=10, margin_mode="CROSS")
    # cross bankrupt: an 800 loss on 440 of cash
    open_position(e, size="0.1", entry="80000", leverage=20, margin_mode="CROSS")
    # an isolated liquidation next to positions that stay open (their displayed prices are refreshed)
    open_position(f, size="0.1", entry="80000", leverage=10)
    open_position(f, asset="ETH", size="1", entry="3000", leverage=5)
    open_position(f, asset="ETH", size="2", entry="3000", leverage=5, margin_mode="CROSS")
    # superseded: margin added after detection
    open_position(g, size="0.1", entry="80000", leverage=10)
    # cross with a resting INTERNAL order (its hold counts as collateral; it is cancelled first)
    open_position(h, size="0.1", entry="80000", leverage=10, margin_mode="CROSS")
    order = order_place(
        user=h,
        inp=order_input(
            asset="ETH", side="BUY", order_type="LIMIT", size="0.1", limit_price="2000", leverage=10
        ),
    )
    assert order.status == "OPEN" and order.route == "INTERNAL"
    # bring the cross accounts' cash to where the scenario needs it (withdrawal to clearing)
    for user, target in ((d, D("930")), (e, D("440")), (h, D("700"))):
        cash = account_balance(AccountRef.user(user.pk, AccountKind.CASH))
        ledger_post(
            key=f"test-scenario-cash:{user.pk}",
            transfers=[
                TransferSpec(
                    AccountRef.user(user.pk, AccountKind.CASH),
                    AccountRef.platform(AccountKind.WITHDRAWAL_CLEARING),
                    cash - target,
                    TransferKind.WITHDRAWAL,
                    "test",
                    user.pk,
                )
            ],
        )
    return users


def _detect(users: list[Any], set_quote: Callable[..., None]) -> None:
    liquidation_sweep(marks=MARKS, wake=False)
    ids = {u.pk for u in users}
    triggers = {t.user_id: t for t in LiquidationTrigger.objects.filter(user_id__in=ids)}
    assert set(triggers) == ids, "every scenario trader is triggered"
    g = users[6]
    position = Position.objects.get(user=g, status="OPEN")
    position_margin_adjust(user=g, position_id=position.pk, amount="500", idempotency_key=f"more:{g.pk}")
    for asset, mark in MARKS.items():
        set_quote(asset, str(mark))


def _outcome(users: list[Any]) -> list[dict[str, Any]]:
    """Everything a liquidation decides, per user, with ids replaced by what they point at."""
    out = []
    for user in users:
        positions = {p.pk: f"{p.asset}/{p.margin_mode}" for p in Position.objects.filter(user=user)}
        accounts = {}
        for acc in LedgerAccount.objects.filter(user=user):
            sub = (
                positions.get(int(acc.sub.split(":")[1]), acc.sub) if acc.sub.startswith("position:") else ""
            )
            if not acc.sub.startswith("order:"):
                accounts[f"{acc.kind}:{sub}"] = acc.balance
        trigger = LiquidationTrigger.objects.get(user=user)
        out.append(
            {
                "trigger": (
                    trigger.kind,
                    trigger.status,
                    trigger.attempts,
                    trigger.size,
                    trigger.margin_zeroed,
                    trigger.loss,
                    trigger.platform_share,
                    trigger.reserve_share,
                    trigger.bankrupt_amount,
                    trigger.close_price,
                    [e.get("note", "") for e in trigger.errors],
                ),
                "records": sorted(
                    (
                        positions[r.position_id],
                        r.trigger_price,
                        r.close_price,
                        r.size,
                        r.margin_zeroed,
                        r.loss,
                        r.platform_share,
                        r.reserve_share,
                        r.bankrupt_amount,
                        r.xbit_pnl,
                        r.fee,
                    )
                    for r in LiquidationRecord.objects.filter(user=user)
                ),
                "positions": sorted(
                    (
                        positions[p.pk],
                        p.status,
                        p.size,
                        p.isolated_margin,
                        p.realized_pnl,
                        p.fees_paid,
                        p.liquidation_price,
                    )
                    for p in Position.objects.filter(user=user)
                ),
                "fills": sorted(
                    (positions[f.position_id], f.side, f.size, f.price, f.realized_pnl, f.fee)
                    for f in Fill.objects.filter(user=user, is_liquidation=True)
                ),
                "accounts": accounts,
                "transfers": sorted(
                    (
                        _normalized(t.idempotency_key[len(trigger.trigger_id) :], positions),
                        t.kind,
                        t.debit.kind,
                        t.credit.kind,
                        t.amount,
                    )
                    for t in LedgerTransfer.objects.filter(
                        idempotency_key__startswith=f"{trigger.trigger_id}:"
                    ).select_related("debit", "credit")
                )
                + sorted(
                    (
                        t.idempotency_key[len(trigger.trigger_id) :],
                        t.kind,
                        t.debit.kind,
                        t.credit.kind,
                        t.amount,
                    )
                    for t in LedgerTransfer.objects.filter(
                        idempotency_key__startswith=f"{trigger.trigger_id}#"
                    ).select_related("debit", "credit")
                ),
                "orders": sorted(Order.objects.filter(user=user).values_list("status", flat=True)),
                "events": sorted(
                    OutboxEvent.objects.filter(
                        aggregate=f"user:{user.pk}", topic__in=["trading.liquidation", "user.liquidation"]
                    ).values_list("topic", flat=True)
                ),
            }
        )
    return out


def _normalized(suffix: str, positions: dict[int, str]) -> str:
    """A posting key's suffix after the trigger id with position ids replaced by asset/margin mode."""
    return re.sub(r"(?<=:)(\d+)(?=[:#])", lambda m: positions.get(int(m.group(1)), m.group(1)), suffix)


@pytest.mark.slow
def test_a_batch_closes_exactly_what_one_by_one_closes_to_the_cent(
    make_trader: Any, fund: Any, open_position: Any, set_quote: Any, caplog: Any
) -> None:
    # the same eight accounts twice: the first set batched (one claim, one transaction) …
    batched = _scenario(make_trader, fund, open_position)
    _detect(batched, set_quote)
    before = _platform()
    with caplog.at_level(logging.INFO, logger="risk.liquidation_execute"):
        assert liquidations_drain() == len(batched)
    assert not [r for r in caplog.records if "one by one" in r.getMessage()], "the batch itself succeeded"
    batched_platform = {k: v - before[k] for k, v in _platform().items()}

    # … the second one by one, through the per-trigger path
    single = _scenario(make_trader, fund, open_position)
    _detect(single, set_quote)
    before = _platform()
    done = 0
    while (trigger_id := liquidation_claim()) is not None:
        liquidation_execute(trigger_id=trigger_id)
        done += 1
    assert done == len(single)
    single_platform = {k: v - before[k] for k, v in _platform().items()}

    expected = _outcome(single)
    got = _outcome(batched)
    for i, (e, g) in enumerate(zip(expected, got, strict=True)):
        assert g == e, f"trader {i}"
    assert batched_platform == single_platform
    # what the scenario was meant to show
    statuses = [o["trigger"][1] for o in got]
    assert statuses == ["COMPLETED"] * 6 + ["CANCELLED", "COMPLETED"]
    assert got[1]["trigger"][8] == D("45")  # the bankrupt isolated remainder
    assert len(got[3]["records"]) == 1 and got[3]["records"][0][0] == "BTC/CROSS"  # ETH survived
    assert got[4]["trigger"][8] > 0 and got[4]["accounts"]["cash:"] == 0  # cross bankrupt stops at 0
    assert got[7]["orders"] == ["CANCELLED", "FILLED"]


@pytest.mark.django_db(transaction=True)  # committed configuration is served from the process caches
def test_one_batch_liquidates_many_in_a_handful_of_round_trips(
    make_trader: Any,
    fund: Any,
    open_position: Any,
    mailoutbox: Any,
    monkeypatch: Any,
) -> None:
    from xbit_admin.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)  # the emails' task runs right here
    users = [make_trader() for _ in range(6)]
    for user in users:
        fund(user, "5000")
        open_position(user, size="0.1", entry="80000", leverage=10)
    cash_before = [(u, account_balance(AccountRef.user(u.pk, AccountKind.CASH))) for u in users]
    assert liquidation_sweep(marks={"BTC": D("72280")}, wake=False)["created"] == 6
    with CaptureQueriesContext(connection) as queries:
        assert liquidations_drain() == 6
    background_flush()  # the emails' hand-over runs after commit, off the worker's thread
    # one claim, then ONE transaction of two round trips (locking read, writes), and the claim that
    # finds nothing more — not ~27 statements per liquidation
    statements = [q["sql"] for q in queries.captured_queries if q["sql"] not in ("BEGIN", "COMMIT")]
    statements = [s for s in statements if "risk_riskconfig" not in s]  # the config cache's first load
    assert len(statements) <= 5, "\n".join(s[:120] for s in statements)
    batch = statements[1:3]
    assert batch[0].startswith("SELECT pg_advisory_xact_lock") and "FOR UPDATE" in batch[0]
    assert "INSERT INTO risk_liquidationrecord" in batch[1] and "ledger_transfers" in batch[1]
    assert LiquidationTrigger.objects.filter(status="COMPLETED").count() == 6
    assert Position.objects.filter(status="LIQUIDATED").count() == 6
    assert LiquidationRecord.objects.count() == 6 and Fill.objects.filter(is_liquidation=True).count() == 6
    # the platform rows moved once for the whole batch, by the sum of the six splits (each: the 800
    # margin less the 3.2526 fee, 80/20)
    assert account_balance(AccountRef.platform(AccountKind.BBOOK_PNL)) == 6 * D("637.39792")
    assert account_balance(AccountRef.platform(AccountKind.RISK_RESERVE)) == 6 * D("159.34948")
    # what the 772 loss and the fee left of the margin is taken from the margin account, never cash
    assert BalanceLog.objects.filter(type=TransferKind.LIQUIDATION).count() == 6 * 2
    assert all(account_balance(AccountRef.user(u.pk, AccountKind.CASH)) == cash for u, cash in cash_before)
    assert OutboxEvent.objects.filter(topic="user.liquidation").count() == 6
    assert len(mailoutbox) == 6 and all("liquidated" in m.subject for m in mailoutbox)


def test_a_trigger_that_fails_in_a_batch_does_not_hold_up_the_others(
    make_trader: Any, fund: Any, open_position: Any, balance: Any
) -> None:
    users = [make_trader() for _ in range(4)]
    positions = []
    for user in users:
        fund(user, "5000")
        positions.append(open_position(user, size="0.1", entry="80000", leverage=10))
    # the third position's margin account no longer holds what the position says (moved away by a
    # posting that did not go through the position): its liquidation cannot post
    bad = positions[2]
    ledger_post(
        key="test-drain-margin",
        transfers=[
            TransferSpec(
                AccountRef.user(bad.user_id, AccountKind.ISOLATED_MARGIN, sub=f"position:{bad.pk}"),
                AccountRef.user(bad.user_id, AccountKind.CASH),
                D("300"),
                TransferKind.MARGIN_RELEASE,
                "test",
                bad.pk,
            )
        ],
    )
    liquidation_sweep(marks={"BTC": D("72280")}, wake=False)
    assert liquidations_drain() == 4
    by_position = {t.position_id: t for t in LiquidationTrigger.objects.all()}
    for position in positions:
        position.refresh_from_db()
        trigger = by_position[position.pk]
        if position.pk == bad.pk:
            assert trigger.status == "FAILED" and trigger.attempts == 1 and position.status == "OPEN"
            assert "Insufficient balance" in trigger.errors[-1]["error"]
        else:
            assert trigger.status == "COMPLETED" and trigger.attempts == 1
            assert position.status == "LIQUIDATED"
    assert LiquidationRecord.objects.count() == 3
    assert balance("bbook_pnl") == 3 * D("637.39792") and balance("risk_reserve") == 3 * D("159.34948")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_draining_batches_liquidate_each_position_exactly_once(
    make_trader: Any, fund: Any, open_position: Any, balance: Any
) -> None:
    """Several workers, small batches, users with two triggers each (so batches share users): the
    claims never overlap, the user locks (ascending ids) never deadlock, nothing runs twice."""
    risk_config_update(changes={"liquidation_batch_size": 5}, acting_user=None, reason="test")
    users = [make_trader() for _ in range(12)]
    for user in users:
        fund(user, "20000")
        open_position(user, size="0.1", entry="80000", leverage=10)
        open_position(user, asset="ETH", size="1", entry="3000", leverage=10)
    assert liquidation_sweep(marks={"BTC": D("72000"), "ETH": D("2600")}, wake=False)["created"] == 24
    done: list[int] = []
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            done.append(liquidations_drain(worker=f"test-worker-{n}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and sum(done) == 24
    assert LiquidationTrigger.objects.filter(status="COMPLETED", attempts=1).count() == 24
    assert Position.objects.filter(status="LIQUIDATED").count() == 24
    assert LiquidationRecord.objects.count() == 24 == Fill.objects.filter(is_liquidation=True).count()


def test_the_batch_size_is_risk_config_edited_with_a_reason_and_bounded(db: Any) -> None:
    from core.audit.models import AuditEntry

    assert risk_config().liquidation_batch_size == 50
    risk_config_update(changes={"liquidation_batch_size": 200}, acting_user=None, reason="flash crash drill")
    assert risk_config().liquidation_batch_size == 200
    entry = AuditEntry.objects.filter(action="risk.config_update").latest("id")
    assert entry.after == {"liquidation_batch_size": 200} and entry.reason == "flash crash drill"
    for bad in (0, 501, "many"):
        with pytest.raises(ApplicationError):
            risk_config_update(changes={"liquidation_batch_size": bad}, acting_user=None, reason="x")
    assert risk_config().liquidation_batch_size == 200


def test_a_cross_account_that_recovered_then_fell_again_in_the_same_version_is_triggered_again(
    make_trader: Any, fund: Any, open_position: Any
) -> None:
    user = make_trader()
    fund(user, "1000")
    position = open_position(user, size="0.1", entry="80000", leverage=10, margin_mode="CROSS")
    marks = {"BTC": D("70200")}  # a 980 loss on ~997 of cash: equity ~17 ≤ maintenance 28.08
    assert liquidation_sweep(marks=marks, wake=False)["created"] == 1
    fund(user, "5000")  # a deposit before execution: healthy at the trigger marks
    assert liquidations_drain() == 1
    first = LiquidationTrigger.objects.get()
    assert first.status == "CANCELLED" and "above maintenance margin" in first.errors[-1]["note"]
    ledger_post(  # the deposit leaves again: the same positions (same version) fall again
        key="test-withdraw-again",
        transfers=[
            TransferSpec(
                AccountRef.user(user.pk, AccountKind.CASH),
                AccountRef.platform(AccountKind.WITHDRAWAL_CLEARING),
                D("5000"),
                TransferKind.WITHDRAWAL,
                "test",
                user.pk,
            )
        ],
    )
    assert liquidation_sweep(marks=marks, wake=False)["created"] == 1
    assert liquidation_sweep(marks=marks, wake=False)["created"] == 0  # recorded once
    rerun = LiquidationTrigger.objects.exclude(pk=first.pk).get()
    assert rerun.trigger_id == f"{first.trigger_id}#r1"
    assert liquidations_drain() == 1
    rerun.refresh_from_db()
    position.refresh_from_db()
    assert rerun.status == "COMPLETED" and position.status == "LIQUIDATED"
