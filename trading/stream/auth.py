"""Who opens a user stream: exactly the REST API's rules, run by the REST authenticators themselves.

A JWT (``Authorization: Bearer``) or an API key's HMAC signature over ``GET /ws/v1/user`` (empty query
and body) — same timestamp window, replay cache and IP allow-list — given as handshake headers or in
the first frame (``{"op": "auth", …}``). An API key needs the ``read`` permission."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from django.core.handlers.wsgi import WSGIRequest
from rest_framework import exceptions
from rest_framework.request import Request

from core.accounts import hmac_auth
from core.accounts.authentication import ApiKeyAuthentication, JWTAuthentication
from core.accounts.models import ApiKey
from core.errors import ErrorCode

USER_PATH = "/ws/v1/user"


@dataclass(frozen=True)
class AuthResult:
    user_id: int | None
    code: str = ""
    message: str = ""
    expires_at: float | None = None  # a JWT's expiry (epoch s): the stream ends then (4001, TOKEN_EXPIRED)


def _meta_name(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def headers_of(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin1").lower(): v.decode("latin1") for k, v in scope.get("headers", [])}


def has_credentials(headers: dict[str, str]) -> bool:
    return "authorization" in headers or hmac_auth.HEADER_KEY.lower() in headers


def frame_headers(frame: dict[str, Any]) -> dict[str, str]:
    """The auth frame's fields as the headers a REST request would carry."""
    if frame.get("token") is not None:
        return {"authorization": f"Bearer {frame['token']}"}
    headers = {
        hmac_auth.HEADER_KEY.lower(): str(frame.get("api_key") or ""),
        hmac_auth.HEADER_TIMESTAMP.lower(): str(frame.get("timestamp") or ""),
        hmac_auth.HEADER_SIGNATURE.lower(): str(frame.get("signature") or ""),
    }
    if frame.get("recv_window") is not None:
        headers[hmac_auth.HEADER_RECV_WINDOW.lower()] = str(frame["recv_window"])
    return headers


def authenticate(headers: dict[str, str], client_ip: str) -> AuthResult:
    """Run the REST authenticators over a GET of the stream's path carrying ``headers``."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": USER_PATH,
        "QUERY_STRING": "",
        "REMOTE_ADDR": client_ip,
        "CONTENT_LENGTH": "0",
        "wsgi.input": io.BytesIO(b""),
    }
    for name, value in headers.items():
        environ[_meta_name(name)] = value
    request = Request(WSGIRequest(environ))
    try:
        for authenticator in (ApiKeyAuthentication(), JWTAuthentication()):
            found = authenticator.authenticate(request)
            if found is None:
                continue
            user, auth = found
            if isinstance(auth, ApiKey) and "read" not in auth.permissions:
                return AuthResult(
                    None, ErrorCode.API_KEY_PERMISSION, "This API key lacks the 'read' permission."
                )
            expires = auth.get("exp") if isinstance(auth, dict) else None
            return AuthResult(int(user.pk), expires_at=float(expires) if expires is not None else None)
    except exceptions.APIException as exc:
        code = getattr(exc, "xbit_code", ErrorCode.NOT_AUTHENTICATED)
        return AuthResult(None, str(code), str(exc.detail))
    return AuthResult(None, ErrorCode.NOT_AUTHENTICATED, "Give a bearer token or an API key signature.")
