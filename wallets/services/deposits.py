"""Deposits: scan the chains, record each incoming transfer once, credit at the required
confirmations exactly once, drop what a reorg removed, hold out-of-range amounts for review."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.alerts.services import alert_raise
from core.audit.services import audit_record
from core.errors import ApplicationError, ErrorCode
from core.events.services import outbox_emit
from wallets.chains import get_adapter, spec
from wallets.chains.base import IncomingTransfer
from wallets.config import chain_config, chain_state, wallet_config
from wallets.ledger import AccountRef, TransferSpec, ledger_post
from wallets.models import AccountKind, ChainState, Deposit, DepositAddress, TransferKind
from wallets.services.permissions import require_perm

logger = logging.getLogger(__name__)


@dataclass
class ScanReport:
    chain: str
    from_height: int = 0
    to_height: int = 0
    recorded: int = 0
    credited: int = 0
    held: int = 0
    dropped: int = 0
    deposits: list[int] = field(default_factory=list)


def deposits_scan(*, chain: str) -> ScanReport:
    """One scan of ``chain`` (beat: every 10 s). Safe to run twice or concurrently: each transfer is
    recorded once by (chain, tx hash, log index) and credited under a row lock with a ledger key
    derived from the same triple, so a repeat or a crash mid-way changes nothing."""
    config = chain_config(chain)
    adapter = get_adapter()
    state = chain_state(config.chain)
    report = ScanReport(chain=config.chain)
    if not (config.enabled and config.deposits_enabled):
        return report

    tip = adapter.height(config.chain)
    if state.scanned_height is None:
        start = max(0, tip - wallet_config().scan_lookback_blocks)
    else:
        # re-read the last `confirmations` blocks: a reorg may have replaced them with new content
        start = max(0, state.scanned_height + 1 - config.confirmations)
    pending = list(Deposit.objects.filter(chain=config.chain, status=Deposit.Status.PENDING))
    heights = [d.block_height for d in pending if d.block_height is not None]
    start = min([start, *heights])
    report.from_height = start

    seen: dict[tuple[str, int], IncomingTransfer] = {}
    height = start
    while True:
        result = adapter.scan(config.chain, from_height=height, to_height=tip)
        for item in result.transfers:
            if item.asset in config.assets:
                seen[(item.tx_hash, item.log_index)] = item
        if result.covered_height >= tip or result.covered_height < height:
            break
        height = result.covered_height + 1
    report.to_height = tip

    owners = dict(
        DepositAddress.objects.filter(
            chain=config.chain, address__in={t.to for t in seen.values()}
        ).values_list("address", "user_id")
    )
    mine = {k: t for k, t in seen.items() if t.to in owners}
    if mine:
        created = Deposit.objects.bulk_create(
            [
                Deposit(
                    chain=config.chain,
                    tx_hash=t.tx_hash,
                    log_index=t.log_index,
                    user_id=owners[t.to],
                    address=t.to,
                    from_address=t.sender,
                    asset=t.asset,
                    amount=t.amount,
                    block_height=t.block,
                    confirmations=t.confirmations,
                    required_confirmations=config.confirmations,
                )
                for t in mine.values()
            ],
            ignore_conflicts=True,
        )
        report.recorded = len([d for d in created if d.pk])

    # Confirmations (and reorgs) for everything not yet final on this chain.
    open_deposits = list(
        Deposit.objects.filter(
            chain=config.chain, status__in=[Deposit.Status.PENDING, Deposit.Status.DROPPED]
        )
    )
    for deposit in open_deposits:
        item = mine.get((deposit.tx_hash, deposit.log_index))
        if item is not None:
            status, confirmations, block = "confirmed", item.confirmations, item.block
        elif deposit.status == Deposit.Status.DROPPED:
            continue
        else:
            info = adapter.tx(config.chain, deposit.tx_hash)
            status, confirmations, block = info.status, info.confirmations, info.block
        _deposit_observe(deposit, status=status, confirmations=confirmations, block=block, report=report)

    ChainState.objects.filter(chain=config.chain).update(scanned_height=tip, last_scan_at=timezone.now())
    return report


def _deposit_observe(
    deposit: Deposit, *, status: str, confirmations: int, block: int | None, report: ScanReport
) -> None:
    config = chain_config(deposit.chain)
    now = timezone.now()
    if status in ("dropped", "unknown"):
        updated = Deposit.objects.filter(pk=deposit.pk, status=Deposit.Status.PENDING).update(
            status=Deposit.Status.DROPPED, confirmations=0, block_height=None, updated_at=now
        )
        report.dropped += updated
        return
    new_status = Deposit.Status.PENDING  # a DROPPED transfer seen again in a block is pending again
    Deposit.objects.filter(pk=deposit.pk, status__in=[Deposit.Status.PENDING, Deposit.Status.DROPPED]).update(
        status=new_status,
        confirmations=confirmations,
        block_height=block,
        required_confirmations=config.confirmations,
        updated_at=now,
    )
    if status == "confirmed" and confirmations >= config.confirmations:
        credited = deposit_credit(deposit_id=deposit.pk)
        if credited is not None:
            report.deposits.append(credited.pk)
            if credited.status == Deposit.Status.CREDITED:
                report.credited += 1
            elif credited.status == Deposit.Status.HELD:
                report.held += 1


def _post_deposit(deposit: Deposit) -> None:
    ledger_post(
        key=deposit.ledger_key,
        transfers=[
            TransferSpec(
                debit=AccountRef.platform(
                    AccountKind.DEPOSIT_CLEARING, sub=spec.custody_sub(deposit.chain, deposit.asset)
                ),
                credit=AccountRef.user(deposit.user_id, AccountKind.CASH),
                amount=deposit.amount,
                kind=TransferKind.DEPOSIT,
                ref_type="deposit",
                ref_id=deposit.pk,
            )
        ],
    )


def deposit_credit(*, deposit_id: int) -> Deposit | None:
    """Credit a confirmed deposit to the user's cash, exactly once.

    Idempotency: the row lock plus the status check serialise workers; the ledger key
    ``deposit:<chain>:<tx>:<log index>`` makes even a replay after a crash a no-op.
    Side effects: ledger transfer deposit_clearing -> cash; outbox ``wallets.deposit_credited``;
    amounts outside the configured range are HELD with a P2 alert instead.
    """
    with transaction.atomic():
        deposit = Deposit.objects.select_for_update().filter(pk=deposit_id).first()
        if deposit is None or deposit.status != Deposit.Status.PENDING:
            return deposit
        config = chain_config(deposit.chain)
        if deposit.confirmations < config.confirmations:
            return deposit
        now = timezone.now()
        if not (config.min_deposit <= deposit.amount <= config.max_deposit):
            deposit.status = Deposit.Status.HELD
            deposit.review_note = f"amount {deposit.amount} outside {config.min_deposit:,.0f} - {config.max_deposit:,.0f}: manual review"
            deposit.updated_at = now
            deposit.save(update_fields=["status", "review_note", "updated_at"])
            transaction.on_commit(
                lambda: alert_raise(
                    rule="wallets.deposit_held",
                    severity="P2",
                    subject=str(deposit.pk),
                    message=f"Deposit {deposit.pk} of {deposit.amount} {deposit.asset} held for review.",
                )
            )
            return deposit
        _post_deposit(deposit)
        deposit.status = Deposit.Status.CREDITED
        deposit.credited_at = now
        deposit.updated_at = now
        deposit.save(update_fields=["status", "credited_at", "updated_at"])
        outbox_emit(
            topic="wallets.deposit_credited",
            aggregate=f"user:{deposit.user_id}",
            payload={
                "deposit_id": deposit.pk,
                "user_id": deposit.user_id,
                "chain": deposit.chain,
                "asset": deposit.asset,
                "amount": str(deposit.amount),
                "tx_hash": deposit.tx_hash,
            },
        )
        return deposit


@transaction.atomic
def deposit_review(
    *, deposit_id: int, acting_user: Any, approve: bool, note: str, request: Any = None
) -> Deposit:
    """Operations resolve a held deposit: approve credits it (same ledger key), reject records why
    (the coins stay on the deposit address for a manual return)."""
    require_perm(acting_user, "approve_withdrawals")
    if not note.strip():
        raise ApplicationError(ErrorCode.VALIDATION_ERROR, "A note is required.")
    deposit = Deposit.objects.select_for_update().filter(pk=deposit_id).first()
    if deposit is None:
        raise ApplicationError(ErrorCode.NOT_FOUND, "No such deposit.")
    if deposit.status != Deposit.Status.HELD:
        raise ApplicationError(ErrorCode.INVALID_STATE, f"The deposit is {deposit.status}.")
    if approve:
        _post_deposit(deposit)
        deposit.status = Deposit.Status.CREDITED
        deposit.credited_at = timezone.now()
    else:
        deposit.status = Deposit.Status.REJECTED
    deposit.reviewed_by = acting_user
    deposit.review_note = note
    deposit.updated_at = timezone.now()
    deposit.save()
    audit_record(
        action="wallets.deposit.review",
        actor=acting_user,
        request=request,
        object_type="deposit",
        object_id=deposit.pk,
        before={"status": Deposit.Status.HELD},
        after={"status": deposit.status},
        reason=note,
    )
    return deposit
