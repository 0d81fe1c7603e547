"""Liquidation execution (spec 03): claimed trigger rows in, ledger-domain commands out.

* :func:`liquidations_drain` claims the due triggers and runs them: INTERNAL ones set-based, many in
  one transaction (:func:`liquidation_execute_batch`), the others one by one
  (:func:`liquidation_execute`); a batch that fails falls back to one by one.
* INTERNAL work commits in ONE transaction with the trigger's new status (user lock first, then
  the trigger row, then the position): it happens exactly once whatever crashes, and the ledger
  postings carry the trigger id as idempotency key as a second line.
* Liquidation ignores market trading states and HL connectivity: marks are the last valid ones in the
  quote cache (or the price the price-jump breaker holds).
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal

from django.db import connection, transaction

from core.locks import user_lock
from core.money import ZERO
from core.sql.batch import SqlBatch
from core.sql.json_rows import insert_rows, update_rows
from risk.config import risk_config
from risk.detection import cross_leg_of
from risk.drift import drift_record
from risk.enqueue import LIQUIDATION_EMAILS, task_enqueue
from risk.liquidation_background import in_background
from risk.liquidation_core import ISOLATED, CrossBook, cross_plan
from risk.liquidation_outcome import (
    liquidation_record,
    liquidation_record_row,
    pause_for_fault_test,
    trigger_fail,
    trigger_finish,
    trigger_outcome_set,
    triggers_finished_push,
)
from risk.liquidation_triggers import WORKER, Claim, liquidation_claim_next, liquidation_claim_one
from risk.marks import effective_marks
from risk.models import LiquidationRecord, LiquidationTrigger
from trading.account import margin_table_for_asset, user_balances
from trading.config import trading_settings
from trading.liquidation.announce import liquidation_emails_send
from trading.liquidation.batch import InternalLiquidationBatch, concrete_columns, instances_from_rows
from trading.liquidation.hyperliquid import liquidation_close_hl
from trading.liquidation.internal import liquidation_close_internal
from trading.liquidation.prices import isolated_still_liquidatable
from trading.liquidation.records import LiquidationClose, position_version
from trading.models import MarginMode, Position, Source
from wallets.models import AccountKind

logger = logging.getLogger(__name__)

Status = LiquidationTrigger.Status


# ------------------------------------------------------------------------------------------ drain
def liquidation_claim_and_run(*, trigger_id: str, worker: str = WORKER) -> bool:
    """Claim that trigger if it is due and execute it (the retry task). False when it was not due."""
    claims = liquidation_claim_one(trigger_id=trigger_id, worker=worker)
    liquidation_run(claims, worker=worker)
    return bool(claims)


def liquidations_drain(*, worker: str = WORKER, budget_s: float = 10.0, limit: int = 100_000) -> int:
    """Claim and execute due triggers until none is due (or the time budget is spent): INTERNAL ones
    in batches of ``liquidation_batch_size``, then the others one by one. Returns how many ran."""
    deadline = time.monotonic() + budget_s
    done = 0
    while done < limit and time.monotonic() < deadline:
        claims = liquidation_claim_next(
            worker=worker, limit=min(risk_config().liquidation_batch_size, limit - done)
        )
        if not claims:
            break
        liquidation_run(claims, worker=worker)
        done += len(claims)
    return done


def liquidation_run(claims: list[Claim], *, worker: str = WORKER) -> None:
    """Execute claimed triggers: INTERNAL ones set-based in one transaction
    (:func:`liquidation_execute_batch`), the rest one by one (:func:`liquidation_execute`)."""
    internal = [c for c in claims if c.venue == Source.INTERNAL]
    if internal:
        liquidation_execute_batch(claims=internal, worker=worker)
    for claim in claims:
        if claim.venue != Source.INTERNAL:
            liquidation_execute(trigger_id=claim.trigger_id, worker=worker)


# ------------------------------------------------------------------------------------------ one by one
def liquidation_execute(*, trigger_id: str, worker: str = WORKER) -> str:
    """Execute a trigger this worker has claimed. Returns the trigger's status afterwards.

    Side effects: ledger-domain liquidation (fills, postings, events, email), LiquidationRecord rows,
    the trigger's outcome; on failure a retry in 1 s or escalation. Idempotency key: ``trigger_id``.
    """
    trigger = LiquidationTrigger.objects.filter(trigger_id=trigger_id).first()
    if trigger is None or trigger.status != Status.EXECUTING or trigger.claimed_by != worker:
        return trigger.status if trigger else "MISSING"
    try:
        if trigger.kind == ISOLATED:
            _execute_isolated(trigger, worker)
        else:
            _execute_cross(trigger, worker)
    except Exception as exc:
        logger.warning("liquidation %s attempt %s failed: %s", trigger_id, trigger.attempts, exc)
        trigger_fail(trigger.pk, worker, exc)
    return LiquidationTrigger.objects.values_list("status", flat=True).get(pk=trigger.pk)


def _locked_claim(pk: int, worker: str) -> LiquidationTrigger | None:
    trigger = LiquidationTrigger.objects.select_for_update().get(pk=pk)
    if trigger.status != Status.EXECUTING or trigger.claimed_by != worker:
        return None  # our lease expired and another worker took it over
    return trigger


def _execute_isolated(trigger: LiquidationTrigger, worker: str) -> None:
    assert trigger.position_id is not None
    if trigger.venue == Source.HYPERLIQUID:
        _execute_hl(trigger, worker, trigger.position_id, trigger.trigger_price)
        return
    with transaction.atomic():
        user_lock(trigger.user_id)  # first lock of every money transaction
        locked = _locked_claim(trigger.pk, worker)
        if locked is None:
            return
        position = Position.objects.select_for_update().get(pk=trigger.position_id)
        if position.status != Position.Status.OPEN or position_version(position) != trigger.position_version:
            trigger_finish(locked, Status.CANCELLED, note="the position changed after detection (superseded)")
            return
        mark = trigger.trigger_price
        if not isolated_still_liquidatable(position, mark, margin_table_for_asset(position.asset)):
            trigger_finish(locked, Status.CANCELLED, note="not liquidatable at the trigger mark")
            return
        close = liquidation_close_internal(
            position=position,
            mark=mark,
            idempotency_key=trigger.trigger_id,
            reserve_share=trading_settings().client_loss_reserve_share,
        )
        pause_for_fault_test()
        liquidation_record(locked, close)
        trigger_finish(locked, Status.COMPLETED)


def _execute_hl(trigger: LiquidationTrigger, worker: str, position_id: int, mark: Decimal) -> None:
    """HYPERLIQUID close through ``trading.liquidation`` (venue call outside any lock); the outcome,
    the drift record and (isolated) the trigger's completion commit with the settlement."""
    position = Position.objects.get(pk=position_id)
    key = trigger.trigger_id if trigger.kind == ISOLATED else f"{trigger.trigger_id}:{position_id}"

    def record(close: LiquidationClose) -> None:  # runs inside the settlement transaction
        locked = _locked_claim(trigger.pk, worker)
        if locked is None:
            raise RuntimeError("lost the claim on the trigger while HL was closing")
        liquidation_record(locked, close)
        drift_record(
            ref=f"liquidation:{key}",
            kind="LIQUIDATION",
            asset=close.asset,
            position_id=close.position_id,
            xbit_pnl=close.xbit_pnl,
            hl_actual_pnl=close.hl_pnl if close.hl_pnl is not None else close.xbit_pnl,
            notional=close.size * close.trigger_price,
        )
        if trigger.kind == ISOLATED:
            trigger_finish(locked, Status.COMPLETED)

    liquidation_close_hl(
        position=position,
        trigger_mark=mark,
        idempotency_key=key,
        refund_favourable_drift=risk_config().drift_refund_user_when_favourable,
        on_settled=record,
    )


def _cross_book(user_id: int, positions: list[Position]) -> CrossBook:
    balances = user_balances(user_id)
    collateral = balances.get(AccountKind.CASH, ZERO) + balances.get(AccountKind.ORDER_HOLD, ZERO)
    legs = tuple(cross_leg_of(p) for p in positions)
    return CrossBook(user_id, 0, collateral, legs)


def _execute_cross(trigger: LiquidationTrigger, worker: str) -> None:
    """Close the most losing cross position, recompute, and repeat while the account is still at or
    below its maintenance margin (spec 03), each close in its own transaction (a crash resumes)."""
    marks = {asset: Decimal(value) for asset, value in trigger.marks.items()}
    for _step in range(100):
        hl_target: Position | None = None
        with transaction.atomic():
            user_lock(trigger.user_id)
            locked = _locked_claim(trigger.pk, worker)
            if locked is None:
                return
            positions = list(
                Position.objects.select_for_update()
                .filter(user_id=trigger.user_id, status=Position.Status.OPEN, margin_mode=MarginMode.CROSS)
                .order_by("id")
            )
            missing = sorted({p.asset for p in positions} - set(marks))
            if missing:
                marks.update(effective_marks(missing))
            plan = cross_plan(_cross_book(trigger.user_id, positions), marks) if positions else ()
            if not plan:
                closed_any = locked.records.exists()
                trigger_finish(
                    locked,
                    Status.COMPLETED if closed_any else Status.CANCELLED,
                    note="" if closed_any else "account above maintenance margin at the trigger marks",
                )
                return
            target = next(p for p in positions if p.pk == plan[0])
            if target.source == Source.HYPERLIQUID:
                hl_target = target
            else:
                close = liquidation_close_internal(
                    position=target,
                    mark=marks[target.asset],
                    idempotency_key=f"{trigger.trigger_id}:{target.pk}",
                    reserve_share=trading_settings().client_loss_reserve_share,
                )
                pause_for_fault_test()
                liquidation_record(locked, close)
        if hl_target is not None:
            _execute_hl(trigger, worker, hl_target.pk, marks[hl_target.asset])
    raise RuntimeError("cross liquidation did not converge in 100 closes")


# ------------------------------------------------------------------------------------------ batch
def liquidation_execute_batch(*, claims: list[Claim], worker: str = WORKER) -> None:
    """Execute claimed INTERNAL triggers together, set-based: ONE transaction for all of them (users
    locked in ascending id order, positions and accounts read and locked in one round trip, every
    close computed in memory, every write in one more, the platform ledger rows locked last and moved
    once), committed with every trigger's outcome — each liquidation still happens exactly once
    whatever crashes (a killed worker leaves only the claims; the sweep re-drives them after the lease).

    A trigger the batch does not handle (a cross account with resting orders or HYPERLIQUID legs, a
    mark missing, a non-INTERNAL position) is left claimed and runs one by one after the commit; if
    the batch fails as a whole it is rolled back and every trigger runs one by one
    (:func:`liquidation_execute`: retries, escalation), so one bad trigger never holds up the others.
    Idempotency keys: as one by one (``trigger_id`` / ``trigger_id:position`` and ``…:settle``)."""
    if not claims:
        return
    try:
        rest = _execute_internal_batch(claims, worker)
    except Exception as exc:
        if len(claims) > 1:
            logger.warning("liquidation batch of %d failed (%s); executing them one by one", len(claims), exc)
        else:
            logger.info("liquidation %s: batched attempt failed (%s); one by one", claims[0].trigger_id, exc)
        rest = [c.trigger_id for c in claims]
    for trigger_id in rest:
        liquidation_execute(trigger_id=trigger_id, worker=worker)


_TRIGGER_OUTCOME_FIELDS = (
    "status",
    "completed_at",
    "lease_until",
    "errors",
    "close_price",
    "size",
    "margin_zeroed",
    "loss",
    "platform_share",
    "reserve_share",
    "bankrupt_amount",
    "drift_amount",
)


def _execute_internal_batch(claims: list[Claim], worker: str) -> list[str]:
    """One transaction for ``claims``; returns the trigger ids left for the one-by-one path."""
    cross_users = {c.user_id for c in claims if c.kind != ISOLATED}
    reserve_share = trading_settings().client_loss_reserve_share
    rest: list[str] = []
    finished: list[LiquidationTrigger] = []
    with transaction.atomic():
        book = InternalLiquidationBatch(
            user_ids=[c.user_id for c in claims],
            isolated_position_ids=[c.position_id for c in claims if c.kind == ISOLATED and c.position_id],
            cross_user_ids=cross_users,
            reserve_share=reserve_share,
            notify=_emails_later,
        )
        read = SqlBatch()
        book.queue_lock(read)  # the users' locks first, then our command rows, then theirs
        i_triggers = read.add(
            f"SELECT {concrete_columns(LiquidationTrigger)} FROM {LiquidationTrigger._meta.db_table} "  # noqa: S608
            "WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            [[c.pk for c in claims]],
        )
        book.queue_read(read)
        results = read.run()
        book.load(results)
        records: list[LiquidationRecord] = []
        for trigger in instances_from_rows(LiquidationTrigger, results[i_triggers] or []):
            if trigger.status != Status.EXECUTING or trigger.claimed_by != worker:
                continue  # our lease expired and another worker took it over
            if trigger.kind == ISOLATED:
                outcome = _batch_isolated(book, trigger, records)
            else:
                outcome = _batch_cross(book, trigger, records)
            if outcome is None:
                rest.append(trigger.trigger_id)
            else:
                status, note = outcome
                trigger_outcome_set(trigger, status, note=note)
                finished.append(trigger)
        write = SqlBatch()
        if records:
            write.add(*insert_rows(LiquidationRecord, records, with_pk=False))
        if finished:
            write.add(*update_rows(finished, _TRIGGER_OUTCOME_FIELDS))
        book.queue_write(write)
        book.verify(write.run())
        if records:
            pause_for_fault_test()
        if finished:
            triggers_finished_push(finished)
    return rest


def _emails_later(closes: list[LiquidationClose]) -> None:
    """After commit: the users' emails go to the ``default`` queue (handed over from the background
    thread, so neither the broker nor the mail server ever slows the critical workers in a flash
    crash); sent right there if the broker cannot take them. Best effort, as any email."""
    payload = [c.as_event() for c in closes]

    def hand_over() -> None:
        try:
            task_enqueue(LIQUIDATION_EMAILS, args=[payload], queue="default")
        except Exception:
            logger.warning(
                "could not queue %d liquidation emails; sending them now", len(closes), exc_info=True
            )
            liquidation_emails_send(closes)
        finally:
            connection.close()  # this thread's own connection, if the sending needed one

    in_background(hand_over)


def _batch_isolated(
    book: InternalLiquidationBatch, trigger: LiquidationTrigger, records: list[LiquidationRecord]
) -> tuple[str, str] | None:
    assert trigger.position_id is not None
    position = book.position(trigger.position_id)
    if position is None or position_version(position) != trigger.position_version:
        return Status.CANCELLED, "the position changed after detection (superseded)"
    if position.source != Source.INTERNAL:
        return None
    mark = trigger.trigger_price
    if not isolated_still_liquidatable(position, mark, book.margin_table(position.asset)):
        return Status.CANCELLED, "not liquidatable at the trigger mark"
    close = book.close(position, mark, trigger.trigger_id)
    records.append(liquidation_record_row(trigger, close))
    return Status.COMPLETED, ""


def _batch_cross(
    book: InternalLiquidationBatch, trigger: LiquidationTrigger, records: list[LiquidationRecord]
) -> tuple[str, str] | None:
    """Spec 03's cross order in memory: close the most losing position, recompute, repeat while the
    account is at or below its maintenance margin — all in this transaction."""
    user_id = trigger.user_id
    positions = book.open_positions(user_id, MarginMode.CROSS)
    marks = {asset: Decimal(value) for asset, value in trigger.marks.items()}
    if (
        book.has_open_orders(user_id)
        or any(p.source != Source.INTERNAL for p in positions)
        or {p.asset for p in positions} - set(marks)
    ):
        return None  # orders to cancel, HYPERLIQUID legs or a new asset: the one-by-one path
    closed_any = trigger.size > 0  # an earlier one-by-one attempt may have closed some already
    for _step in range(100):
        positions = book.open_positions(user_id, MarginMode.CROSS)
        book_now = CrossBook(user_id, 0, book.collateral(user_id), tuple(cross_leg_of(p) for p in positions))
        plan = cross_plan(book_now, marks) if positions else ()
        if not plan:
            if closed_any:
                return Status.COMPLETED, ""
            return Status.CANCELLED, "account above maintenance margin at the trigger marks"
        target = next(p for p in positions if p.pk == plan[0])
        close = book.close(target, marks[target.asset], f"{trigger.trigger_id}:{target.pk}")
        records.append(liquidation_record_row(trigger, close))
        closed_any = True
    raise RuntimeError("cross liquidation did not converge in 100 closes")
