"""The checks of a user's withdrawal input (amount, address, two-factor code) and the user's
withdrawal address book (whitelist)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.accounts.models import SecurityEvent, User
from core.accounts.security_events import security_event_record
from core.errors import ApplicationError, ErrorCode
from core.money import MONEY_INPUT, USDC_DECIMALS, DecimalInputError, decimal_from_input
from core.text import ascii_int
from wallets.chains.addresses import InvalidAddress, normalize_address
from wallets.config import chain_config, wallet_config
from wallets.models import UserWalletSettings, WithdrawalAddress

# --- input checks --------------------------------------------------------------------------------


def clean_amount(value: object) -> Decimal:
    """A positive amount with at most 6 decimals, in plain decimal notation."""
    try:
        return decimal_from_input(value, MONEY_INPUT)
    except DecimalInputError as exc:
        message = {
            "negative": "The amount must be positive.",
            "zero": "The amount must be positive.",
            "too_many_decimals": f"At most {USDC_DECIMALS} decimal places.",
        }.get(exc.reason, f"The amount {exc.message}.")
        raise ApplicationError(ErrorCode.INVALID_AMOUNT, message, {"reason": exc.reason}) from None


def clean_address(chain: str, address: object) -> str:
    try:
        return normalize_address(chain, address)
    except InvalidAddress as exc:
        raise ApplicationError(ErrorCode.INVALID_ADDRESS, f"Invalid {chain} address: {exc}.") from None


def verify_totp(*, user: User, code: object) -> None:
    devices = list(TOTPDevice.objects.filter(user=user, confirmed=True))
    if not devices:
        raise ApplicationError(ErrorCode.OTP_REQUIRED, "Set up two-factor authentication to withdraw.")
    token = str(code or "").strip()
    if not (
        ascii_int(token, max_digits=8) is not None and any(device.verify_token(token) for device in devices)
    ):
        raise ApplicationError(ErrorCode.INVALID_OTP, "The two-factor code is wrong or was already used.")


# --- address book ----------------------------------------------------------------------------------


@transaction.atomic
def withdrawal_address_add(
    *, user: User, chain: str, address: str, label: str = "", request: Any = None
) -> WithdrawalAddress:
    config = chain_config(chain)
    normalized = clean_address(config.chain, address)
    now = timezone.now()
    entry, created = WithdrawalAddress.objects.get_or_create(
        user=user,
        chain=config.chain,
        address=normalized,
        defaults={
            "label": label[:80],
            "usable_at": now + timedelta(hours=wallet_config().whitelist_delay_hours),
        },
    )
    if created:
        security_event_record(
            user=user,
            kind=SecurityEvent.Kind.WITHDRAWAL_ADDRESS_CHANGED,
            request=request,
            action="added",
            chain=config.chain,
            address=normalized,
        )
    elif label and entry.label != label:
        entry.label = label[:80]
        entry.save(update_fields=["label"])
    return entry


@transaction.atomic
def withdrawal_address_remove(*, user: User, address_id: int, request: Any = None) -> None:
    entry = WithdrawalAddress.objects.filter(user=user, pk=address_id).first()
    if entry is None:
        raise ApplicationError(ErrorCode.NOT_FOUND, "No such address.")
    entry.delete()
    security_event_record(
        user=user,
        kind=SecurityEvent.Kind.WITHDRAWAL_ADDRESS_CHANGED,
        request=request,
        action="removed",
        chain=entry.chain,
        address=entry.address,
    )


@transaction.atomic
def withdrawal_whitelist_set(
    *, user: User, enabled: bool, totp_code: str, request: Any = None
) -> UserWalletSettings:
    verify_totp(user=user, code=totp_code)
    settings_row, _ = UserWalletSettings.objects.get_or_create(user=user)
    settings_row.whitelist_only = enabled
    settings_row.updated_at = timezone.now()
    settings_row.save(update_fields=["whitelist_only", "updated_at"])
    security_event_record(
        user=user, kind=SecurityEvent.Kind.WITHDRAWAL_ADDRESS_CHANGED, request=request, whitelist_only=enabled
    )
    return settings_row
