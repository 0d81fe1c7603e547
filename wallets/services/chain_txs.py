"""Outgoing transactions, whatever the chain family: ``transfer_sign`` returns the broadcast payload of
a transfer named by ``ref`` (``wd-<id>``, ``agg-<id>``, ``agg-<id>-gas``, ``cold-<id>``), and
``transfer_info`` follows it on chain.

Expiring chains (TRON, Solana): ``wallets.services.expiring_txs``.

Account-nonce chains (EVM) — crash safety and nonces:

* ``transfer_sign`` is idempotent by ``ref``: a ref signed before returns its stored transaction (same
  nonce, same bytes). Otherwise, inside one database transaction, the sender's ``ChainNonce`` row is
  locked, the nonce is max(stored next nonce, the node's pending count), the transaction is built
  (``eth_estimateGas``, ``eth_feeHistory``), signed, stored as a ``ChainTx`` (raw bytes included) and
  the counter advanced. Callers claim their own row in the same transaction, so a lost claim rolls
  the nonce back, and a crash after the commit leaves signed bytes that the retry re-broadcasts —
  never a second transaction with a new nonce.
* ``transfer_info`` looks at every attempt of the ref (a stuck transaction's replacements share its
  nonce) and reports the one that was mined; ``chain_txs_replace_stuck`` re-signs a transaction
  unmined after ``ChainConfig.replace_after_seconds`` with the same nonce and fees raised by 12.5 %
  (capped by ``ChainConfig.max_fee_gwei``), and points the paying row at the new attempt.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from wallets.chains import ChainRejected, ChainUnavailable, get_adapter, get_signer, nonce_adapter
from wallets.chains.base import NonceChainAdapter, SignedTx, TxInfo, UnsignedTx
from wallets.config import chain_config
from wallets.models import Aggregation, ChainNonce, ChainTx, ColdTransfer, WalletKey, Withdrawal
from wallets.services.expiring_txs import expiring_adapter, expiring_broadcast, expiring_sign

logger = logging.getLogger(__name__)
GWEI = Decimal(10**9)
OPEN = [ChainTx.Status.SIGNED, ChainTx.Status.SENT]


def fee_cap_wei(chain: str) -> int:
    return int(chain_config(chain).max_fee_gwei * GWEI)


def payload_of(tx: ChainTx) -> dict[str, Any]:
    return {
        "chain": tx.chain,
        "asset": tx.asset,
        "from": tx.sender,
        "to": tx.to_address,
        "amount": str(tx.amount),
        "nonce": tx.ref,
        "account_nonce": tx.nonce,
        "attempt": tx.attempt,
        "raw": tx.raw,
        "tx_hash": tx.tx_hash,
    }


def _store(
    ref: str, attempt: int, unsigned: UnsignedTx, signed: SignedTx, *, asset: str, to: str, amount: Decimal
) -> ChainTx:
    fields = unsigned.fields
    return ChainTx.objects.create(
        chain=unsigned.chain,
        ref=ref,
        attempt=attempt,
        sender=unsigned.sender,
        nonce=unsigned.nonce,
        asset=asset,
        to_address=to,
        amount=amount,
        raw=signed.raw,
        tx_hash=signed.tx_hash,
        gas_limit=int(fields["gas"]),
        max_fee_per_gas=Decimal(int(fields["maxFeePerGas"])),
        max_priority_fee_per_gas=Decimal(int(fields["maxPriorityFeePerGas"])),
    )


def transfer_sign(*, key: WalletKey, asset: str, to: str, amount: Decimal, ref: str) -> dict[str, Any]:
    """The broadcast payload of ``amount`` ``asset`` from ``key`` to ``to``, named ``ref`` (see above).
    EVM: call inside the transaction that claims the paying row. Raises ``ChainRejected`` (e.g.
    ``insufficient_balance``, ``fee_cap``) or ``ChainUnavailable`` before anything is stored."""
    expiring = expiring_adapter(key.chain)
    if expiring is not None:  # TRON, Solana: wallets.services.expiring_txs
        return expiring_sign(expiring, key=key, asset=asset, to=to, amount=amount, ref=ref)
    adapter = nonce_adapter(key.chain)
    if adapter is None:
        raise RuntimeError(f"the adapter of {key.chain} neither takes account nonces nor expires")
    existing = ChainTx.objects.filter(chain=key.chain, ref=ref).order_by("-attempt").first()
    if existing is not None:
        return payload_of(existing)
    with transaction.atomic():
        ChainNonce.objects.get_or_create(chain=key.chain, address=key.address)
        counter = ChainNonce.objects.select_for_update().get(chain=key.chain, address=key.address)
        nonce = max(counter.next_nonce, adapter.next_nonce(key.chain, key.address))
        unsigned = adapter.prepare_transfer(
            key.chain,
            sender=key.address,
            asset=asset,
            to=to,
            amount=amount,
            nonce=nonce,
            max_fee_cap=fee_cap_wei(key.chain),
        )
        signed = get_signer().sign_transaction(key=key, tx=unsigned)
        tx = _store(ref, 0, unsigned, signed, asset=asset, to=to, amount=amount)
        counter.next_nonce = nonce + 1
        counter.save(update_fields=["next_nonce"])
    return payload_of(tx)


def transfer_broadcast(chain: str, payload: dict[str, Any]) -> None:
    """Broadcast a stored payload (the same bytes every time); EVM: note the broadcast time. TRON and
    Solana: an expired payload is re-signed and its row re-pointed (``expiring_txs``)."""
    expiring = expiring_adapter(chain)
    if expiring is not None:
        expiring_broadcast(expiring, chain, payload)
        return
    get_adapter().broadcast(chain, payload)
    if "raw" in payload:
        now = timezone.now()
        ChainTx.objects.filter(chain=chain, tx_hash=payload["tx_hash"], status=ChainTx.Status.SIGNED).update(
            status=ChainTx.Status.SENT, broadcast_at=now, updated_at=now
        )
        ChainTx.objects.filter(chain=chain, tx_hash=payload["tx_hash"], broadcast_at__isnull=True).update(
            broadcast_at=now
        )


def transfer_info(chain: str, tx_hash: str) -> TxInfo:
    """The chain's view of a transfer. EVM: of whichever attempt of its ref was mined (its
    ``tx_hash`` then differs from the one asked about when a replacement won)."""
    adapter = get_adapter()
    row = ChainTx.objects.filter(chain=chain, tx_hash=tx_hash).first() if tx_hash else None
    if row is None:
        return adapter.tx(chain, tx_hash)
    pending: TxInfo | None = None
    for attempt in ChainTx.objects.filter(chain=chain, ref=row.ref).order_by("-attempt"):
        info = adapter.tx(chain, attempt.tx_hash)
        if info.status in ("confirmed", "failed"):
            status = ChainTx.Status.MINED if info.status == "confirmed" else ChainTx.Status.FAILED
            ChainTx.objects.filter(pk=attempt.pk).update(
                status=status, block=info.block, updated_at=timezone.now()
            )
            ChainTx.objects.filter(chain=chain, ref=row.ref).exclude(pk=attempt.pk).update(
                status=ChainTx.Status.REPLACED, updated_at=timezone.now()
            )
            return info
        if info.status == "pending" and pending is None:
            pending = info
    return pending or adapter.tx(chain, tx_hash)


def _follow(chain: str, old_hash: str, payload: dict[str, Any]) -> None:
    """Point the row paying with ``old_hash`` at its replacement."""
    new_hash = payload["tx_hash"]
    Withdrawal.objects.filter(chain=chain, tx_hash=old_hash).update(tx_hash=new_hash, payload=payload)
    Aggregation.objects.filter(chain=chain, tx_hash=old_hash).update(tx_hash=new_hash, payload=payload)
    Aggregation.objects.filter(chain=chain, gas_tx_hash=old_hash).update(
        gas_tx_hash=new_hash, gas_payload=payload
    )
    ColdTransfer.objects.filter(chain=chain, tx_hash=old_hash).update(tx_hash=new_hash, payload=payload)


def _replace(adapter: NonceChainAdapter, tx: ChainTx) -> ChainTx | None:
    key = WalletKey.objects.get(chain=tx.chain, address=tx.sender)
    with transaction.atomic():
        locked = ChainTx.objects.select_for_update().get(pk=tx.pk)
        if (
            locked.status not in OPEN
            or ChainTx.objects.filter(chain=tx.chain, ref=tx.ref, attempt__gt=tx.attempt).exists()
        ):
            return None
        unsigned = adapter.prepare_transfer(
            tx.chain,
            sender=tx.sender,
            asset=tx.asset,
            to=tx.to_address,
            amount=tx.amount,
            nonce=tx.nonce,
            min_fees=(int(tx.max_fee_per_gas), int(tx.max_priority_fee_per_gas)),
            max_fee_cap=fee_cap_wei(tx.chain),
        )
        signed = get_signer().sign_transaction(key=key, tx=unsigned)
        new = _store(
            tx.ref, tx.attempt + 1, unsigned, signed, asset=tx.asset, to=tx.to_address, amount=tx.amount
        )
        locked.status = ChainTx.Status.REPLACED
        locked.updated_at = timezone.now()
        locked.save(update_fields=["status", "updated_at"])
        _follow(tx.chain, tx.tx_hash, payload_of(new))
    transfer_broadcast(tx.chain, payload_of(new))
    logger.warning("%s %s: nonce %s stuck, replaced by %s", tx.chain, tx.ref, tx.nonce, new.tx_hash)
    return new


def chain_txs_replace_stuck(*, chain: str) -> list[ChainTx]:
    """Beat: replace each broadcast transaction still unmined after the configured wait (same nonce,
    higher fee). One mined meanwhile is left alone; a fee above the cap waits and is logged."""
    adapter = nonce_adapter(chain)
    if adapter is None:
        return []
    wait = timedelta(seconds=chain_config(chain).replace_after_seconds)
    cutoff = timezone.now() - wait
    # broadcast and unmined, or signed and never accepted by the node (its fee too low at the time)
    due = ChainTx.objects.filter(chain=chain).filter(
        Q(status=ChainTx.Status.SENT, broadcast_at__lt=cutoff)
        | Q(status=ChainTx.Status.SIGNED, created_at__lt=cutoff)
    )
    replaced = []
    for tx in due.order_by("sender", "nonce"):
        info = transfer_info(chain, tx.tx_hash)
        if info.status in ("confirmed", "failed"):
            continue
        if adapter.next_nonce(chain, tx.sender) > tx.nonce and info.status != "pending":
            continue  # the nonce is taken (mined by another attempt; transfer_info will see it)
        try:
            new = _replace(adapter, tx)
        except ChainRejected as exc:
            logger.warning("%s %s: replacement not sent: %s", chain, tx.ref, exc.code)
            continue
        except ChainUnavailable as exc:
            logger.warning("%s %s: replacement paused: %s", chain, tx.ref, exc)
            break
        if new is not None:
            replaced.append(new)
    return replaced
