"""Deposits: scan the chains, record each incoming transfer once, credit at the required
confirmations exactly once, drop what a reorg removed, hold out-of-range amounts for review.

Confirmations: a transfer's block is its first confirmation (confirmations = tip − block + 1), and it is
credited at ``ChainConfig.confirmations`` (ETH and Arbitrum: 12). Until then every scan re-reads the
blocks of every pending deposit: a reorg that removed its block either shows the transfer in a new
block (new height and block hash, confirmations start again) or not at all (``tx`` unknown → DROPPED,
nothing credited). Each deposit stores its block hash; when the chain's block at a credited deposit's
height no longer has that hash — a reorg deeper than the confirmations, which we treat as not
happening — a P0 alert is raised and nothing is booked again: the ledger key
``deposit:<chain>:<tx>:<log index>`` can be posted once only.

Native coins sent to a deposit address (ETH on ETH/Arbitrum) are recorded and, once confirmed, HELD
for review: they are never credited as a token (our own gas top-ups are not deposits).
"""

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
from wallets.chains import get_adapter, nonce_adapter, spec
from wallets.chains.base import IncomingTransfer
from wallets.config import chain_config, chain_state, wallet_config
from wallets.ledger import AccountRef, TransferSpec, ledger_post
from wallets.models import (
    AccountKind,
    ChainConfig,
    ChainState,
    Deposit,
    DepositAddress,
    TransferKind,
    WalletKey,
)
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
    if _reorged_below(config.chain, state, tip):
        start = min(start, max(0, (state.scanned_height or 0) + 1 - 2 * config.confirmations))
    report.from_height = start

    platform = set(
        WalletKey.objects.filter(chain=config.chain)
        .exclude(purpose=WalletKey.Purpose.DEPOSIT)
        .values_list("address", flat=True)
    )
    seen: dict[tuple[str, int], IncomingTransfer] = {}
    height = start
    while height <= tip:
        end = min(tip, height + config.scan_range_blocks - 1)  # bounded ranges: providers cap getLogs
        result = adapter.scan(config.chain, from_height=height, to_height=end)
        for item in result.transfers:
            native = item.asset == config.native_asset and item.asset not in config.assets
            if item.asset in config.assets or (native and item.sender not in platform):
                seen[(item.tx_hash, item.log_index)] = item
        if result.covered_height < height:
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
                    block_hash=t.block_hash,
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
            status, confirmations, block, block_hash = (
                "confirmed",
                item.confirmations,
                item.block,
                item.block_hash,
            )
        elif deposit.status == Deposit.Status.DROPPED:
            continue
        else:
            info = adapter.tx(config.chain, deposit.tx_hash)
            status, confirmations, block, block_hash = (
                info.status,
                info.confirmations,
                info.block,
                info.block_hash,
            )
            if status == "failed":  # a reverted transaction moved nothing
                status = "dropped"
        if deposit.block_hash and block_hash and block_hash != deposit.block_hash:
            logger.warning("%s: reorg moved deposit %s to block %s", config.chain, deposit.pk, block)
        _deposit_observe(
            deposit,
            config=config,
            status=status,
            confirmations=confirmations,
            block=block,
            block_hash=block_hash,
            report=report,
        )

    tip_hash = _hash_at(config.chain, tip)
    ChainState.objects.filter(chain=config.chain).update(
        scanned_height=tip, scanned_hash=tip_hash or "", last_scan_at=timezone.now()
    )
    return report


def _hash_at(chain: str, height: int) -> str | None:
    adapter = nonce_adapter(chain)
    return adapter.block_hash(chain, height) if adapter is not None else None


def _reorged_below(chain: str, state: ChainState, tip: int) -> bool:
    """Did the block we last scanned up to change? Then check the recent credited deposits' blocks."""
    if state.scanned_height is None or not state.scanned_hash or state.scanned_height > tip:
        return False
    if _hash_at(chain, state.scanned_height) == state.scanned_hash:
        return False
    config = chain_config(chain)
    recent = Deposit.objects.filter(
        chain=chain,
        status=Deposit.Status.CREDITED,
        block_height__gte=state.scanned_height - 2 * config.confirmations,
    ).exclude(block_hash="")
    for deposit in recent:
        if deposit.block_height is not None and _hash_at(chain, deposit.block_height) != deposit.block_hash:
            alert_raise(
                rule="wallets.deposit_reorged_after_credit",
                severity="P0",
                subject=str(deposit.pk),
                message=f"The block of credited deposit {deposit.pk} ({deposit.tx_hash}) was replaced by a "
                f"reorg deeper than {config.confirmations} confirmations. Not re-credited; check the chain.",
            )
    return True


def _deposit_observe(
    deposit: Deposit,
    *,
    config: ChainConfig,
    status: str,
    confirmations: int,
    block: int | None,
    block_hash: str,
    report: ScanReport,
) -> None:
    now = timezone.now()
    if status in ("dropped", "unknown"):
        updated = Deposit.objects.filter(pk=deposit.pk, status=Deposit.Status.PENDING).update(
            status=Deposit.Status.DROPPED, confirmations=0, block_height=None, block_hash="", updated_at=now
        )
        report.dropped += updated
        return
    new_status = Deposit.Status.PENDING  # a DROPPED transfer seen again in a block is pending again
    Deposit.objects.filter(pk=deposit.pk, status__in=[Deposit.Status.PENDING, Deposit.Status.DROPPED]).update(
        status=new_status,
        confirmations=confirmations,
        block_height=block,
        block_hash=block_hash if block is not None else "",
        required_confirmations=config.confirmations,
        updated_at=now,
    )
    if status == "confirmed" and confirmations >= config.confirmations:
        credited = deposit_credit(deposit_id=deposit.pk, config=config)
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


def deposit_credit(*, deposit_id: int, config: ChainConfig | None = None) -> Deposit | None:
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
        if config is None or config.chain != deposit.chain:
            config = chain_config(deposit.chain)
        if deposit.confirmations < config.confirmations:
            return deposit
        now = timezone.now()
        token = deposit.asset in config.assets
        if not token or not (config.min_deposit <= deposit.amount <= config.max_deposit):
            deposit.status = Deposit.Status.HELD
            deposit.review_note = (
                f"native {deposit.asset} sent to a deposit address: not credited; return it manually"
                if not token
                else f"amount {deposit.amount} outside {config.min_deposit:,.0f} - {config.max_deposit:,.0f}: manual review"
            )
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
    if approve and deposit.asset not in chain_config(deposit.chain).assets:
        raise ApplicationError(
            ErrorCode.INVALID_STATE,
            f"{deposit.asset} is not a deposit asset: reject it and return the coins.",
        )
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
