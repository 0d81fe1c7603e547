"""Keys and addresses the platform controls (user deposit addresses, the hot and cold wallet key of
each chain) and the ledger accounts and gas bookings of the hot wallets."""

from __future__ import annotations

from decimal import ROUND_UP, Decimal
from typing import Any

from django.db import IntegrityError, transaction

from core.errors import ApplicationError, ErrorCode
from wallets.chains import get_signer, spec
from wallets.config import chain_config
from wallets.ledger import AccountRef, TransferSpec
from wallets.models import AccountKind, DepositAddress, TransferKind, WalletKey


def gas_amount(value: Decimal) -> Decimal:
    """Native gas is booked at the ledger's 6 decimals, rounded up (never under-state an expense)."""
    return value.quantize(Decimal("0.000001"), rounding=ROUND_UP)


def hot_wallet_ref(chain: str, asset: str) -> AccountRef:
    return AccountRef.platform(AccountKind.HOT_WALLET, sub=spec.custody_sub(chain, asset))


def gas_transfers(chain: str, fee: Decimal, *, ref_type: str, ref_id: object) -> list[TransferSpec]:
    if fee <= 0:
        return []
    native = spec.NATIVE[chain]
    return [
        TransferSpec(
            debit=AccountRef.platform(AccountKind.GAS_EXPENSE, sub=chain, asset=native),
            credit=AccountRef.platform(
                AccountKind.HOT_WALLET, sub=spec.custody_sub(chain, native), asset=native
            ),
            amount=gas_amount(fee),
            kind=TransferKind.GAS,
            ref_type=ref_type,
            ref_id=ref_id,
        )
    ]


def _platform_key(chain: str, purpose: str) -> WalletKey:
    key = WalletKey.objects.filter(chain=chain, purpose=purpose).first()
    if key is not None:
        return key
    try:
        with transaction.atomic():
            return get_signer().generate(chain=chain, purpose=purpose)
    except IntegrityError:  # a concurrent first use created it
        return WalletKey.objects.get(chain=chain, purpose=purpose)


def hot_wallet_key(chain: str) -> WalletKey:
    return _platform_key(chain, WalletKey.Purpose.HOT)


def cold_wallet_key(chain: str) -> WalletKey:
    return _platform_key(chain, WalletKey.Purpose.COLD)


def deposit_address_get_or_create(*, user: Any, chain: str) -> DepositAddress:
    """The user's permanent deposit address on ``chain`` (created on first request, never changed)."""
    config = chain_config(chain)
    if not (config.enabled and config.deposits_enabled):
        raise ApplicationError(ErrorCode.CHAIN_DISABLED, f"{config.chain} does not accept deposits.")
    existing = DepositAddress.objects.filter(user=user, chain=config.chain).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            key = get_signer().generate(chain=config.chain, purpose=WalletKey.Purpose.DEPOSIT, index=user.pk)
            return DepositAddress.objects.create(user=user, chain=config.chain, address=key.address, key=key)
    except IntegrityError:  # two concurrent first requests: the other one won
        return DepositAddress.objects.get(user=user, chain=config.chain)
