"""Brute-force throttles for the account endpoints: a fixed-window counter per (scope, identity) in
Redis. ``cache.add`` creates the window's counter with its expiry and ``cache.incr`` is Redis INCR,
so concurrent requests on any number of web processes count exactly (no read-modify-write).

Money limits are enforced in the ledger, not here; these only slow guessing down."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from django.core.cache import cache

from core.errors import ApplicationError, ErrorCode


@dataclass(frozen=True)
class Rate:
    limit: int
    window_seconds: int


# Per IP the limits are generous (NAT, offices); per account they are tight. Sign-in is counted per
# (account, address), never per account alone: an account-wide count is checked before the password,
# so eleven strangers' guesses answered the owner 429 even with the right password (issue #17). Guessing
# from many addresses is bounded by the lockout instead (``lockout.failure_record``: past
# ``ACCOUNT_FAILURES_STRICT`` wrong passwords for an account, each further one locks its address).
RATES: dict[str, Rate] = {
    "login:ip": Rate(30, 60),
    "login:account_ip": Rate(10, 60),
    "register:ip": Rate(20, 3600),
    "code:ip": Rate(30, 60),
    "code:account": Rate(10, 60),
    "reset:ip": Rate(10, 3600),
    "siwe:ip": Rate(60, 60),
    "reauth:account": Rate(10, 60),
}


def _identity(value: str) -> str:
    # Emails and IPs are hashed so that Redis keys never carry personal data.
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]


def throttle_hit(scope: str, identity: str | None) -> None:
    """Count one attempt; raise RATE_LIMITED (with ``retry_after``) once the window is full."""
    if not identity:
        return
    rate = RATES[scope]
    now = time.time()
    window = int(now // rate.window_seconds)
    key = f"throttle:{scope}:{_identity(identity)}:{window}"
    cache.add(key, 0, timeout=rate.window_seconds + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr: this attempt opens a new window
        cache.add(key, 1, timeout=rate.window_seconds + 1)
        count = 1
    if count > rate.limit:
        retry_after = max(1, int(rate.window_seconds - now % rate.window_seconds))
        raise ApplicationError(
            ErrorCode.RATE_LIMITED, "Too many attempts. Try again later.", {"retry_after": retry_after}
        )
