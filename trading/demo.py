"""Demo traders for ``make run``: funded accounts that ``manage.py simulate_traders`` drives through the
real HTTP API. Idempotent."""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

from django.contrib.auth.hashers import make_password
from django.db import transaction

from core.accounts.models import User
from routing.models import RoutingConfig
from routing.services import routing_config_update
from wallets.ledger import AccountRef, TransferSpec, ledger_post
from wallets.models import AccountKind, TransferKind

DEMO_TRADERS = 24
DEMO_TRADER_PASSWORD = "trader-demo-2026"


def demo_trader_emails() -> list[str]:
    return [f"trader{i:02d}@demo.xbit.local" for i in range(1, DEMO_TRADERS + 1)]


@functools.cache
def demo_password_hash() -> str:
    """One hash of the demo traders' shared password: hashing it (Argon2) once per account was seconds
    of a first ``make run``'s start-up."""
    return make_password(DEMO_TRADER_PASSWORD)


def demo_trader_create(email: str, **extra: Any) -> User:
    user = User.objects.create_user(email, None, **extra)
    user.password = demo_password_hash()
    user.save(update_fields=["password"])
    return user


def seed_trading_demo(command: Any) -> None:
    with transaction.atomic():
        if not RoutingConfig.objects.filter(asset="*", global_internalization_enabled=True).exists():
            routing_config_update(
                asset="*",
                changes={"global_internalization_enabled": True},
                acting_user=None,
                reason="demo: internalization on so the B-book sees flow",
            )
        for i, email in enumerate(demo_trader_emails(), start=1):
            user = User.objects.filter(email=email).first()
            if user is None:
                user = demo_trader_create(email, display_name=f"Demo trader {i}")
            amount = Decimal(25_000 + (i * 7_919) % 200_000)
            ledger_post(
                key=f"demo-deposit:{email}",
                transfers=[
                    TransferSpec(
                        AccountRef.platform(AccountKind.DEPOSIT_CLEARING),
                        AccountRef.user(user.pk, AccountKind.CASH),
                        amount,
                        TransferKind.DEPOSIT,
                        "demo",
                        user.pk,
                    )
                ],
            )
    command.stdout.write(
        f"  Demo traders: {DEMO_TRADERS} funded accounts ({demo_trader_emails()[0]} …), password {DEMO_TRADER_PASSWORD}"
    )
