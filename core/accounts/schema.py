"""OpenAPI descriptions of the two trader authentication schemes (drf-spectacular extensions)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from core.accounts import hmac_auth


class JWTScheme(OpenApiAuthenticationExtension):
    target_class = "core.accounts.authentication.JWTAuthentication"
    name = "jwt"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "Access token from /auth/login, /auth/register/verify or /auth/siwe/verify "
            "(15 minutes; renew with /auth/refresh).",
        }


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "core.accounts.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": hmac_auth.HEADER_KEY,
            "description": f"HMAC-SHA256 signed request: also send {hmac_auth.HEADER_TIMESTAMP} (ms), "
            f"{hmac_auth.HEADER_SIGNATURE} over timestamp + METHOD + path + canonical query + "
            f"sha256(body), and optionally {hmac_auth.HEADER_RECV_WINDOW} (ms, max 60000).",
        }
