"""Demo data for ``make run``: one staff user per role with a TOTP device.

Idempotent: re-running keeps the same users and devices (they live in ``.xbit/``'s database), so an
authenticator app set up once keeps working across ``make run``s. A device's secret is random and is
printed once, when the device is created; afterwards ``make totp EMAIL=…`` prints a current code from
the stored device (every start printed every staff secret, and the secrets were derived from
the repository's default SECRET_KEY, so anyone could compute them). Later issues add markets, funded
accounts and demo traders through the ``DEMO_SEEDERS`` hook list.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp.util import random_hex

from core.accounts.models import User
from core.accounts.roles import Role
from core.defaults import ensure_all

DEMO_PASSWORD = "xbit-demo-2026"
DEMO_STAFF = [
    ("admin@xbit.local", Role.SUPER_ADMIN),
    ("risk@xbit.local", Role.RISK_MANAGER),
    ("ops@xbit.local", Role.OPERATIONS),
    ("analyst@xbit.local", Role.DATA_ANALYST),
    ("support@xbit.local", Role.SUPPORT),
]
# Other apps append callables taking the command (for output) to seed their own demo data.
DEMO_SEEDERS: list[Callable[[BaseCommand], None]] = []


def ensure_staff(email: str, role: Role, password: str = DEMO_PASSWORD) -> tuple[User, TOTPDevice, bool]:
    """The demo staff member and their device; True when the device was created now (its random secret
    is then shown once)."""
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email, password, is_staff=True, display_name=str(role))
    user.groups.set([Group.objects.get(name=str(role))])
    device, created = TOTPDevice.objects.get_or_create(user=user, name="demo", defaults={"confirmed": True})
    if not created and device.key == _legacy_demo_key(email):
        # made by an earlier seed_demo from the public default SECRET_KEY: replace it, show it once
        device.key = random_hex(20)
        device.save(update_fields=["key"])
        created = True
    return user, device, created


def _legacy_demo_key(email: str) -> str:
    return hashlib.sha256(f"xbit-demo-totp:{email}:{settings.SECRET_KEY}".encode()).hexdigest()[:40]


class Command(BaseCommand):
    help = "Create demo staff (one per role, with TOTP) and whatever demo data other apps register."

    def handle(self, *args: Any, **options: Any) -> None:
        created = []
        with transaction.atomic():
            ensure_all()
            for email, role in DEMO_STAFF:
                _user, device, new = ensure_staff(email, role)
                if new:
                    code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits)
                    secret = base64.b32encode(device.bin_key).decode().rstrip("=")
                    created.append((str(role), email, secret, f"{code:06d}"))
        for seeder in DEMO_SEEDERS:
            started = time.monotonic()
            seeder(self)
            took = time.monotonic() - started
            if took >= 1:  # the start-up's waiting time, where it goes
                self.stdout.write(f"  seeded {seeder.__module__}.{seeder.__name__} in {took:.1f} s")
        port = 8000
        self.stdout.write("")
        self.stdout.write(
            f"  Console: http://127.0.0.1:{port}/      password for every demo user: {DEMO_PASSWORD}"
        )
        if created:
            self.stdout.write(
                "  New TOTP devices: add each secret to an authenticator now; it is not shown again."
            )
            self.stdout.write(
                f"  {'role':<14} {'email':<22} {'TOTP secret (add to an authenticator)':<34} code now"
            )
            for role, email, secret, code in created:
                self.stdout.write(f"  {role:<14} {email:<22} {secret:<34} {code}")
        self.stdout.write(
            "  Demo staff: "
            + ", ".join(email for email, _role in DEMO_STAFF)
            + f"; a current code: make totp EMAIL=…  [{time.strftime('%H:%M:%S')}]"
        )
        self.stdout.write("")
