"""Password lockout per (account, client address).

Wrong passwords used to lock the *account* (anyone could lock a trader out with five guesses), and a
locked account answered 423 at once while an unknown one answered 401 after the password hasher: an
oracle for who has an account. Now:

* failures are counted per (email, address) — for any email, known or not — in Redis (hashed keys);
  ``LOGIN_MAX_FAILURES`` of them lock that pair for a while that doubles with each lockout of the pair
  within a day (``LOGIN_LOCKOUT_BASE_SECONDS`` … ``LOGIN_LOCKOUT_SECONDS``): the owner signs in from
  elsewhere, the guesser waits longer and longer;
* a locked pair answers 423 ``ACCOUNT_LOCKED`` whether the account exists or not, after the same work as
  a wrong password (:func:`password_work`: the hasher on a dummy), so neither answer nor time differs;
* when a pair of an existing account locks, its owner gets an email (at most one an hour) naming the
  address, with a link that lifts every lock of the account (single use: the link carries the account's
  lock generation, which unlocking advances; every pair key carries the generation, so old locks are
  orphaned and expire).

* guessing from many addresses: every wrong password also counts toward the account (any address,
  ``ACCOUNT_FAILURES_WINDOW_S``); past ``ACCOUNT_FAILURES_STRICT`` of them each further wrong password
  locks its pair at once instead of after ``LOGIN_MAX_FAILURES``, so each address gets one guess per
  (growing) lock, and the lock emails the owner as above. The owner, who has not failed from their own
  address, still signs in: nothing here is checked before the password except the pair's own lock.

The per-address and per-(account, address) sign-in throttles (``throttle.py``) still bound the rate.
Durable locks (``User.locked_until``) remain for wrong second factors and re-authentication, which need
the password first; the emailed link lifts those too.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core import signing
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from core.accounts.emails import email_send_on_commit
from core.accounts.models import SecurityEvent, User
from core.accounts.security_events import security_event_record
from core.errors import ApplicationError, ErrorCode

_SALT = "xbit.accounts.unlock"
_DAY = 24 * 3600
_NOTICE_EVERY_S = 3600
# Wrong passwords for one account from all addresses within the window before every address gets one
# guess per lock: far above a forgetful owner's count, far below what guessing a password needs.
ACCOUNT_FAILURES_STRICT = 20
ACCOUNT_FAILURES_WINDOW_S = 3600


def _now() -> float:
    return time.time()


def _digest(value: str) -> str:
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]


def _generation(email: str) -> int:
    return int(cache.get(f"lockout:gen:{_digest(email)}") or 0)


def _pair(email: str, ip: str) -> str:
    return f"lockout:{_digest(email)}:{_generation(email)}:{_digest(ip or '-')}"


def password_work(password: str) -> None:
    """The hasher's cost for nothing: what checking a password would have cost (Django does the same
    for an unknown user in ``ModelBackend.authenticate``)."""
    make_password(password)


def seconds_locked(*, email: str, ip: str) -> int:
    """How long this (email, address) pair stays locked; 0 when it is not."""
    until = cache.get(f"{_pair(email, ip)}:until")
    return max(1, math.ceil(float(until) - _now())) if until and float(until) > _now() else 0


def _count(key: str, timeout: int) -> int:
    """Redis INCR on a counter that expires ``timeout`` seconds after its first count."""
    cache.add(key, 0, timeout=timeout)
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=timeout)
        return 1


def failure_record(*, email: str, ip: str) -> int:
    """Count a wrong password for the pair and for the account; returns the lock's seconds when this
    failure locked the pair (after ``LOGIN_MAX_FAILURES`` from the pair, or at once while the account
    is past ``ACCOUNT_FAILURES_STRICT`` from all addresses)."""
    key = _pair(email, ip)
    account_failures = _count(
        f"lockout:{_digest(email)}:{_generation(email)}:all:failures", ACCOUNT_FAILURES_WINDOW_S
    )
    failures = _count(f"{key}:failures", int(settings.LOGIN_LOCKOUT_SECONDS))
    allowance = 1 if account_failures > ACCOUNT_FAILURES_STRICT else int(settings.LOGIN_MAX_FAILURES)
    if failures < allowance:
        return 0
    cache.delete(f"{key}:failures")
    lockouts = _count(f"{key}:lockouts", _DAY)
    seconds = min(
        int(settings.LOGIN_LOCKOUT_SECONDS), int(settings.LOGIN_LOCKOUT_BASE_SECONDS) * 2 ** (lockouts - 1)
    )
    cache.set(f"{key}:until", _now() + seconds, timeout=seconds + 5)
    return seconds


def success_record(*, email: str, ip: str) -> None:
    """The right password from this address: its failures start again from zero."""
    cache.delete(f"{_pair(email, ip)}:failures")


def locked_error(seconds: int) -> ApplicationError:
    return ApplicationError(
        ErrorCode.ACCOUNT_LOCKED, "Too many failed attempts. Try again later.", {"retry_after": seconds}
    )


def notice_due(*, email: str) -> bool:
    """At most one lockout email an hour per account (an attacker must not turn it into a mail bomb)."""
    return bool(cache.add(f"lockout:notice:{_digest(email)}", 1, timeout=_NOTICE_EVERY_S))


def locks_lift(*, email: str) -> None:
    """Void every pair lock, failure count and pending unlock link of the account: its lock generation
    advances (the old pair keys expire on their own)."""
    key = f"lockout:gen:{_digest(email)}"
    cache.add(key, 0, timeout=None)
    try:
        cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=None)


def unlock_token(*, email: str, user_id: int) -> str:
    return signing.dumps({"u": user_id, "g": _generation(email)}, salt=_SALT)


def unlock_url(token: str) -> str:
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/account/unlock?token={token}"


def account_unlock(*, token: str, request: Any = None) -> Any:
    """The emailed link's button: lift every lock of the account (all addresses, and a durable lock),
    once. Side effects: the account's lock generation advances (every pending link and pair lock is
    void), ``failed_login_count``/``locked_until`` reset, an ``unlocked`` security event."""

    try:
        data = signing.loads(str(token), salt=_SALT, max_age=_DAY)
        user = User.objects.get(pk=int(data["u"]))
    except (signing.BadSignature, User.DoesNotExist, KeyError, TypeError, ValueError):
        raise ApplicationError(ErrorCode.INVALID_TOKEN, "This unlock link is not valid.") from None
    generation_key = f"lockout:gen:{_digest(user.email)}"
    if int(data.get("g", -1)) != _generation(user.email):
        raise ApplicationError(ErrorCode.INVALID_TOKEN, "This unlock link was already used.")
    if not cache.add(f"{generation_key}:{data['g']}:used", 1, timeout=_DAY):  # two clicks at once
        raise ApplicationError(ErrorCode.INVALID_TOKEN, "This unlock link was already used.")
    locks_lift(email=user.email)
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(failed_login_count=0, locked_until=None)
        security_event_record(user=user, kind=SecurityEvent.Kind.UNLOCKED, request=request)
    user.refresh_from_db()
    return user


def lockout_notice_send(*, email: str, ip: str, seconds: int, at: str) -> None:
    """Tell the owner of ``email`` (if there is one with a real address) that sign-ins from ``ip`` are
    paused, with the unlock link. Runs in a task: the answer to the sign-in must not take longer for an
    existing account."""

    user = User.objects.filter(email__iexact=email.strip().lower(), is_active=True).first()
    if user is None or not user.contact_email or not notice_due(email=user.email):
        return
    email_send_on_commit(
        to=user.contact_email,
        template="account_locked",
        context={
            "ip": ip or "an unknown address",
            "minutes": max(1, round(seconds / 60)),
            "at": at,
            "unlock_url": unlock_url(unlock_token(email=user.email, user_id=user.pk)),
            "now": timezone.now(),
        },
    )
