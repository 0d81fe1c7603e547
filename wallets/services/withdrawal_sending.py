"""Sending withdrawals (spec 06): hot wallet check, claim, sign and broadcast once, track to the chain's
confirmations and complete, or refund one the chain refused for good (or that was mined and reverted:
receipt status 0). Broadcast key: ``wd-<id>``; the signed payload is stored with the claim, before the
broadcast (EVM: with its account nonce, ``wallets.services.chain_txs``), so a re-broadcast after a crash
sends the identical transaction."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from core.errors import ErrorCode
from core.events.services import outbox_emit
from wallets.chains import ChainRejected, ChainUnavailable, get_adapter
from wallets.config import chain_config, wallet_config
from wallets.ledger import AccountRef, TransferSpec, ledger_post
from wallets.models import AccountKind, ChainState, TransferKind, Withdrawal
from wallets.services.chain_txs import transfer_broadcast, transfer_info, transfer_sign
from wallets.services.custody import hot_wallet_check
from wallets.services.keys import gas_transfers, hot_wallet_key, hot_wallet_ref
from wallets.services.withdrawals import withdrawal_refund

logger = logging.getLogger(__name__)
S = Withdrawal.Status
RETRY_WITH_HIGHER_FEE = ("fee_too_low", "underpriced")


def withdrawal_send(*, withdrawal_id: int) -> Withdrawal | None:
    """Hot wallet check, then claim → sign → broadcast. Safe to run twice and after a crash.

    The claim is ``UPDATE … SET status='SENDING', payload=… WHERE id=… AND status='APPROVED'``: only
    one worker wins. The payload (nonce ``wd-<id>``) is stored before it is broadcast; if the worker
    dies after that, ``withdrawals_process_due`` re-broadcasts exactly that payload.
    """
    withdrawal = Withdrawal.objects.filter(pk=withdrawal_id).first()
    if withdrawal is None or withdrawal.status != S.APPROVED:
        return withdrawal
    config = chain_config(withdrawal.chain)
    try:
        state = hot_wallet_check(chain=withdrawal.chain)
        onchain = get_adapter().balance(
            withdrawal.chain, hot_wallet_key(withdrawal.chain).address, withdrawal.asset
        )
    except ChainUnavailable as exc:
        _note(withdrawal.pk, f"chain unavailable: {exc}")
        return withdrawal
    held = ""
    if state.hot_level == ChainState.Level.EMERGENCY:
        held = "halted: hot wallet below the emergency level"
    elif (
        state.hot_level == ChainState.Level.CRITICAL
        and withdrawal.amount > wallet_config().critical_pause_above
    ):
        held = "paused: hot wallet below the critical level"
    elif not (config.enabled and config.withdrawals_enabled):
        held = "withdrawals disabled on this chain"
    elif onchain < withdrawal.net_amount:
        held = f"hot wallet holds {onchain} {withdrawal.asset}, needs {withdrawal.net_amount}"
    if held:
        _note(withdrawal.pk, held)
        return withdrawal
    try:
        with transaction.atomic():  # sign (EVM: allocate the nonce) and claim together, or neither
            payload = transfer_sign(
                key=hot_wallet_key(withdrawal.chain),
                asset=withdrawal.asset,
                to=withdrawal.address,
                amount=withdrawal.net_amount,
                ref=f"wd-{withdrawal.pk}",
            )
            now = timezone.now()
            claimed = Withdrawal.objects.filter(pk=withdrawal.pk, status=S.APPROVED).update(
                status=S.SENDING,
                nonce=payload["nonce"],
                payload=payload,
                tx_hash=payload["tx_hash"],
                claimed_at=now,
                send_attempts=F("send_attempts") + 1,
                updated_at=now,
            )
            if claimed != 1:
                raise IntegrityError("claimed by another worker")
    except IntegrityError:
        return Withdrawal.objects.filter(pk=withdrawal.pk).first()
    except (ChainRejected, ChainUnavailable) as exc:
        _note(withdrawal.pk, f"not signed: {exc}")
        return withdrawal
    return withdrawal_broadcast(withdrawal_id=withdrawal.pk)


def withdrawal_broadcast(*, withdrawal_id: int) -> Withdrawal | None:
    """Broadcast the stored payload of a SENDING withdrawal (first time or again after a crash)."""
    withdrawal = Withdrawal.objects.filter(pk=withdrawal_id, status=S.SENDING).first()
    if withdrawal is None or withdrawal.payload is None:
        return withdrawal
    try:
        transfer_broadcast(withdrawal.chain, withdrawal.payload)
    except ChainUnavailable as exc:
        _note(withdrawal.pk, f"broadcast unavailable: {exc}")  # stays SENDING: re-broadcast later
        return withdrawal
    except ChainRejected as exc:
        if exc.code in ("insufficient_balance", "insufficient_gas"):
            # refused, not in any mempool: back to APPROVED; the next claim rebuilds the same payload
            Withdrawal.objects.filter(pk=withdrawal.pk, status=S.SENDING).update(
                status=S.APPROVED, last_error=f"{exc.code}: {exc.message}"[:300], updated_at=timezone.now()
            )
        elif exc.code in RETRY_WITH_HIGHER_FEE or ("raw" in withdrawal.payload and exc.code != "nonce_used"):
            # EVM: its nonce is taken by these signed bytes; refunding would leave a gap that blocks every
            # later transaction. It stays SENDING; chain_txs_replace_stuck re-signs it with a higher fee.
            _note(withdrawal.pk, f"{exc.code}: {exc.message}; waiting for a fee replacement")
        else:
            withdrawal_fail(withdrawal_id=withdrawal.pk, reason=f"{exc.code}: {exc.message}")
        return Withdrawal.objects.filter(pk=withdrawal.pk).first()
    now = timezone.now()
    Withdrawal.objects.filter(pk=withdrawal.pk, status=S.SENDING).update(
        status=S.BROADCAST, broadcast_at=now, last_error="", updated_at=now
    )
    return Withdrawal.objects.filter(pk=withdrawal.pk).first()


def withdrawal_fail(*, withdrawal_id: int, reason: str) -> Withdrawal | None:
    """Refund a withdrawal the chain refused for good — only if its transaction is unknown there."""
    withdrawal = Withdrawal.objects.filter(pk=withdrawal_id).first()
    if withdrawal is None or withdrawal.status not in (S.SENDING, S.BROADCAST):
        return withdrawal
    if withdrawal.tx_hash:
        info = transfer_info(withdrawal.chain, withdrawal.tx_hash)
        if info.status in ("pending", "confirmed", "failed"):
            return withdrawal  # it is on its way after all
    with transaction.atomic():
        locked = Withdrawal.objects.select_for_update().get(pk=withdrawal_id)
        if locked.status not in (S.SENDING, S.BROADCAST):
            return locked
        withdrawal_refund(locked, status=S.FAILED, code="SEND_FAILED", reason=reason)
        return locked


def _note(withdrawal_id: int, message: str) -> None:
    Withdrawal.objects.filter(pk=withdrawal_id).update(last_error=message[:300], updated_at=timezone.now())


def withdrawal_track(*, withdrawal_id: int) -> Withdrawal | None:
    """Follow a broadcast withdrawal; complete it at the chain's confirmations, re-broadcast the
    identical payload if the chain dropped it (reorg or mempool eviction)."""
    withdrawal = Withdrawal.objects.filter(pk=withdrawal_id, status=S.BROADCAST).first()
    if withdrawal is None:
        return withdrawal
    info = transfer_info(withdrawal.chain, withdrawal.tx_hash)
    if info.tx_hash != withdrawal.tx_hash:  # a replacement (same nonce, higher fee) was mined
        Withdrawal.objects.filter(pk=withdrawal.pk).update(tx_hash=info.tx_hash)
    if info.status in ("dropped", "unknown"):
        Withdrawal.objects.filter(pk=withdrawal.pk, status=S.BROADCAST).update(
            status=S.SENDING,
            confirmations=0,
            claimed_at=timezone.now(),
            last_error=f"tx {info.status}; re-sending",
        )
        return withdrawal_broadcast(withdrawal_id=withdrawal.pk)
    Withdrawal.objects.filter(pk=withdrawal.pk).update(confirmations=info.confirmations)
    if info.confirmations < chain_config(withdrawal.chain).confirmations:
        return withdrawal
    if info.status == "failed":
        return _reverted(withdrawal.pk, info.fee)
    if info.status != "confirmed":
        return withdrawal
    with transaction.atomic():
        locked = Withdrawal.objects.select_for_update().get(pk=withdrawal.pk)
        if locked.status != S.BROADCAST:
            return locked
        pending = AccountRef.user(locked.user_id, AccountKind.PENDING_WITHDRAWAL)
        ref: dict[str, Any] = {"ref_type": "withdrawal", "ref_id": locked.pk}
        transfers = [
            TransferSpec(
                debit=pending,
                credit=hot_wallet_ref(locked.chain, locked.asset),
                amount=locked.net_amount,
                kind=TransferKind.WITHDRAWAL,
                **ref,
            )
        ]
        if locked.fee > 0:
            transfers.append(
                TransferSpec(
                    debit=pending,
                    credit=AccountRef.platform(AccountKind.FEE_REVENUE),
                    amount=locked.fee,
                    kind=TransferKind.WITHDRAWAL_FEE,
                    **ref,
                )
            )
        transfers += gas_transfers(locked.chain, info.fee, **ref)
        ledger_post(key=f"withdrawal:{locked.pk}:complete", transfers=transfers)
        locked.status = S.COMPLETED
        locked.confirmations = info.confirmations
        locked.completed_at = timezone.now()
        locked.updated_at = locked.completed_at
        locked.save(update_fields=["status", "confirmations", "completed_at", "updated_at"])
        outbox_emit(
            topic="wallets.withdrawal_completed",
            aggregate=f"user:{locked.user_id}",
            payload={"withdrawal_id": locked.pk, "tx_hash": locked.tx_hash, "amount": str(locked.amount)},
        )
    return locked


def _reverted(withdrawal_id: int, gas_fee: Decimal) -> Withdrawal:
    """Mined with receipt status 0: nothing left the hot wallet but gas. Refund the user, book the gas."""
    with transaction.atomic():
        locked = Withdrawal.objects.select_for_update().get(pk=withdrawal_id)
        if locked.status != S.BROADCAST:
            return locked
        gas = gas_transfers(locked.chain, gas_fee, ref_type="withdrawal", ref_id=locked.pk)
        if gas:
            ledger_post(key=f"withdrawal:{locked.pk}:reverted-gas", transfers=gas)
        withdrawal_refund(
            locked, status=S.FAILED, code="TX_REVERTED", reason=f"transaction {locked.tx_hash} reverted"
        )
        return locked


def withdrawals_process_due(*, limit: int = 100) -> dict[str, int]:
    """Beat (every few seconds): send APPROVED, re-broadcast stale SENDING, track BROADCAST, expire
    unconfirmed requests. Everything is found from database state, so a killed worker loses nothing."""
    counts = {"sent": 0, "resent": 0, "tracked": 0, "expired": 0}
    now = timezone.now()
    counts["expired"] = Withdrawal.objects.filter(
        status=S.AWAITING_CONFIRMATION, token_expires_at__lt=now
    ).update(
        status=S.EXPIRED,
        reason_code=ErrorCode.TOKEN_EXPIRED,
        reason="The confirmation link expired.",
        updated_at=now,
    )
    # a chain that does not answer pauses its own withdrawals for this pass, never another chain's
    down: set[str] = set()

    def each(rows: Any, step: Any, counter: str) -> None:
        for pk, chain in rows:
            if chain in down:
                continue
            try:
                if step(pk):
                    counts[counter] += 1
            except ChainUnavailable as exc:
                down.add(chain)
                logger.warning("%s withdrawals paused: chain unavailable: %s", chain, exc)

    def send(pk: int) -> bool:
        withdrawal_send(withdrawal_id=pk)
        return True

    def resend(pk: int) -> bool:
        # re-claim so two sweepers do not both re-broadcast (harmless anyway: same payload)
        if not Withdrawal.objects.filter(pk=pk, status=S.SENDING, claimed_at__lt=stale).update(
            claimed_at=now
        ):
            return False
        withdrawal_broadcast(withdrawal_id=pk)
        return True

    def track(pk: int) -> bool:
        withdrawal_track(withdrawal_id=pk)
        return True

    stale = now - timedelta(seconds=wallet_config().resend_after_seconds)
    each(
        Withdrawal.objects.filter(status=S.APPROVED).order_by("id").values_list("pk", "chain")[:limit],
        send,
        "sent",
    )
    each(
        Withdrawal.objects.filter(status=S.SENDING, claimed_at__lt=stale).values_list("pk", "chain")[:limit],
        resend,
        "resent",
    )
    each(
        Withdrawal.objects.filter(status=S.BROADCAST).order_by("id").values_list("pk", "chain")[:limit],
        track,
        "tracked",
    )
    return counts
