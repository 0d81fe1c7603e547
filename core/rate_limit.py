"""The general API rate limit (spec 08: per key and per IP, Redis-backed, atomic).

Every DRF view is throttled by :class:`ApiRateLimit` (``DEFAULT_THROTTLE_CLASSES``). A request spends one
unit of one **budget** — ``orders`` (placing, cancelling, closing: views with ``rate_budget = "orders"``,
unsafe methods), ``reads`` (GET/HEAD/OPTIONS) or ``writes`` (every other change) — in each of its
**scopes**: the API key that signed it, its user (all keys and sessions together) and its client
address (``core.request_guard`` decides which address that is). A scope is a GCRA bucket (a
token bucket kept as one timestamp): ``limit`` requests in a burst, refilled evenly over ``period``
seconds. One Lua script checks every scope of the request and spends them only when all allow it, so
concurrent requests on any number of web processes count exactly and a refused request costs nothing.

The answer carries the tightest scope's budget (``RateLimit-Limit``, ``-Remaining``, ``-Reset`` in
seconds until the bucket is full again, and ``RateLimit-Policy``); a refusal is 429 ``RATE_LIMITED``
with ``Retry-After`` and ``details`` naming the budget and scope.

Configuration is **settings**, not database rows: these numbers size what one client may take from this
deployment's web tier (its processes, cores, Redis and PostgreSQL), change with the deployment rather
than during a trading session, cost nothing to read on the order path, and the benchmarks and drills set
them per process from the environment. ``API_RATE_LIMITS`` (JSON, merged over the defaults) and
``API_RATE_LIMITS_LIFTED`` (every limit at 10^9: the limiter still runs and answers its headers — what
``bench/`` runs with). Money limits are enforced in the ledger, not here. If Redis cannot be reached the
request is let through (logged): Redis is a cache, and losing it must not take the API down.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from core.accounts.models import ApiKey
from core.accounts.security_events import client_ip
from core.errors import ApplicationError, ErrorCode
from core.rate_limit_rules import BUDGETS, DEFAULT_LIMITS, SCOPES, parse_limits

__all__ = [
    "BUDGETS",
    "DEFAULT_LIMITS",
    "SCOPES",
    "ApiRateLimit",
    "Outcome",
    "parse_limits",
    "rate_limit_spend",
]

logger = logging.getLogger(__name__)

LIFTED_LIMIT = 1_000_000_000
HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")


def _rules() -> dict[str, dict[str, tuple[int, float]]]:
    configured = getattr(settings, "API_RATE_LIMITS", DEFAULT_LIMITS)
    rules = {
        budget: {scope: (int(rule[0]), float(rule[1])) for scope, rule in scopes.items()}
        for budget, scopes in configured.items()
    }
    if getattr(settings, "API_RATE_LIMITS_LIFTED", False):
        rules = {
            b: {s: (LIFTED_LIMIT, period) for s, (_, period) in scopes.items()} for b, scopes in rules.items()
        }
    return rules


# GCRA over several buckets at once. KEYS: one bucket per scope. ARGV[1]: now (ms); then per bucket its
# emission interval and period (ms). Returns {allowed, index of the refusing bucket or 0, then per bucket
# its theoretical arrival time after this request (ms)}.
_SCRIPT = """
local now = tonumber(ARGV[1])
local denied, retry = 0, 0
local tats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i])
  local period = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - period
  if allow_at > now and allow_at - now > retry then
    denied, retry = i, allow_at - now
  end
  tats[i] = new_tat
end
local out = {}
if denied == 0 then
  for i = 1, #KEYS do
    redis.call('SET', KEYS[i], string.format('%d', tats[i]), 'PX', math.max(1, math.ceil(tats[i] - now)))
  end
  out[1], out[2] = 1, 0
else
  for i = 1, #KEYS do
    tats[i] = tonumber(redis.call('GET', KEYS[i]) or now)
  end
  out[1], out[2] = 0, denied
end
for i = 1, #KEYS do out[i + 2] = string.format('%d', tats[i]) end
return out
"""

_client_lock = threading.Lock()
_clients: dict[str, Any] = {}


def _script() -> Any:
    url = settings.REDIS_URL
    script = _clients.get(url)
    if script is None:
        with _client_lock:
            script = _clients.get(url)
            if script is None:
                client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
                script = _clients[url] = client.register_script(_SCRIPT)
    return script


@dataclass(frozen=True)
class Outcome:
    allowed: bool
    budget: str
    scope: str  # the tightest (or refusing) scope
    limit: int
    period: float
    remaining: int
    reset_s: int
    retry_after_s: int

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
            "RateLimit-Policy": f"{self.limit};w={self.period:g};budget={self.budget};scope={self.scope}",
        }


def _bucket(budget: str, scope: str, identity: str) -> str:
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "xbit")
    return f"{prefix}:rl:{budget}:{scope}:{_digest(identity)}"


@functools.lru_cache(maxsize=65536)
def _digest(identity: str) -> str:
    return hashlib.sha256(identity.encode()).hexdigest()[:24]  # no addresses or ids in Redis keys


def rate_limit_spend(*, budget: str, identities: list[tuple[str, str]]) -> Outcome | None:
    """Spend one unit of ``budget`` in each ``(scope, identity)``; None when Redis is unreachable."""
    rules = _rules()[budget]
    scopes = [(scope, identity) for scope, identity in identities if identity and scope in rules]
    if not scopes:
        return None
    now = int(time.time() * 1000)
    args: list[Any] = [now]
    for scope, _ in scopes:
        limit, period = rules[scope]
        args += [period * 1000 / limit, period * 1000]
    try:
        result = _script()(keys=[_bucket(budget, s, i) for s, i in scopes], args=args)
    except redis.RedisError as exc:
        logger.warning("rate limit not applied (Redis: %s)", exc)
        return None
    allowed, denied = int(result[0]), int(result[1])
    tats = [int(t) for t in result[2:]]
    # remaining per bucket: what is left of the burst once this request's arrival time is accounted for
    figures = []
    for (scope, _), tat in zip(scopes, tats, strict=True):
        limit, period = rules[scope]
        interval = period * 1000 / limit
        remaining = max(0, min(limit, math.floor((period * 1000 - (tat - now)) / interval + 1e-9)))
        figures.append((remaining, scope, limit, period, max(0, tat - now)))
    if not allowed:
        scope = scopes[denied - 1][0]
        limit, period = rules[scope]
        interval = period * 1000 / limit
        tat = tats[denied - 1]
        retry_ms = tat + interval - period * 1000 - now
        return Outcome(
            False,
            budget,
            scope,
            limit,
            period,
            0,
            math.ceil((tat - now) / 1000),
            max(1, math.ceil(retry_ms / 1000)),
        )
    remaining, scope, limit, period, full_in_ms = min(figures, key=lambda f: (f[0] / f[2], f[0]))
    return Outcome(True, budget, scope, limit, period, remaining, max(1, math.ceil(full_in_ms / 1000)), 0)


def request_budget(request: Request, view: Any) -> str:
    if (request.method or "GET").upper() in SAFE_METHODS:
        return "reads"
    return "orders" if getattr(view, "rate_budget", None) == "orders" else "writes"


class ApiRateLimit(BaseThrottle):
    """DRF throttle for the general rate limit (module docstring). The outcome is kept on the request
    for ``RequestGuardMiddleware`` to add its headers to whatever the view answers."""

    def allow_request(self, request: Request, view: Any) -> bool:
        user = getattr(request, "user", None)
        auth = getattr(request, "auth", None)
        identities = [
            ("key", auth.key_id if isinstance(auth, ApiKey) else ""),
            ("user", str(user.pk) if user is not None and getattr(user, "is_authenticated", False) else ""),
            ("ip", client_ip(request._request) or ""),
        ]
        outcome = rate_limit_spend(budget=request_budget(request, view), identities=identities)
        if outcome is None:
            return True
        request._request.xbit_rate_limit = outcome  # type: ignore[attr-defined]
        if not outcome.allowed:
            raise ApplicationError(
                ErrorCode.RATE_LIMITED,
                f"Too many requests: the {outcome.budget} budget of this {outcome.scope} is "
                f"{outcome.limit} per {outcome.period:g} s.",
                {
                    "retry_after": outcome.retry_after_s,
                    "budget": outcome.budget,
                    "scope": outcome.scope,
                    "limit": outcome.limit,
                    "period_seconds": outcome.period,
                },
            )
        return True
