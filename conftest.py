"""Shared fixtures: personas (staff per role, traders, an outsider), verified console clients, the
sandbox process, and signed API clients. Tests run against real PostgreSQL and Redis."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from django.test import Client

    from core.accounts.roles import Role

# ETH and Arbitrum on real local nodes (anvil) for any suite: the evm / evm_arbitrum / evm_own fixtures;
# TRON and Solana on their stand-ins: the tron / sol fixtures
pytest_plugins = ["wallets.tests.evm_fixtures", "wallets.tests.tron_sol_fixtures"]

_counter = itertools.count(1)
PASSWORD = "correct-horse-battery-9"


# Module-level imports here must not touch Django: sandbox and pure-math suites run with -p no:django.


def current_totp(device: Any, *, offset_steps: int = 0) -> str:
    from django_otp.oath import totp

    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=offset_steps):06d}"


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    """Each test starts with an empty cache namespace (throttles, replay cache, config caches)."""
    from django.conf import settings

    if settings.configured:
        import redis

        # flush this run's Redis database but keep its claim (see xbit_admin/devstack.py), so a
        # parallel run never picks the same database
        client = redis.Redis.from_url(settings.REDIS_URL)
        owner = client.get("xbit:test-run-owner")
        client.flushdb()
        if owner is not None:
            client.set("xbit:test-run-owner", owner, ex=3 * 3600)
        # a Redis the feed filled long ago, as on a running platform: a quote a test left out is
        # missing, not being refilled (a test of the refill deletes this)
        from trading.marketdata import FILLED_KEY

        client.hset(FILLED_KEY, "tests", repr(time.time() - 3600))
        # and the process caches of configuration (a value a previous test loaded inside its rolled-back
        # transaction must not outlive it)
        from core.live_config import _invalidate_all

        _invalidate_all()
    yield


@pytest.fixture(autouse=True)
def _tpsl_trigger_stopped() -> Iterator[None]:
    """A feed run in a test starts the TP/SL trigger's thread (a mark hook); it ends with the test, not
    in a later one whose database it may not touch."""
    yield
    import sys

    triggers = sys.modules.get("trading.orders.triggers")
    if triggers is not None:
        triggers.TPSL_TRIGGER.stop(wait=5)


@pytest.fixture(autouse=True)
def _defaults_after_flush(request: pytest.FixtureRequest) -> None:
    """Transactional tests start from flushed tables: put back the rows migrations created."""
    marker = request.node.get_closest_marker("django_db")
    if marker is not None and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])):
        request.getfixturevalue("transactional_db")
        from core.defaults import ensure_all

        ensure_all()


@pytest.fixture
def make_staff(db: Any) -> Callable[..., Any]:
    from django.contrib.auth.models import Group
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from core.accounts.models import User

    def _make(role: Role | None, *, email: str | None = None, with_device: bool = True) -> Any:
        email = email or f"staff{next(_counter)}@xbit.test"
        user = User.objects.create_user(email, PASSWORD, is_staff=True)
        if role is not None:
            user.groups.add(Group.objects.get(name=str(role)))
        if with_device:
            TOTPDevice.objects.create(user=user, name="test", confirmed=True)
        return user

    return _make


@pytest.fixture
def make_trader(db: Any) -> Callable[..., Any]:
    from core.accounts.models import User

    def _make(*, email: str | None = None, **extra: Any) -> Any:
        return User.objects.create_user(email or f"trader{next(_counter)}@xbit.test", PASSWORD, **extra)

    return _make


def sign_in(client: Client, user: Any) -> Client:
    """The real two-step flow: password form, then the TOTP form."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    response = client.post("/login/", {"email": user.email, "password": PASSWORD})
    assert response.status_code == 302, response.content[:500]
    device = TOTPDevice.objects.get(user=user, confirmed=True)
    response = client.post("/otp/", {"token": current_totp(device)})
    assert response.status_code == 302 and "/otp/" not in response["Location"], "TOTP step failed"
    return client


@pytest.fixture
def console_as(make_staff: Callable[..., Any]) -> Callable[[Role], Client]:
    from django.test import Client

    def _as(role: Role) -> Client:
        client = Client()
        client.staff_user = make_staff(role)  # type: ignore[attr-defined]
        return sign_in(client, client.staff_user)  # type: ignore[attr-defined]

    return _as


@pytest.fixture
def timestamp_ms() -> Callable[[], str]:
    return lambda: str(int(time.time() * 1000))


@pytest.fixture(autouse=True)
def _ledger_invariants(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that used the database: Σ per asset = 0, each balance = Σ of its postings,
    each user balance = Σ of its balance_logs (``wallets.ledger.ledger_invariant_violations``)."""
    db_fixtures = {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback"}
    if not (db_fixtures & set(request.fixturenames) or request.node.get_closest_marker("django_db")):
        yield
        return
    # Set the database up before this fixture so that its teardown (the check) runs before rollback.
    request.getfixturevalue("_django_db_helper")
    yield
    from django.db import connection

    try:
        from wallets.ledger import ledger_invariant_violations
        from wallets.models import LedgerAccount
    except ImportError:
        return
    if (
        connection.needs_rollback
        or LedgerAccount._meta.db_table not in connection.introspection.table_names()
    ):
        return
    problems = ledger_invariant_violations()
    assert not problems, "ledger invariants broken:\n" + "\n".join(problems)
