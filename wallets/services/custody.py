"""The platform's hot and cold wallets: hot-wallet levels, liquidity coverage, and hot <-> cold
transfers (keys and deposit addresses: ``wallets.services.keys``)."""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from core.alerts.services import alert_raise, alert_resolve_condition
from core.audit.services import audit_record
from core.errors import ApplicationError, ErrorCode
from core.events.services import outbox_emit
from core.money import q_usdc
from wallets.chains import ChainRejected, ChainUnavailable, get_adapter, spec
from wallets.config import chain_config, chain_state, known_asset, wallet_config
from wallets.enqueue import COLD_TRANSFER_SEND, task_enqueue
from wallets.ledger import AccountRef, TransferSpec, ledger_post
from wallets.models import (
    AccountKind,
    ChainConfig,
    ChainState,
    ColdTransfer,
    LedgerAccount,
    TransferKind,
)
from wallets.services.aggregation import aggregation_plan
from wallets.services.chain_txs import transfer_broadcast, transfer_info, transfer_sign
from wallets.services.keys import cold_wallet_key, gas_transfers, hot_wallet_key, hot_wallet_ref
from wallets.services.permissions import require_perm

logger = logging.getLogger(__name__)
Level = ChainState.Level


# --- hot wallet levels ---------------------------------------------------------------------------


def hot_level(config: ChainConfig, balance: Decimal) -> str:
    if balance < config.hot_emergency_level:
        return Level.EMERGENCY
    if balance < config.hot_critical_level:
        return Level.CRITICAL
    if balance <= config.hot_safe_level:
        return Level.WARNING
    return Level.SAFE


def hot_wallet_onchain(chain: str) -> dict[str, Decimal]:
    config = chain_config(chain)
    key = hot_wallet_key(config.chain)
    adapter = get_adapter()
    return {asset: adapter.balance(config.chain, key.address, asset) for asset in config.assets}


def hot_wallet_check(*, chain: str) -> ChainState:
    """Read the hot wallet's spendable balance on chain and act on its level (spec 06 table).

    Side effects: ChainState row; alerts (warning P1, critical/emergency P0, resolved when safe);
    an emergency aggregation at warning or below; a cold top-up proposal at critical or below; an
    automatic hot -> cold transfer of the excess above the high watermark.
    """
    config = chain_config(chain)
    balances = hot_wallet_onchain(config.chain)
    total = sum(balances.values(), Decimal(0))
    level = hot_level(config, total)
    with transaction.atomic():
        state = ChainState.objects.select_for_update().filter(chain=config.chain).first() or chain_state(
            config.chain
        )
        previous = state.hot_level
        state.hot_balance = q_usdc(total)
        state.hot_level = level
        state.hot_checked_at = timezone.now()
        state.save(update_fields=["hot_balance", "hot_level", "hot_checked_at"])
        if previous != level:
            outbox_emit(
                topic="wallets.hot_wallet_level",
                aggregate=f"chain:{config.chain}",
                payload={"chain": config.chain, "level": level, "previous": previous, "balance": str(total)},
            )
    subject = config.chain
    details = {"balance": str(total), "level": level}
    if level == Level.EMERGENCY:
        alert_raise(
            rule="wallets.hot_wallet_emergency",
            severity="P0",
            subject=subject,
            message=f"{subject} hot wallet {total:,.2f} is below {config.hot_emergency_level:,.0f}: all withdrawals halted.",
            details=details,
        )
    else:
        alert_resolve_condition(rule="wallets.hot_wallet_emergency", subject=subject)
    if level in (Level.CRITICAL, Level.EMERGENCY):
        alert_raise(
            rule="wallets.hot_wallet_critical",
            severity="P0",
            subject=subject,
            message=f"{subject} hot wallet {total:,.2f} is below {config.hot_critical_level:,.0f}: "
            "withdrawals above the pause limit wait; a cold top-up is proposed.",
            details=details,
        )
        cold_topup_propose_auto(chain=config.chain, balance=total)
    else:
        alert_resolve_condition(rule="wallets.hot_wallet_critical", subject=subject)
    if level == Level.WARNING:
        alert_raise(
            rule="wallets.hot_wallet_warning",
            severity="P1",
            subject=subject,
            message=f"{subject} hot wallet {total:,.2f} is in the warning band; sweeping deposit addresses.",
            details=details,
        )
    elif level == Level.SAFE:
        alert_resolve_condition(rule="wallets.hot_wallet_warning", subject=subject)
    if level != Level.SAFE:
        aggregation_plan(chain=config.chain, trigger="emergency")
    if total > config.hot_high_watermark:
        _excess_to_cold(config, balances, total)
    state.refresh_from_db()
    return state


def liquidity_check() -> Decimal | None:
    """Coverage = Σ hot wallets / total user liability; P1 alert below the configured ratio."""
    hot = ChainState.objects.aggregate(total=Sum("hot_balance"))["total"] or Decimal(0)
    liability = LedgerAccount.objects.filter(user__isnull=False, asset="USDC").aggregate(
        total=Sum("balance")
    )["total"] or Decimal(0)
    if liability <= 0:
        alert_resolve_condition(rule="wallets.liquidity_coverage")
        return None
    coverage = hot / liability
    threshold = wallet_config().liquidity_coverage_alert
    if coverage < threshold:
        alert_raise(
            rule="wallets.liquidity_coverage",
            severity="P1",
            message=f"Hot wallets cover {coverage:.1%} of user balances (alert below {threshold:.0%}).",
            details={"hot": str(hot), "liability": str(liability)},
        )
    else:
        alert_resolve_condition(rule="wallets.liquidity_coverage")
    return coverage


# --- hot <-> cold ----------------------------------------------------------------------------------


def cold_topup_propose_auto(*, chain: str, balance: Decimal) -> ColdTransfer | None:
    config = chain_config(chain)
    if ColdTransfer.objects.filter(
        chain=config.chain,
        direction=ColdTransfer.Direction.TO_HOT,
        status__in=[ColdTransfer.Status.PROPOSED, ColdTransfer.Status.APPROVED, ColdTransfer.Status.SENT],
    ).exists():
        return None
    # refill to halfway between the safe level and the high watermark, not just to the edge of "safe"
    target = (config.hot_safe_level + config.hot_high_watermark) / 2
    amount = q_usdc(target - balance)
    if amount <= 0:
        return None
    with transaction.atomic():
        proposal = ColdTransfer.objects.create(
            chain=config.chain,
            asset=config.assets[0],
            direction=ColdTransfer.Direction.TO_HOT,
            amount=amount,
            reason=f"hot wallet at {balance:,.2f}, below the critical level",
        )
        audit_record(
            action="wallets.cold_topup.propose",
            object_type="cold_transfer",
            object_id=proposal.pk,
            after={"chain": config.chain, "asset": proposal.asset, "amount": str(amount)},
            reason=proposal.reason,
        )
    return proposal


@transaction.atomic
def cold_topup_propose(
    *, chain: str, asset: str, amount: Decimal, acting_user: Any, reason: str
) -> ColdTransfer:
    require_perm(acting_user, "trigger_aggregation")
    config = chain_config(chain)
    asset = known_asset(config, asset)
    if amount <= 0:
        raise ApplicationError(ErrorCode.INVALID_AMOUNT, "The amount must be positive.")
    proposal = ColdTransfer.objects.create(
        chain=config.chain,
        asset=asset,
        direction=ColdTransfer.Direction.TO_HOT,
        amount=q_usdc(amount),
        reason=reason,
        proposed_by=acting_user,
    )
    audit_record(
        action="wallets.cold_topup.propose",
        actor=acting_user,
        object_type="cold_transfer",
        object_id=proposal.pk,
        after={"chain": config.chain, "asset": asset, "amount": str(proposal.amount)},
        reason=reason,
    )
    return proposal


@transaction.atomic
def cold_topup_decide(*, transfer_id: int, acting_user: Any, approve: bool, reason: str = "") -> ColdTransfer:
    """A risk officer approves (stands in for offline signing) or rejects a cold -> hot proposal."""
    require_perm(acting_user, "manage_liquidity")
    proposal = ColdTransfer.objects.select_for_update().filter(pk=transfer_id).first()
    if proposal is None:
        raise ApplicationError(ErrorCode.NOT_FOUND, "No such cold-wallet transfer.")
    if proposal.status != ColdTransfer.Status.PROPOSED:
        raise ApplicationError(ErrorCode.INVALID_STATE, f"The transfer is {proposal.status}.")
    if proposal.proposed_by_id == acting_user.pk:
        raise ApplicationError(
            ErrorCode.FOUR_EYES_REQUIRED, "The proposer cannot approve their own proposal."
        )
    proposal.status = ColdTransfer.Status.APPROVED if approve else ColdTransfer.Status.REJECTED
    proposal.decided_by = acting_user
    proposal.decided_at = timezone.now()
    proposal.save(update_fields=["status", "decided_by", "decided_at"])
    audit_record(
        action="wallets.cold_topup.approve" if approve else "wallets.cold_topup.reject",
        actor=acting_user,
        object_type="cold_transfer",
        object_id=proposal.pk,
        before={"status": ColdTransfer.Status.PROPOSED},
        after={"status": proposal.status},
        reason=reason,
    )
    if approve:
        transaction.on_commit(lambda: task_enqueue(COLD_TRANSFER_SEND, proposal.pk))
    return proposal


def _excess_to_cold(config: ChainConfig, balances: dict[str, Decimal], total: Decimal) -> None:
    if ColdTransfer.objects.filter(
        chain=config.chain,
        direction=ColdTransfer.Direction.TO_COLD,
        status__in=[ColdTransfer.Status.APPROVED, ColdTransfer.Status.SENT],
    ).exists():
        return
    asset = max(balances, key=lambda a: balances[a])
    amount = q_usdc(min(total - config.hot_safe_level, balances[asset]))
    if amount <= 0:
        return
    with transaction.atomic():
        transfer = ColdTransfer.objects.create(
            chain=config.chain,
            asset=asset,
            direction=ColdTransfer.Direction.TO_COLD,
            amount=amount,
            status=ColdTransfer.Status.APPROVED,
            reason=f"hot wallet {total:,.2f} above the high watermark {config.hot_high_watermark:,.0f}",
        )
        audit_record(
            action="wallets.cold_sweep.create",
            object_type="cold_transfer",
            object_id=transfer.pk,
            after={"chain": config.chain, "asset": asset, "amount": str(amount)},
            reason=transfer.reason,
        )
        transaction.on_commit(lambda: task_enqueue(COLD_TRANSFER_SEND, transfer.pk))


def cold_transfer_send(*, transfer_id: int) -> ColdTransfer | None:
    """Sign and broadcast an approved hot/cold transfer. Claimed with a conditional UPDATE, nonce
    ``cold-<id>``: the signed payload is deterministic, so a retry can never pay twice."""
    transfer = ColdTransfer.objects.filter(pk=transfer_id).first()
    if transfer is None:
        return None
    if transfer.status == ColdTransfer.Status.APPROVED:
        hot, cold = hot_wallet_key(transfer.chain), cold_wallet_key(transfer.chain)
        source, target = (cold, hot) if transfer.direction == ColdTransfer.Direction.TO_HOT else (hot, cold)
        try:
            with transaction.atomic():  # sign (EVM: allocate the nonce) and claim together
                payload = transfer_sign(
                    key=source,
                    asset=transfer.asset,
                    to=target.address,
                    amount=transfer.amount,
                    ref=f"cold-{transfer.pk}",
                )
                claimed = ColdTransfer.objects.filter(
                    pk=transfer.pk, status=ColdTransfer.Status.APPROVED
                ).update(status=ColdTransfer.Status.SENT, payload=payload, tx_hash=payload["tx_hash"])
                if claimed != 1:
                    raise IntegrityError("claimed by another worker")
        except IntegrityError:
            return None
        except ChainRejected as exc:
            logger.warning("cold transfer %s not signed: %s", transfer.pk, exc.code)
            return transfer
        transfer.refresh_from_db()
    if transfer.status != ColdTransfer.Status.SENT or transfer.payload is None:
        return transfer
    try:
        transfer_broadcast(transfer.chain, transfer.payload)
    except ChainUnavailable as exc:
        logger.warning("cold transfer %s broadcast failed: %s", transfer.pk, exc)
    except ChainRejected as exc:
        logger.warning("cold transfer %s refused: %s", transfer.pk, exc.code)
    return transfer


def cold_transfer_track(*, transfer_id: int) -> ColdTransfer | None:
    transfer = ColdTransfer.objects.filter(pk=transfer_id, status=ColdTransfer.Status.SENT).first()
    if transfer is None:
        return None
    info = transfer_info(transfer.chain, transfer.tx_hash)
    if info.status in ("dropped", "unknown"):
        return cold_transfer_send(transfer_id=transfer.pk)  # identical payload again
    if info.status == "failed" and info.confirmations >= chain_config(transfer.chain).confirmations:
        ColdTransfer.objects.filter(pk=transfer.pk, status=ColdTransfer.Status.SENT).update(
            status=ColdTransfer.Status.FAILED, completed_at=timezone.now()
        )
        return ColdTransfer.objects.get(pk=transfer.pk)
    if info.status != "confirmed" or info.confirmations < chain_config(transfer.chain).confirmations:
        return transfer
    with transaction.atomic():
        locked = ColdTransfer.objects.select_for_update().get(pk=transfer.pk)
        if locked.status != ColdTransfer.Status.SENT:
            return locked
        hot = hot_wallet_ref(locked.chain, locked.asset)
        cold = AccountRef.platform(AccountKind.COLD_WALLET, sub=spec.custody_sub(locked.chain, locked.asset))
        debit, credit = (hot, cold) if locked.direction == ColdTransfer.Direction.TO_HOT else (cold, hot)
        ledger_post(
            key=f"cold_transfer:{locked.pk}",
            transfers=[
                TransferSpec(
                    debit=debit,
                    credit=credit,
                    amount=locked.amount,
                    kind=TransferKind.COLD_TRANSFER,
                    ref_type="cold_transfer",
                    ref_id=locked.pk,
                ),
                *gas_transfers(locked.chain, info.fee, ref_type="cold_transfer", ref_id=locked.pk),
            ],
        )
        locked.status = ColdTransfer.Status.CONFIRMED
        locked.completed_at = timezone.now()
        locked.save(update_fields=["status", "completed_at"])
    return locked
