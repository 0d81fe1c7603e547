"""Sign-in, lockout and throttling for traders; sessions (list, revoke one, log out here or
everywhere); new-device emails; security events for the trader and for support."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.test import Client

from conftest import PASSWORD
from core.accounts.models import RefreshToken, SecurityEvent
from core.accounts.selectors import security_events_for
from core.accounts.tests.conftest import Api

pytestmark = pytest.mark.django_db


def test_five_wrong_passwords_lock_a_trader_out_even_with_the_right_one(api: Api, make_trader: Any) -> None:
    trader = make_trader()
    for _ in range(5):
        assert api.login(trader.email, "wrong-password-xyz").json()["code"] == "INVALID_CREDENTIALS"
    response = api.login(trader.email, PASSWORD)
    assert response.status_code == 423 and response.json()["code"] == "ACCOUNT_LOCKED"
    from core.accounts.lockout import seconds_locked

    assert seconds_locked(email=trader.email, ip="127.0.0.1") > 0  # this address's sign-ins (issue #17)
    kinds = list(security_events_for(trader.pk).values_list("kind", flat=True))
    assert kinds.count("login_failed") >= 5 and "locked" in kinds


def test_a_successful_login_resets_the_failure_count(api: Api, make_trader: Any) -> None:
    trader = make_trader()
    for _ in range(4):
        api.login(trader.email, "wrong-password-xyz")
    assert api.login(trader.email).status_code == 200
    trader.refresh_from_db()
    assert trader.failed_login_count == 0
    for _ in range(4):
        api.login(trader.email, "wrong-password-xyz")
    assert api.login(trader.email).status_code == 200, "four more failures are not five"


def test_login_is_throttled_per_account_and_ip_not_per_account(make_trader: Any, monkeypatch: Any) -> None:
    from core.accounts import throttle

    monkeypatch.setitem(throttle.RATES, "login:account_ip", throttle.Rate(3, 60))
    trader = make_trader()
    guesser = Api(ip="10.0.0.1")
    for _ in range(3):
        guesser.login(trader.email, "wrong-password-xyz")
    response = guesser.login(trader.email)
    assert response.status_code == 429 and response.json()["code"] == "RATE_LIMITED"
    assert int(response["Retry-After"]) >= 1
    for i in range(3):  # other addresses' attempts at the same account count on their own
        Api(ip=f"10.0.1.{i + 1}").login(trader.email, "wrong-password-xyz")
    assert Api(ip="10.0.0.99").login(trader.email).status_code == 200, "the owner is not refused elsewhere"


def test_login_is_throttled_per_ip_across_accounts(make_trader: Any, monkeypatch: Any) -> None:
    from core.accounts import throttle

    monkeypatch.setitem(throttle.RATES, "login:ip", throttle.Rate(3, 60))
    api = Api(ip="10.9.9.9")
    for i in range(3):
        api.login(f"guess{i}@example.com", "wrong-password-xyz")
    assert api.login(make_trader().email).json()["code"] == "RATE_LIMITED"
    assert Api(ip="10.9.9.10").login(make_trader().email).status_code == 200


def test_a_sign_in_from_a_new_device_emails_the_owner(make_trader: Any) -> None:
    trader = make_trader()
    Api(user_agent="Laptop/1").login(trader.email)
    assert mail.outbox == [], "the first sign-in is not news"
    Api(user_agent="Laptop/1").login(trader.email)
    assert mail.outbox == [], "a known device is not news"
    Api(user_agent="Strange Phone/9").login(trader.email)
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [trader.email]
    assert "Strange Phone/9" in mail.outbox[0].body
    assert SecurityEvent.objects.filter(user=trader, kind="login", details__new_device=True).count() == 1


def test_a_trader_lists_sessions_with_device_agent_ip_and_last_use(make_trader: Any) -> None:
    trader = make_trader()
    laptop = Api(user_agent="Laptop/1", ip="10.1.1.1")
    laptop.login(trader.email, device="work laptop")
    phone = Api(user_agent="Phone/2", ip="10.2.2.2")
    phone.login(trader.email, device="phone")
    phone.remember(phone.post("auth/refresh", {"refresh": phone.refresh}))  # rotation keeps the session

    sessions = laptop.get("account/security/sessions").json()
    assert len(sessions) == 2
    by_device = {s["device"]: s for s in sessions}
    assert (
        by_device["work laptop"]["user_agent"] == "Laptop/1" and by_device["work laptop"]["ip"] == "10.1.1.1"
    )
    assert by_device["work laptop"]["current"] is True and by_device["phone"]["current"] is False
    assert by_device["phone"]["last_used_at"] > by_device["phone"]["created_at"]


def test_revoking_a_session_ends_its_refresh_and_access_tokens(make_trader: Any) -> None:
    trader = make_trader()
    laptop = Api(user_agent="Laptop/1")
    laptop.login(trader.email)
    stolen = Api(user_agent="Elsewhere/1")
    stolen.login(trader.email)
    session_id = next(s["id"] for s in laptop.get("account/security/sessions").json() if not s["current"])

    assert laptop.post(f"account/security/sessions/{session_id}/revoke").status_code == 204
    assert stolen.get("me").json()["code"] == "INVALID_TOKEN"
    assert stolen.post("auth/refresh", {"refresh": stolen.refresh}).status_code == 401
    assert laptop.get("me").status_code == 200
    assert [s["current"] for s in laptop.get("account/security/sessions").json()] == [True]


def _one_of_two_sessions_revoked(make_trader: Any) -> tuple[Api, Api, str]:
    """A trader signed in on a laptop and elsewhere; the laptop revoked the other session."""
    trader = make_trader()
    laptop, stolen = Api(user_agent="Laptop/1"), Api(user_agent="Elsewhere/1")
    laptop.login(trader.email)
    stolen.login(trader.email)
    session_id = next(s["id"] for s in laptop.get("account/security/sessions").json() if not s["current"])
    assert laptop.post(f"account/security/sessions/{session_id}/revoke").status_code == 204
    return laptop, stolen, session_id


def test_a_revoked_session_stays_revoked_when_redis_restarts_empty(make_trader: Any) -> None:
    from django.core.cache import cache

    laptop, stolen, session_id = _one_of_two_sessions_revoked(make_trader)
    cache.clear()  # what a restarted Redis without persistence holds: nothing
    assert stolen.get("me").json()["code"] == "INVALID_TOKEN", (
        "the revocation is copied back from the database"
    )
    assert laptop.get("me").status_code == 200
    assert cache.get("session-revoked:" + session_id) == 1 and cache.get("session-revoked:loaded") == 1


def test_a_sessions_marks_are_read_with_the_version_token_in_one_round_trip(
    make_trader: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bearer request reads the user's version token and its session's revocation marks in one Redis
    read (``user_cache.version_token_with``), not through the cache API as well — and still sees a
    revocation the moment it is made, and the database's answer when that read fails."""
    import redis
    from django.core.cache import cache

    from core.accounts import user_cache

    laptop, stolen, session_id = _one_of_two_sessions_revoked(make_trader)
    real = user_cache._redis()
    asked: list[str] = []

    class Counting:
        def __init__(self, client: Any) -> None:
            self.client = client

        def __getattr__(self, name: str) -> Any:
            asked.append(name)
            return getattr(self.client, name)

    def no_cache_read(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the marks are read with the version token")

    monkeypatch.setattr(cache, "get_many", no_cache_read)
    monkeypatch.setattr(user_cache, "_redis", lambda: Counting(real))
    assert stolen.get("me").json()["code"] == "INVALID_TOKEN"
    assert laptop.get("me").status_code == 200
    assert asked == ["mget", "mget"]
    # with the one read failing, the database judges (and Redis is not asked a second time)
    unreachable = redis.Redis.from_url("redis://127.0.0.1:1/0")
    monkeypatch.setattr(user_cache, "_redis", lambda: Counting(unreachable))
    asked.clear()
    assert stolen.get("me").json()["code"] == "INVALID_TOKEN"
    assert laptop.get("me").status_code == 200
    assert asked == ["mget", "mget"]


def test_with_redis_unreachable_sessions_are_judged_by_the_database(make_trader: Any) -> None:
    from django.test import override_settings

    laptop, stolen, session_id = _one_of_two_sessions_revoked(make_trader)
    # nothing listens on port 1: every cache call is refused (no retries), as during a Redis restart
    dead = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
        }
    }
    with override_settings(CACHES=dead):
        assert stolen.get("me").json()["code"] == "INVALID_TOKEN"
        mine = laptop.get("me")
        assert mine.status_code == 200, mine.content


def test_an_outsider_can_neither_list_nor_revoke_another_traders_sessions(api_as: Any) -> None:
    trader = api_as()
    outsider = api_as()
    victim_session = trader.get("account/security/sessions").json()[0]["id"]

    listed = outsider.get("account/security/sessions").json()
    assert victim_session not in [s["id"] for s in listed]
    response = outsider.post(f"account/security/sessions/{victim_session}/revoke")
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"
    assert trader.get("me").status_code == 200
    assert RefreshToken.objects.filter(family=victim_session, revoked_at__isnull=True).exists()
    assert trader.user.email not in str(outsider.get("account/security/events").json())


def test_logout_ends_only_this_session(make_trader: Any) -> None:
    trader = make_trader()
    here, there = Api(), Api(user_agent="Other/1")
    here.login(trader.email)
    there.login(trader.email)
    assert here.post("auth/logout").status_code == 204
    assert here.get("me").status_code == 401
    assert here.post("auth/refresh", {"refresh": here.refresh}).status_code == 401
    assert there.get("me").status_code == 200


def test_logout_everywhere_ends_every_session_at_once(make_trader: Any) -> None:
    trader = make_trader()
    clients = [Api(user_agent=f"Device/{i}") for i in range(3)]
    for client in clients:
        client.login(trader.email)
    response = clients[0].post("auth/logout-all")
    assert response.status_code == 200 and response.json()["sessions_ended"] == 3
    for client in clients:
        assert client.get("me").status_code == 401
        assert client.post("auth/refresh", {"refresh": client.refresh}).status_code == 401
    assert Api().login(trader.email).status_code == 200, "signing in again works"


def test_a_reused_refresh_token_still_revokes_its_family(make_trader: Any) -> None:
    trader = make_trader()
    api = Api()
    api.login(trader.email)
    first_refresh, first_access = api.refresh, api.access
    api.remember(api.post("auth/refresh", {"refresh": first_refresh}))
    replay = api.post("auth/refresh", {"refresh": first_refresh})
    assert replay.status_code == 401 and replay.json()["code"] == "INVALID_TOKEN"
    assert api.get("me").status_code == 401, "the family's access tokens end with it"
    api.access = first_access
    assert api.get("me").status_code == 401
    assert SecurityEvent.objects.filter(user=trader, kind="token_reuse").exists()


def test_one_address_refreshes_many_traders_sessions_in_the_same_minute(make_trader: Any) -> None:
    # an office (or the demo's traders) behind one address: their access tokens end together, so their
    # refreshes come together; the login throttle's 20 a minute answered the 21st 429
    sessions = []
    for i in range(25):
        api = Api(ip=f"10.7.{i // 200}.{i % 200 + 1}")
        api.login(make_trader().email)
        sessions.append(api)
    office = Api(ip="10.8.0.1")
    for api in sessions:
        office.access, office.refresh = None, api.refresh
        office.remember(office.post("auth/refresh", {"refresh": api.refresh}))
    forged = office.post("auth/refresh", {"refresh": sessions[0].refresh[:-4] + "AAAA"})
    assert forged.status_code == 401 and forged.json()["code"] == "INVALID_TOKEN"


def test_security_events_are_shown_to_the_trader_and_to_support(api_as: Any) -> None:
    trader = api_as()
    trader.post("api-keys", {"label": "bot", "permissions": ["read"]})
    trader.post("auth/logout-all")
    trader.login(trader.user.email)
    events = trader.get("account/security/events").json()["results"]
    kinds = [e["kind"] for e in events]
    assert kinds[:3] == ["login", "logout_all", "api_key_created"]
    assert all(e["ip"] == "127.0.0.1" for e in events)
    support_view = list(security_events_for(trader.user.pk).values_list("kind", flat=True))
    assert support_view == kinds


def test_api_keys_cannot_read_or_change_account_security(api_as: Any) -> None:
    import time

    from core.accounts import hmac_auth
    from core.accounts.api_keys import api_key_create

    trader = api_as()
    key, secret = api_key_create(user=trader.user, label="bot", permissions=["read", "trade", "withdraw"])
    ts = str(int(time.time() * 1000))
    path = "/api/v1/account/security/sessions"
    response = Client().get(
        path,
        HTTP_X_XBIT_APIKEY=key.key_id,
        HTTP_X_XBIT_TIMESTAMP=ts,
        HTTP_X_XBIT_SIGNATURE=hmac_auth.sign(secret, timestamp=ts, method="GET", path=path),
    )
    assert response.status_code == 403 and response.json()["code"] == "API_KEY_PERMISSION"
