"""JWT access tokens (short-lived, stateless) and rotating refresh tokens (stored, single use)."""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from redis.exceptions import RedisError

from core.accounts.models import RefreshToken, SecurityEvent, User
from core.errors import ApplicationError, ErrorCode

ALGORITHM = "HS256"
logger = logging.getLogger(__name__)


def _encode(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, settings.JWT_SIGNING_KEY, algorithm=ALGORITHM)


# Access tokens whose signature and claims were verified, by their text: a client sends the same token
# with every request until it refreshes it, and verifying and decoding it again was ~3 % of an order's
# CPU. Only a token that passed is kept, under the key it was verified with; its expiry is checked again
# at every use, as PyJWT checks it. What a token cannot lose by waiting — its signature, its claims'
# presence and types, an issue time not in the future — needs no second look. Revocation is not a
# property of the token and stays the caller's (``authentication.JWTAuthentication``).
VERIFIED_ACCESS_MAX = 8192
_verified_access: dict[str, tuple[str, dict[str, Any]]] = {}


def decode(token: str, *, expected_type: str) -> dict[str, Any]:
    access = expected_type == "access"
    key = settings.JWT_SIGNING_KEY
    if access:
        hit = _verified_access.get(token)
        if hit is not None and hit[0] == key:
            claims = hit[1]
            if claims["exp"] <= datetime.now(tz=UTC).timestamp():
                raise ApplicationError(ErrorCode.TOKEN_EXPIRED, "The token has expired.")
            return dict(claims)
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "iat", "sub", "typ", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise ApplicationError(ErrorCode.TOKEN_EXPIRED, "The token has expired.") from None
    except jwt.PyJWTError:
        raise ApplicationError(ErrorCode.INVALID_TOKEN, "The token is invalid.") from None
    if claims.get("typ") != expected_type:
        raise ApplicationError(ErrorCode.INVALID_TOKEN, f"Expected a {expected_type} token.")
    if access and type(claims["exp"]) is int:  # PyJWT took int(exp): anything else is checked each time
        if len(_verified_access) >= VERIFIED_ACCESS_MAX:
            _verified_access.clear()  # a bound, not a policy: the live tokens come back on their next use
        _verified_access[token] = (key, dict(claims))
    return claims


def access_token_for(user: User, *, now: datetime | None = None, session: str | None = None) -> str:
    """``sid`` names the session (refresh-token family) so that revoking a session also ends its
    access tokens before they expire (see ``authentication.JWTAuthentication``)."""
    now = now or timezone.now()
    claims: dict[str, Any] = {
        "sub": str(user.pk),
        "typ": "access",
        "jti": uuid.uuid4().hex,
        "iat": int(now.timestamp()),
        "exp": int((now + settings.JWT_ACCESS_TTL).timestamp()),
    }
    if session:
        claims["sid"] = session
    return _encode(claims)


def _refresh_token(user: User, family: str, *, ip: str | None, user_agent: str, device: str = "") -> str:
    now = timezone.now()
    jti = secrets.token_hex(16)
    RefreshToken.objects.create(
        user=user,
        jti=jti,
        family=family,
        expires_at=now + settings.JWT_REFRESH_TTL,
        ip=ip,
        user_agent=user_agent[:300],
        device=device[:80],
    )
    return _encode(
        {
            "sub": str(user.pk),
            "typ": "refresh",
            "jti": jti,
            "fam": family,
            "iat": int(now.timestamp()),
            "exp": int((now + settings.JWT_REFRESH_TTL).timestamp()),
        }
    )


def token_pair_issue(
    *, user: User, ip: str | None = None, user_agent: str = "", device: str = ""
) -> dict[str, str]:
    """A new session: access + refresh of a new family."""
    family = secrets.token_hex(16)
    return {
        "access": access_token_for(user, session=family),
        "refresh": _refresh_token(user, family, ip=ip, user_agent=user_agent, device=device),
        "token_type": "Bearer",
    }


def token_pair_refresh(*, refresh: str, ip: str | None = None, user_agent: str = "") -> dict[str, str]:
    """Rotate: the presented refresh token is consumed and a new one issued in its family.

    A token presented twice is evidence of theft: the whole family is revoked (both the thief's and the
    owner's sessions end) and a security event is recorded. The revocation commits even though the
    call then fails, which is why the error is raised outside the transaction."""
    claims = decode(refresh, expected_type="refresh")
    with transaction.atomic():
        row = (
            RefreshToken.objects.select_for_update().filter(jti=claims["jti"]).select_related("user").first()
        )
        if row is None:
            raise ApplicationError(ErrorCode.INVALID_TOKEN, "The token is invalid.")
        now = timezone.now()
        reused = row.used_at is not None or row.revoked_at is not None
        if reused:
            RefreshToken.objects.filter(family=row.family, revoked_at__isnull=True).update(revoked_at=now)
            session_mark_revoked(row.family)
            if row.used_at is not None:
                SecurityEvent.objects.create(
                    user=row.user, kind=SecurityEvent.Kind.TOKEN_REUSE, ip=ip, details={"family": row.family}
                )
        elif row.user.is_active:
            row.used_at = now
            row.save(update_fields=["used_at"])
            return {
                "access": access_token_for(row.user, session=row.family),
                "refresh": _refresh_token(
                    row.user, row.family, ip=ip, user_agent=user_agent or row.user_agent, device=row.device
                ),
                "token_type": "Bearer",
            }
    if reused:
        raise ApplicationError(ErrorCode.INVALID_TOKEN, "The token was already used or revoked.")
    raise ApplicationError(ErrorCode.INVALID_TOKEN, "The account is disabled.")


def refresh_tokens_revoke_all(*, user: User, keep_family: str | None = None) -> int:
    """Revoke every refresh token of the user (but ``keep_family``) and mark the revoked sessions so
    their access tokens stop working too. Returns the number of sessions ended."""
    qs = RefreshToken.objects.filter(user=user, revoked_at__isnull=True)
    if keep_family:
        qs = qs.exclude(family=keep_family)
    families = set(qs.values_list("family", flat=True))
    qs.update(revoked_at=timezone.now())
    for family in families:
        session_mark_revoked(family)
    return len(families)


# Revoked sessions: the database is the record (``RefreshToken.revoked_at``), Redis the copy every
# authenticated request reads. A Redis restart or flush empties the copy, and a mark written while Redis
# was unreachable is missing from it; the ``loaded`` key says the copy is complete: it is written only
# after every revocation that can still matter (one access-token lifetime back) was copied from the
# database, and it expires after ``REVOKED_RELOAD_S``, so a missing mark is copied again within that.
# With Redis unreachable the database answers for the one session asked about.
REVOKED_LOADED_KEY = "session-revoked:loaded"
REVOKED_RELOAD_S = 60
_unreachable_logged_at = 0.0


def _revoked_key(family: str) -> str:
    return f"session-revoked:{family}"


def _revoked_ttl_s() -> int:
    return int(settings.JWT_ACCESS_TTL.total_seconds()) + 5


def session_mark_revoked(family: str) -> None:
    """Remember a revoked session for as long as one of its access tokens can live, so the JWT
    authentication refuses them (access tokens are otherwise stateless)."""

    def mark() -> None:
        try:
            cache.set(_revoked_key(family), 1, timeout=_revoked_ttl_s())
        except RedisError:  # committed in the database; copied to Redis at the next reload
            logger.warning("session revocation not copied to Redis (unreachable); the next reload copies it")

    transaction.on_commit(mark)


def session_revocation_keys(family: str) -> list[str] | None:
    """The Redis keys of the session's revocation mark and of the copy's completeness mark, as the
    cache stores them, for a caller that reads them with its own client in a round trip it makes anyway
    (``authentication.JWTAuthentication``); None when the cache is not the platform's Redis."""
    conf = settings.CACHES.get("default", {})
    if conf.get("BACKEND") != "django.core.cache.backends.redis.RedisCache" or conf.get("LOCATION") != (
        settings.REDIS_URL
    ):
        return None
    return [cache.make_key(_revoked_key(family)), cache.make_key(REVOKED_LOADED_KEY)]


def _cached_flag(raw: str | None) -> Any:
    """A mark's value as the cache gives it back (its serializer stores an int as its digits)."""
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return raw


_UNREAD: Any = object()


def session_is_revoked(family: str, read: list[str] | None = _UNREAD) -> bool:
    """Whether the session ``family`` was revoked — one Redis read while its copy is complete.
    ``read``: the values at ``session_revocation_keys(family)`` the caller already read (None: Redis
    was unreachable for that read)."""
    if read is _UNREAD:
        try:
            found = cache.get_many([_revoked_key(family), REVOKED_LOADED_KEY])
        except RedisError:
            _log_unreachable()
            return _revoked_in_database(family)
        revoked, loaded = found.get(_revoked_key(family)), found.get(REVOKED_LOADED_KEY)
    elif read is None:
        _log_unreachable()
        return _revoked_in_database(family)
    else:
        revoked, loaded = _cached_flag(read[0]), _cached_flag(read[1])
    if revoked:
        return True
    if loaded:
        return False
    try:
        revoked_sessions_reload()
    except RedisError:
        _log_unreachable()
    return _revoked_in_database(family)


def _log_unreachable() -> None:
    global _unreachable_logged_at
    if time.monotonic() - _unreachable_logged_at > 10:  # once per 10 s of an outage, not per request
        _unreachable_logged_at = time.monotonic()
        logger.warning("Redis unreachable: session revocations read from the database")


def _revoked_in_database(family: str) -> bool:
    return RefreshToken.objects.filter(family=family, revoked_at__isnull=False).exists()


def revoked_sessions_reload(now: datetime | None = None) -> int:
    """Copy every revocation an access token can still be affected by (one lifetime back) from the
    database to Redis, then mark the copy complete. Returns how many were copied."""
    now = now or timezone.now()
    ttl = _revoked_ttl_s()
    rows = RefreshToken.objects.filter(revoked_at__gte=now - timedelta(seconds=ttl)).values_list(
        "family", "revoked_at"
    )
    remaining: dict[str, int] = {}
    for family, revoked_at in rows:
        assert revoked_at is not None  # filtered on it
        left = ttl - int((now - revoked_at).total_seconds())
        remaining[family] = max(left, remaining.get(family, 0), 1)
    for family, left in remaining.items():
        cache.set(_revoked_key(family), 1, timeout=left)
    cache.set(REVOKED_LOADED_KEY, 1, timeout=REVOKED_RELOAD_S)
    return len(remaining)
