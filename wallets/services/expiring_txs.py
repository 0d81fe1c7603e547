"""Outgoing transactions on chains whose transactions expire instead of taking an account nonce: TRON
(``expiration`` and the reference block) and Solana (the recent blockhash, valid ~150 blocks).

* ``expiring_sign``: the adapter builds the transfer (reference block / blockhash from the chain), the
  signer signs it, and the payload — the signed bytes and their id — goes back to the caller, which
  stores it with its claim before anything is broadcast. A retry after a crash re-broadcasts exactly
  those bytes: the chain knows the id, so it is never a second transfer.
* ``expiring_broadcast``: broadcast the stored bytes; when the adapter answers ``expired`` — the
  transaction is in no block and the chain's clock (TRON: head block time; Solana: finalized block
  height) is past its expiry, so it can never land — a new transaction is signed and the row that pays
  (withdrawal, sweep, cold transfer) is moved from the old id to the new one in one conditional
  update. Only the worker whose update wins broadcasts; the others leave the new payload to it. The
  old transaction being dead, the re-signed one cannot be a double spend.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any, Protocol

from django.db import transaction

from wallets.chains import ChainRejected, ChainUnavailable, adapter_for, get_signer
from wallets.chains.base import BroadcastResult, ChainAdapter, UnsignedTx
from wallets.config import chain_config
from wallets.models import Aggregation, ColdTransfer, WalletKey, Withdrawal

logger = logging.getLogger(__name__)


class ExpiringChainAdapter(ChainAdapter, Protocol):
    expiring: bool

    def prepare_transfer(
        self, chain: str, *, sender: str, asset: str, to: str, amount: Decimal, **extra: Any
    ) -> UnsignedTx: ...


def expiring_adapter(chain: str) -> ExpiringChainAdapter | None:
    """The chain's adapter when its transactions expire (TRON, Solana), else None."""
    adapter = adapter_for(chain)
    return adapter if getattr(adapter, "expiring", False) else None  # type: ignore[return-value]


def expiring_sign(
    adapter: ExpiringChainAdapter,
    *,
    key: WalletKey,
    asset: str,
    to: str,
    amount: Decimal,
    ref: str,
    attempt: int = 0,
) -> dict[str, Any]:
    """The broadcast payload of ``amount`` ``asset`` from ``key`` to ``to`` (named ``ref``)."""
    config = chain_config(key.chain)
    unsigned = adapter.prepare_transfer(
        key.chain,
        sender=key.address,
        asset=asset,
        to=to,
        amount=amount,
        fee_limit_trx=config.fee_limit_native,
        expiration_seconds=config.tx_expiration_seconds,
    )
    signed = get_signer().sign_transaction(key=key, tx=unsigned)
    payload: dict[str, Any] = {
        "chain": key.chain,
        "asset": asset,
        "from": key.address,
        "to": to,
        "amount": str(amount),
        "nonce": ref,
        "attempt": attempt,
        "raw": signed.raw,
        "tx_hash": signed.tx_hash,
    }
    if "last_valid_block_height" in unsigned.fields:
        payload["last_valid_block_height"] = unsigned.fields["last_valid_block_height"]
    return payload


def _repoint(chain: str, old_hash: str, payload: dict[str, Any]) -> int:
    """Move the row paying with ``old_hash`` to ``payload``; the number of rows moved (0: lost the race)."""
    new_hash = payload["tx_hash"]
    moved = Withdrawal.objects.filter(chain=chain, tx_hash=old_hash).update(tx_hash=new_hash, payload=payload)
    moved += Aggregation.objects.filter(chain=chain, tx_hash=old_hash).update(
        tx_hash=new_hash, payload=payload
    )
    moved += Aggregation.objects.filter(chain=chain, gas_tx_hash=old_hash).update(
        gas_tx_hash=new_hash, gas_payload=payload
    )
    moved += ColdTransfer.objects.filter(chain=chain, tx_hash=old_hash).update(
        tx_hash=new_hash, payload=payload
    )
    return moved


def expiring_broadcast(adapter: ExpiringChainAdapter, chain: str, payload: dict[str, Any]) -> BroadcastResult:
    """Broadcast ``payload``; an expired one is re-signed, re-pointed and broadcast (see above)."""
    try:
        return adapter.broadcast(chain, payload)
    except ChainRejected as exc:
        if exc.code != "expired":
            raise
    key = WalletKey.objects.get(chain=chain, address=payload["from"])
    fresh = expiring_sign(
        adapter,
        key=key,
        asset=payload["asset"],
        to=payload["to"],
        amount=Decimal(payload["amount"]),
        ref=payload["nonce"],
        attempt=int(payload.get("attempt", 0)) + 1,
    )
    with transaction.atomic():
        moved = _repoint(chain, payload["tx_hash"], fresh)
    if not moved:
        # another worker re-signed first and broadcasts its transaction; ours was never sent
        raise ChainUnavailable("expired transaction re-signed by another worker")
    logger.warning(
        "%s %s: transaction %s expired unmined; re-signed as %s",
        chain,
        payload["nonce"],
        payload["tx_hash"],
        fresh["tx_hash"],
    )
    return adapter.broadcast(chain, fresh)
