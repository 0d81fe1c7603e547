"""Trader authentication endpoints: login (JWT), refresh (rotation), me, API keys."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.accounts import services, tokens
from core.accounts.api_keys import api_key_create, api_key_revoke
from core.accounts.models import ApiKey
from core.accounts.security_events import client_ip
from core.accounts.selectors import request_user
from core.accounts.sessions import sign_in_complete
from core.api_input import InputSerializer
from core.api_schema import api_errors
from core.errors import ApplicationError, ErrorCode
from core.rate_limit import ApiRateLimit


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()
    token_type = serializers.CharField()


class LoginApi(APIView):
    """Email + password (+ the 2FA code once enabled). Throttled per IP and per (account, IP); repeated
    wrong passwords lock the (account, IP) pair, not the account; an unverified email is refused with
    EMAIL_NOT_VERIFIED."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    class LoginInputSerializer(InputSerializer):
        email = serializers.EmailField()
        password = serializers.CharField(max_length=256, trim_whitespace=False)
        otp_code = serializers.CharField(max_length=32, required=False, default="")
        device = serializers.CharField(max_length=80, required=False, default="", allow_blank=True)

    @extend_schema(request=LoginInputSerializer, responses=TokenPairSerializer, operation_id="auth_login")
    @api_errors(
        ErrorCode.INVALID_OTP,
        ErrorCode.INVALID_CREDENTIALS,
        ErrorCode.EMAIL_NOT_VERIFIED,
        ErrorCode.OTP_REQUIRED,
        ErrorCode.ACCOUNT_LOCKED,
        ErrorCode.RATE_LIMITED,
    )
    def post(self, request: Request) -> Response:
        data = self.LoginInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.trader_password_check(
            request=request._request,
            email=data.validated_data["email"],
            password=data.validated_data["password"],
        )
        pair = sign_in_complete(
            user=user,
            request=request._request,
            method="password",
            otp_code=data.validated_data["otp_code"],
            device=data.validated_data["device"],
        )
        return Response(TokenPairSerializer(pair).data)


class RefreshApi(APIView):
    """Rotate a refresh token. Bounded by the general per-address write budget only: a refresh token is
    signed (nothing to guess, and a forged one is refused before the database is read), and a tight
    per-address count refused the clients of one office or NAT that refreshed within the same minute —
    every demo trader, 15 minutes after they signed in together."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes = [ApiRateLimit]

    class RefreshInputSerializer(InputSerializer):
        refresh = serializers.CharField()

    @extend_schema(request=RefreshInputSerializer, responses=TokenPairSerializer, operation_id="auth_refresh")
    @api_errors(ErrorCode.INVALID_TOKEN, ErrorCode.TOKEN_EXPIRED)
    def post(self, request: Request) -> Response:
        data = self.RefreshInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pair = tokens.token_pair_refresh(
            refresh=data.validated_data["refresh"],
            ip=client_ip(request._request),
            user_agent=request.headers.get("User-Agent", ""),
        )
        return Response(TokenPairSerializer(pair).data)


class MeApi(APIView):
    key_scope = "read"

    class MeOutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        email = serializers.EmailField(source="contact_email", allow_null=True)
        email_verified = serializers.BooleanField()
        wallet_address = serializers.CharField(allow_null=True)
        kyc_status = serializers.CharField()
        trading_restricted = serializers.BooleanField()
        withdrawals_restricted = serializers.BooleanField()

    @extend_schema(responses=MeOutputSerializer, operation_id="me")
    def get(self, request: Request) -> Response:
        return Response(self.MeOutputSerializer(request.user).data)


@extend_schema_field({"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]})
class IPAddressField(serializers.IPAddressField):
    """An IPv4 or IPv6 address (DRF's field is documented as any string)."""


class ApiKeyOutputSerializer(serializers.Serializer):
    key_id = serializers.CharField()
    label = serializers.CharField()
    permissions = serializers.ListField(child=serializers.CharField())
    ip_allowlist = serializers.ListField(child=IPAddressField())
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class ApiKeyCreatedSerializer(ApiKeyOutputSerializer):
    secret = serializers.CharField(help_text="shown once: only its encrypted form is stored")


class ApiKeyListCreateApi(APIView):
    """Keys are managed from an interactive (JWT) session only: a key cannot mint or list keys."""

    class ApiKeyListCreateInputSerializer(InputSerializer):
        label = serializers.CharField(max_length=80, required=False, default="")
        permissions = serializers.ListField(
            child=serializers.ChoiceField(choices=ApiKey.Permission.choices), min_length=1, max_length=3
        )
        ip_allowlist = serializers.ListField(child=IPAddressField(), required=False, default=list)
        otp_code = serializers.CharField(
            max_length=32, required=False, default="", help_text="required once 2FA is enabled"
        )

    def _require_session(self, request: Request) -> None:
        if isinstance(request.auth, ApiKey):
            raise ApplicationError(
                ErrorCode.API_KEY_PERMISSION, "API keys are managed from a signed-in session."
            )

    @extend_schema(responses=ApiKeyOutputSerializer(many=True), operation_id="api_keys_list")
    def get(self, request: Request) -> Response:
        self._require_session(request)
        keys = ApiKey.objects.filter(user=request.user).order_by("-id")
        return Response(ApiKeyOutputSerializer(keys, many=True).data)

    @extend_schema(
        request=ApiKeyListCreateInputSerializer,
        responses={201: ApiKeyCreatedSerializer},
        operation_id="api_keys_create",
        description="Needs the current 2FA code (``otp_code``) when two-factor authentication is enabled.",
    )
    @api_errors(ErrorCode.OTP_REQUIRED, ErrorCode.INVALID_OTP)
    def post(self, request: Request) -> Response:
        self._require_session(request)
        data = self.ApiKeyListCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        key, secret = api_key_create(
            user=request_user(request), request=request._request, **data.validated_data
        )
        body = dict(ApiKeyOutputSerializer(key).data)
        body["secret"] = secret  # shown once; only its encrypted form is stored
        return Response(body, status=201)


class ApiKeyRevokeApi(APIView):
    @extend_schema(request=None, responses=ApiKeyOutputSerializer, operation_id="api_keys_revoke")
    def post(self, request: Request, key_id: str) -> Response:
        if isinstance(request.auth, ApiKey):
            raise ApplicationError(
                ErrorCode.API_KEY_PERMISSION, "API keys are managed from a signed-in session."
            )
        key = api_key_revoke(user=request_user(request), key_id=key_id, request=request._request)
        return Response(ApiKeyOutputSerializer(key).data)
