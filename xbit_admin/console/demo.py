"""Demo KYC levels: the demo traders had the lowest KYC level, so the two-person withdrawal
path above 100,000 (risk review + operations approval) could not be exercised, and support's KYC queue
was empty. This seeder gives the demo traders a spread of levels — unverified, waiting for review, and
verified (every trader funded above 100,000) — creating the accounts if the trading seeder has not yet.
Idempotent: only an account still at NONE is raised to its demo level."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from core.accounts.models import User
from trading.demo import demo_trader_create, demo_trader_emails

# trader number → KYC level; the verified ones are funded 104,190 … 215,056 USDC by the trading seeder
NONE, PENDING, VERIFIED = User.KycStatus.NONE, User.KycStatus.PENDING, User.KycStatus.VERIFIED


def demo_kyc_level(number: int) -> str:
    if number <= 4:
        return NONE
    if number <= 9:
        return PENDING
    return VERIFIED


def seed_demo_kyc(command: Any) -> None:
    counts: dict[str, int] = {}
    with transaction.atomic():
        for number, email in enumerate(demo_trader_emails(), start=1):
            level = demo_kyc_level(number)
            user = User.objects.filter(email=email).first()
            if user is None:
                user = demo_trader_create(email, display_name=f"Demo trader {number}", kyc_status=level)
            elif user.kyc_status == NONE and level != NONE:
                User.objects.filter(pk=user.pk).update(kyc_status=level)
            counts[level] = counts.get(level, 0) + 1
    command.stdout.write(
        "  Demo KYC: "
        + ", ".join(f"{n} {status.lower()}" for status, n in counts.items())
        + " (verified traders can withdraw above 100,000: risk review + operations approval)"
    )
