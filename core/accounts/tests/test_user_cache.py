"""Bearer-token requests use this process's copy of the user's row while its version token in Redis is
unchanged: no row read per request, and every change of the row — ``save()``, ``update()``, a flush
of Redis, a copy grown old — is seen by the very next request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.accounts import user_cache
from core.accounts.models import User
from core.accounts.tests.conftest import Api

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_copies() -> Iterator[None]:
    user_cache.clear()
    yield
    user_cache.clear()


def _user_reads(client: Api) -> tuple[int, int]:
    """(status, statements reading the user table) of one authenticated request."""
    with CaptureQueriesContext(connection) as ctx:
        status = client.get("me").status_code
    table = User._meta.db_table
    return status, sum(
        1 for q in ctx.captured_queries if f"FROM {table}" in q["sql"] or f'FROM "{table}"' in q["sql"]
    )


def _signed_in_with_a_copy(email: str) -> Api:
    """A signed-in client whose user's row this process has read once and now keeps."""
    client = Api()
    client.login(email)
    assert _user_reads(client) == (200, 1) and _user_reads(client) == (200, 0)
    return client


def test_the_second_request_reads_no_user_row_and_each_gets_its_own_instance(make_trader: Any) -> None:
    trader = make_trader()
    client = Api()
    client.login(trader.email)
    assert _user_reads(client) == (200, 1)  # read once, under the token made for it
    assert _user_reads(client) == (200, 0)
    token = user_cache.version_token(trader.pk)
    a = user_cache.cached_active_user(trader.pk, token)
    b = user_cache.cached_active_user(trader.pk, token)
    assert a is not None and b is not None and a is not b and a.pk == b.pk and a.email == b.email


def test_an_update_is_seen_by_the_very_next_request(make_trader: Any) -> None:
    trader = make_trader()
    client = _signed_in_with_a_copy(trader.email)
    with TestCase.captureOnCommitCallbacks(execute=True):
        User.objects.filter(pk=trader.pk).update(is_active=False)
    assert client.get("me").json()["code"] == "INVALID_TOKEN"
    with TestCase.captureOnCommitCallbacks(execute=True):
        User.objects.filter(pk=trader.pk).update(is_active=True, trading_blocked=True)
    assert _user_reads(client) == (200, 1)
    assert User.objects.get(pk=trader.pk).trading_blocked


def test_a_save_is_seen_by_the_very_next_request(make_trader: Any) -> None:
    trader = make_trader()
    client = _signed_in_with_a_copy(trader.email)
    with TestCase.captureOnCommitCallbacks(execute=True):
        trader.tokens_valid_after = timezone.now() + timedelta(seconds=5)  # "log out everywhere"
        trader.save(update_fields=["tokens_valid_after"])
    assert client.get("me").json()["code"] == "INVALID_TOKEN"


def test_another_process_sees_the_change_through_the_token(make_trader: Any) -> None:
    """The copy in memory is not dropped here (as in another process): the replaced token alone makes
    the next request read the row again."""
    trader = make_trader()
    client = _signed_in_with_a_copy(trader.email)
    token = user_cache.version_token(trader.pk)
    with TestCase.captureOnCommitCallbacks(execute=True):
        User.objects.filter(pk=trader.pk).update(trading_restricted=True)
    copy = user_cache._rows.get(trader.pk)
    assert copy is None  # this process dropped it; put the stale copy back, as another process holds it
    stale = User.objects.get(pk=trader.pk)
    stale.trading_restricted = False
    row = tuple(getattr(stale, name) for name in user_cache._attnames)
    user_cache._rows[trader.pk] = (token, time.monotonic(), row)
    assert user_cache.version_token(trader.pk) != token
    assert _user_reads(client) == (200, 1)


def test_a_rolled_back_change_replaces_no_token(make_trader: Any) -> None:
    trader = make_trader()
    client = Api()
    client.login(trader.email)
    client.get("me")
    token = user_cache.version_token(trader.pk)
    with TestCase.captureOnCommitCallbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        User.objects.filter(pk=trader.pk).update(blacklisted=True)
        raise RuntimeError("rolled back")
    assert user_cache.version_token(trader.pk) == token
    assert _user_reads(client) == (200, 1)  # this process dropped its copy; read once more, then kept
    assert _user_reads(client) == (200, 0)


def test_redis_emptied_or_a_copy_grown_old_means_a_read(make_trader: Any, monkeypatch: Any) -> None:
    client = _signed_in_with_a_copy(make_trader().email)
    cache.clear()  # a restarted Redis: no token, so no copy can be trusted
    assert _user_reads(client) == (200, 1) and _user_reads(client) == (200, 0)
    monkeypatch.setattr(user_cache, "MAX_AGE_S", 0.0)
    assert _user_reads(client) == (200, 1)


def test_with_redis_unreachable_every_request_reads_the_row(make_trader: Any, monkeypatch: Any) -> None:
    import redis

    client = _signed_in_with_a_copy(make_trader().email)
    # nothing listens on port 1: every call is refused, as during a Redis restart
    unreachable = redis.Redis.from_url("redis://127.0.0.1:1/0")
    asked: list[str] = []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            asked.append(name)
            return getattr(unreachable, name)

    monkeypatch.setattr(user_cache, "_redis", Counting)
    assert _user_reads(client) == (200, 1)
    assert _user_reads(client) == (200, 1)
    # asked once per request (the version token and the session's revocation marks in one read): no
    # second wait to claim a token or to read the marks
    assert asked == ["mget", "mget"]
