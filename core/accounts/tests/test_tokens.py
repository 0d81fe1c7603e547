"""Access-token decoding: a token verified once is not verified again, but its expiry, the signing key
and the token type are checked at every use."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import jwt
import pytest
from django.test import override_settings
from django.utils import timezone

from core.accounts import tokens
from core.errors import ApplicationError, ErrorCode

pytestmark = pytest.mark.django_db


@pytest.fixture
def jwt_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens PyJWT was asked to verify (the cache starts empty)."""
    monkeypatch.setattr(tokens, "_verified_access", {})
    seen: list[str] = []
    real = jwt.decode

    def counted(token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(tokens.jwt, "decode", counted)
    return seen


def _code(token: str, expected_type: str = "access") -> ErrorCode:
    with pytest.raises(ApplicationError) as caught:
        tokens.decode(token, expected_type=expected_type)
    return caught.value.code


def test_an_access_token_is_verified_once_and_its_claims_are_the_callers_own(
    make_trader: Any, jwt_decodes: list[str]
) -> None:
    token = tokens.access_token_for(make_trader(), session="family-1")
    for _ in range(3):
        claims = tokens.decode(token, expected_type="access")
        assert claims["sub"] != "someone else" and claims["sid"] == "family-1" and claims["typ"] == "access"
        claims["sub"] = "someone else"  # a caller's change stays with that caller
    assert jwt_decodes == [token]


def test_a_verified_token_that_has_since_expired_is_refused(
    make_trader: Any, jwt_decodes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tokens.access_token_for(make_trader())
    claims = tokens.decode(token, expected_type="access")

    class Later(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.fromtimestamp(claims["exp"], tz)  # exp itself is already expired (PyJWT: <=)

    monkeypatch.setattr(tokens, "datetime", Later)
    assert _code(token) == ErrorCode.TOKEN_EXPIRED
    assert jwt_decodes == [token]  # refused from the cache, as PyJWT would have refused it


def test_a_token_expired_when_first_seen_is_refused_and_not_kept(
    make_trader: Any, jwt_decodes: list[str]
) -> None:
    from django.conf import settings

    token = tokens.access_token_for(
        make_trader(), now=timezone.now() - settings.JWT_ACCESS_TTL - timedelta(seconds=5)
    )
    assert _code(token) == ErrorCode.TOKEN_EXPIRED
    assert _code(token) == ErrorCode.TOKEN_EXPIRED
    assert jwt_decodes == [token, token] and tokens._verified_access == {}


def test_a_new_signing_key_ends_the_tokens_verified_with_the_old_one(
    make_trader: Any, jwt_decodes: list[str]
) -> None:
    token = tokens.access_token_for(make_trader())
    tokens.decode(token, expected_type="access")
    with override_settings(JWT_SIGNING_KEY="another-key-entirely-" + "x" * 40):
        assert _code(token) == ErrorCode.INVALID_TOKEN
    assert jwt_decodes == [token, token]


def test_a_tampered_token_is_refused_every_time_and_the_type_is_checked_every_time(
    make_trader: Any, jwt_decodes: list[str]
) -> None:
    token = tokens.access_token_for(make_trader())
    head, body, signature = token.split(".")
    forged = f"{head}.{body}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    assert _code(forged) == ErrorCode.INVALID_TOKEN
    assert _code(forged) == ErrorCode.INVALID_TOKEN
    tokens.decode(token, expected_type="access")
    assert _code(token, expected_type="refresh") == ErrorCode.INVALID_TOKEN  # never from the access cache
    assert forged not in tokens._verified_access


def test_the_cache_is_bounded(
    make_trader: Any, jwt_decodes: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokens, "VERIFIED_ACCESS_MAX", 3)
    trader = make_trader()
    issued = [tokens.access_token_for(trader) for _ in range(5)]
    for token in issued:
        tokens.decode(token, expected_type="access")
    assert len(tokens._verified_access) <= 3 and issued[-1] in tokens._verified_access
