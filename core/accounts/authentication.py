"""DRF authentication: HMAC-signed API keys for programs, JWT bearer tokens for interactive clients."""

from __future__ import annotations

import ipaddress
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from core.accounts import crypto, hmac_auth, tokens, user_cache
from core.accounts.models import ApiKey, User
from core.errors import ApplicationError, ErrorCode
from core.text import ascii_int


def _fail(code: ErrorCode, message: str) -> exceptions.AuthenticationFailed:
    exc = exceptions.AuthenticationFailed(message)
    exc.xbit_code = code
    return exc


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Verifies ``X-XBIT-APIKEY`` / ``-TIMESTAMP`` / ``-SIGNATURE`` / ``-RECV-WINDOW`` (spec 08).

    Order of checks: header shape → timestamp window (cheap, before any I/O) → key lookup →
    constant-time signature compare → IP allow-list → replay cache (Redis ``SET NX`` on the
    key+timestamp+signature, kept for the whole window, so a captured request cannot be replayed)."""

    def authenticate(self, request: Request) -> tuple[User, ApiKey] | None:
        key_id = request.headers.get(hmac_auth.HEADER_KEY)
        if not key_id:
            return None
        timestamp = request.headers.get(hmac_auth.HEADER_TIMESTAMP, "")
        signature = request.headers.get(hmac_auth.HEADER_SIGNATURE, "")
        window_raw = request.headers.get(hmac_auth.HEADER_RECV_WINDOW, "")
        ts = ascii_int(timestamp)  # "²" passed isdigit() and made int() raise: a 500
        if ts is None or not signature:
            raise _fail(ErrorCode.INVALID_SIGNATURE, "Signed requests need a timestamp (ms) and a signature.")
        window = ascii_int(window_raw) if window_raw else settings.API_KEY_DEFAULT_RECV_WINDOW_MS
        if window is None:  # int() read "١٢" as 12 and " 5 " as 5
            raise _fail(ErrorCode.INVALID_SIGNATURE, "The receive window must be an integer (ms).")
        if not 0 < window <= settings.API_KEY_MAX_RECV_WINDOW_MS:
            raise _fail(
                ErrorCode.INVALID_SIGNATURE,
                f"The receive window must be between 1 and {settings.API_KEY_MAX_RECV_WINDOW_MS} ms.",
            )
        now_ms = int(time.time() * 1000)
        if ts - now_ms > settings.API_KEY_MAX_FUTURE_SKEW_MS:
            raise _fail(ErrorCode.TIMESTAMP_IN_FUTURE, "The timestamp is in the future.")
        if now_ms - ts > window:
            raise _fail(ErrorCode.TIMESTAMP_EXPIRED, "The timestamp is outside the receive window.")

        key = ApiKey.objects.select_related("user").filter(key_id=key_id).first()
        if key is None:
            raise _fail(ErrorCode.INVALID_SIGNATURE, "Unknown API key or bad signature.")
        if key.revoked_at is not None:
            raise _fail(ErrorCode.API_KEY_REVOKED, "The API key was revoked.")
        if not key.user.is_active:
            raise _fail(ErrorCode.INVALID_SIGNATURE, "Unknown API key or bad signature.")

        body = request._request.body
        expected = hmac_auth.sign(
            crypto.decrypt(key.secret_encrypted),
            timestamp=timestamp,
            method=request.method or "GET",
            path=request._request.path,
            query_string=request._request.META.get("QUERY_STRING", ""),
            body=body,
        )
        if not hmac_auth.signatures_match(expected, signature):
            raise _fail(ErrorCode.INVALID_SIGNATURE, "Unknown API key or bad signature.")
        if key.ip_allowlist and not _ip_allowed(request.META.get("REMOTE_ADDR", ""), key.ip_allowlist):
            exc = exceptions.PermissionDenied("This API key may not be used from this address.")
            exc.xbit_code = ErrorCode.IP_NOT_ALLOWED
            raise exc
        replay_ttl = (window + settings.API_KEY_MAX_FUTURE_SKEW_MS) // 1000 + 1
        if not cache.add(f"hmac-replay:{key.key_id}:{timestamp}:{signature}", 1, timeout=replay_ttl):
            raise _fail(ErrorCode.REPLAYED_REQUEST, "This signed request was already used.")
        if key.last_used_at is None or (timezone.now() - key.last_used_at).total_seconds() > 60:
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
        return key.user, key

    def authenticate_header(self, request: Request) -> str:
        return "XBIT-HMAC-SHA256"


def _ip_allowed(ip: str, allowlist: list[str]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address == ipaddress.ip_address(allowed) for allowed in allowlist)


class JWTAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, dict[str, Any]] | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith(self.keyword + " "):
            return None
        token = header[len(self.keyword) + 1 :].strip()
        try:
            claims = tokens.decode(token, expected_type="access")
        except ApplicationError as exc:
            raise _fail(exc.code, exc.message) from None
        user_id = ascii_int(str(claims["sub"]))
        if user_id is None:
            raise _fail(ErrorCode.INVALID_TOKEN, "The token is invalid.")
        # the user's row from this process's copy while its version token is unchanged
        # (core.accounts.user_cache: one Redis read instead of a database read); a session's
        # revocation marks are read in the same round trip
        session = claims.get("sid")
        keys = tokens.session_revocation_keys(session) if session else None
        if keys is None:
            version, marks = user_cache.version_token(user_id), None
        else:
            version, marks = user_cache.version_token_with(user_id, keys)
        user = user_cache.cached_active_user(user_id, version)
        if user is None:
            raise _fail(ErrorCode.INVALID_TOKEN, "The token is invalid.")
        # "Log out everywhere" and a password reset end every access token issued before them; a
        # revoked session ends its own.
        valid_after = user.tokens_valid_after
        if valid_after is not None and claims["iat"] < int(valid_after.timestamp()):
            raise _fail(ErrorCode.INVALID_TOKEN, "The session has ended. Sign in again.")
        if session and (
            tokens.session_is_revoked(session)
            if keys is None
            else tokens.session_is_revoked(session, read=marks)
        ):
            raise _fail(ErrorCode.INVALID_TOKEN, "The session has ended. Sign in again.")
        return user, claims

    def authenticate_header(self, request: Request) -> str:
        return self.keyword
