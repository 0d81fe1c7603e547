"""Aggregation: sweep credited deposits from user deposit addresses into the chain's hot wallet.

A sweep is a small state machine driven by beat (``aggregation_advance``): PENDING → (gas top-up from
the hot wallet if the address lacks gas: GAS_SENT) → SENT → CONFIRMED. Each step claims the row with
a conditional UPDATE and broadcasts a deterministic payload (nonces ``agg-<id>-gas`` / ``agg-<id>``),
so re-running a step after a crash re-sends the identical transaction and nothing is paid twice.
On confirmation: ledger hot_wallet <- deposit_clearing, and the gas as platform expense.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from core.audit.services import audit_record
from wallets.chains import ChainRejected, ChainUnavailable, get_adapter, spec
from wallets.config import chain_config, chain_state, wallet_config
from wallets.ledger import AccountRef, TransferSpec, ledger_post
from wallets.models import (
    AccountKind,
    Aggregation,
    ChainState,
    Deposit,
    DepositAddress,
    TransferKind,
    WalletKey,
)
from wallets.services.chain_txs import transfer_broadcast, transfer_info, transfer_sign
from wallets.services.keys import gas_amount, gas_transfers, hot_wallet_key, hot_wallet_ref
from wallets.services.permissions import require_perm

logger = logging.getLogger(__name__)
OPEN = [Aggregation.Status.PENDING, Aggregation.Status.GAS_SENT, Aggregation.Status.SENT]


def aggregation_plan(*, chain: str, trigger: str) -> list[Aggregation]:
    """Create sweeps for addresses holding credited, unswept deposits. ``threshold`` only takes
    addresses above the chain's threshold; ``schedule``/``emergency``/``manual`` take all of them."""
    config = chain_config(chain)
    groups = (
        Deposit.objects.filter(chain=config.chain, status=Deposit.Status.CREDITED, aggregation__isnull=True)
        .values("address", "asset")
        .annotate(total=Sum("amount"))
    )
    hot = hot_wallet_key(config.chain)
    created = []
    for group in groups:
        if trigger == Aggregation.Trigger.THRESHOLD and group["total"] <= config.aggregation_threshold:
            continue
        try:
            with transaction.atomic():
                sweep = Aggregation.objects.create(
                    chain=config.chain,
                    asset=group["asset"],
                    from_address=group["address"],
                    to_address=hot.address,
                    amount=group["total"],
                    trigger=trigger,
                )
                claimed = Deposit.objects.filter(
                    chain=config.chain,
                    address=group["address"],
                    asset=group["asset"],
                    status=Deposit.Status.CREDITED,
                    aggregation__isnull=True,
                ).update(aggregation=sweep)
                total = Deposit.objects.filter(aggregation=sweep).aggregate(t=Sum("amount"))["t"]
                if not claimed or total is None:
                    raise IntegrityError("deposits taken by a concurrent sweep")
                if total != sweep.amount:
                    sweep.amount = total
                    sweep.save(update_fields=["amount"])
            created.append(sweep)
        except IntegrityError:
            continue  # an open sweep for this address exists; the next run picks the rest up
    return created


def aggregation_trigger(*, chain: str, acting_user: Any, reason: str) -> list[Aggregation]:
    """Operations sweep a chain now (audited)."""
    require_perm(acting_user, "trigger_aggregation")
    sweeps = aggregation_plan(chain=chain, trigger=Aggregation.Trigger.MANUAL)
    with transaction.atomic():
        audit_record(
            action="wallets.aggregation.trigger",
            actor=acting_user,
            object_type="chain",
            object_id=chain,
            after={"aggregations": [s.pk for s in sweeps]},
            reason=reason,
        )
    return sweeps


def _broadcast(chain: str, payload: dict[str, Any]) -> str | None:
    try:
        transfer_broadcast(chain, payload)
    except ChainUnavailable as exc:
        return f"unavailable: {exc}"[:300]
    except ChainRejected as exc:
        return f"{exc.code}: {exc.message}"[:300]
    return None


def aggregation_advance(*, aggregation_id: int) -> Aggregation | None:
    sweep = Aggregation.objects.filter(pk=aggregation_id).first()
    if sweep is None or sweep.status not in OPEN:
        return sweep
    adapter = get_adapter()
    chain = sweep.chain
    native = spec.NATIVE[chain]
    now = timezone.now()

    if sweep.status == Aggregation.Status.PENDING:
        fee = gas_amount(adapter.token_transfer_fee(chain))
        if adapter.balance(chain, sweep.from_address, native) < fee:
            try:
                with transaction.atomic():  # sign (EVM: take the hot wallet's next nonce) and claim
                    payload = transfer_sign(
                        key=hot_wallet_key(chain),
                        asset=native,
                        to=sweep.from_address,
                        amount=fee,
                        ref=f"agg-{sweep.pk}-gas",
                    )
                    if not Aggregation.objects.filter(pk=sweep.pk, status=Aggregation.Status.PENDING).update(
                        status=Aggregation.Status.GAS_SENT,
                        gas_payload=payload,
                        gas_tx_hash=payload["tx_hash"],
                        updated_at=now,
                    ):
                        raise IntegrityError("claimed by another worker")
            except IntegrityError:
                return sweep
            except ChainRejected as exc:
                Aggregation.objects.filter(pk=sweep.pk).update(
                    error=f"gas top-up: {exc}"[:300], updated_at=now
                )
                return sweep
            sweep.refresh_from_db()
        else:
            _claim_sweep(sweep, from_status=Aggregation.Status.PENDING)
            sweep.refresh_from_db()

    if sweep.status == Aggregation.Status.GAS_SENT:
        info = transfer_info(chain, sweep.gas_tx_hash)
        if info.status in ("dropped", "unknown"):
            error = _broadcast(chain, sweep.gas_payload or {})
            if error:
                Aggregation.objects.filter(pk=sweep.pk).update(error=error, updated_at=now)
            return sweep
        if info.status != "confirmed":
            return sweep
        _claim_sweep(sweep, from_status=Aggregation.Status.GAS_SENT)
        sweep.refresh_from_db()

    if sweep.status == Aggregation.Status.SENT:
        info = transfer_info(chain, sweep.tx_hash)
        if info.status in ("dropped", "unknown"):
            error = _broadcast(chain, sweep.payload or {})
            Aggregation.objects.filter(pk=sweep.pk).update(error=error or "", updated_at=now)
            return sweep
        if info.status == "failed" and info.confirmations >= chain_config(chain).confirmations:
            _aggregation_fail(sweep.pk, f"sweep transaction {info.tx_hash} reverted")
            sweep.refresh_from_db()
            return sweep
        if info.status == "confirmed" and info.confirmations >= chain_config(chain).confirmations:
            gas_fee = info.fee
            if sweep.gas_tx_hash:
                gas_fee += transfer_info(chain, sweep.gas_tx_hash).fee
            _aggregation_complete(sweep.pk, gas_fee)
            sweep.refresh_from_db()
    return sweep


def _claim_sweep(sweep: Aggregation, *, from_status: str) -> None:
    key = WalletKey.objects.get(chain=sweep.chain, address=sweep.from_address)
    try:
        with transaction.atomic():  # sign (EVM: the deposit address's next nonce) and claim together
            payload = transfer_sign(
                key=key, asset=sweep.asset, to=sweep.to_address, amount=sweep.amount, ref=f"agg-{sweep.pk}"
            )
            if not Aggregation.objects.filter(pk=sweep.pk, status=from_status).update(
                status=Aggregation.Status.SENT,
                payload=payload,
                tx_hash=payload["tx_hash"],
                updated_at=timezone.now(),
            ):
                raise IntegrityError("claimed by another worker")
    except IntegrityError:
        return
    except ChainRejected as exc:
        Aggregation.objects.filter(pk=sweep.pk).update(error=f"sweep: {exc}"[:300], updated_at=timezone.now())
        return
    error = _broadcast(sweep.chain, payload)
    if error:
        Aggregation.objects.filter(pk=sweep.pk).update(error=error)


def _aggregation_fail(aggregation_id: int, reason: str) -> None:
    """The sweep reverted: the tokens stayed on the deposit address; its deposits go back to the pool."""
    with transaction.atomic():
        sweep = Aggregation.objects.select_for_update().get(pk=aggregation_id)
        if sweep.status != Aggregation.Status.SENT:
            return
        Deposit.objects.filter(aggregation=sweep).update(aggregation=None)
        sweep.status = Aggregation.Status.FAILED
        sweep.error = reason[:300]
        sweep.completed_at = timezone.now()
        sweep.save(update_fields=["status", "error", "completed_at"])


def _aggregation_complete(aggregation_id: int, gas_fee: Decimal) -> None:
    with transaction.atomic():
        sweep = Aggregation.objects.select_for_update().get(pk=aggregation_id)
        if sweep.status != Aggregation.Status.SENT:
            return
        gas = gas_transfers(sweep.chain, gas_fee, ref_type="aggregation", ref_id=sweep.pk)
        ledger_post(
            key=f"aggregation:{sweep.pk}",
            transfers=[
                TransferSpec(
                    debit=hot_wallet_ref(sweep.chain, sweep.asset),
                    credit=AccountRef.platform(
                        AccountKind.DEPOSIT_CLEARING, sub=spec.custody_sub(sweep.chain, sweep.asset)
                    ),
                    amount=sweep.amount,
                    kind=TransferKind.AGGREGATION,
                    ref_type="aggregation",
                    ref_id=sweep.pk,
                ),
                *gas,
            ],
        )
        sweep.status = Aggregation.Status.CONFIRMED
        sweep.gas_used = gas[0].amount if gas else Decimal(0)
        sweep.gas_asset = spec.NATIVE[sweep.chain]
        sweep.completed_at = timezone.now()
        sweep.error = ""
        sweep.save(update_fields=["status", "gas_used", "gas_asset", "completed_at", "error"])


def aggregation_tick(*, chain: str) -> None:
    """Beat: threshold sweeps, the scheduled sweep every N hours, and progress on open sweeps."""
    config = chain_config(chain)
    if not (config.enabled and config.deposits_enabled):
        return
    aggregation_plan(chain=config.chain, trigger=Aggregation.Trigger.THRESHOLD)
    state = chain_state(config.chain)
    every = timedelta(hours=wallet_config().aggregation_interval_hours)
    now = timezone.now()
    if state.last_scheduled_sweep_at is None or now - state.last_scheduled_sweep_at >= every:
        claimed = ChainState.objects.filter(
            chain=config.chain, last_scheduled_sweep_at=state.last_scheduled_sweep_at
        ).update(last_scheduled_sweep_at=now)
        if claimed:
            aggregation_plan(chain=config.chain, trigger=Aggregation.Trigger.SCHEDULE)
    for sweep_id in Aggregation.objects.filter(chain=config.chain, status__in=OPEN).values_list(
        "pk", flat=True
    ):
        try:
            aggregation_advance(aggregation_id=sweep_id)
        except ChainUnavailable as exc:
            logger.warning("aggregation %s: chain unavailable: %s", sweep_id, exc)
            return


def deposit_addresses_of(chain: str) -> list[str]:
    return list(DepositAddress.objects.filter(chain=chain).values_list("address", flat=True))
