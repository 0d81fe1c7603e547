"""Trader account endpoints: sign-up, email verification, password reset, Sign-In with Ethereum,
logout (here / everywhere), and account security (password, email, wallet link, 2FA, sessions,
security events, KYC). Thin views: parse → one service call → serialise."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.accounts import kyc, sessions, signup, siwe, two_factor
from core.accounts.api import TokenPairSerializer
from core.accounts.permissions import InteractiveSession
from core.accounts.selectors import kyc_limits_for, request_user, security_events_for
from core.api_input import InputSerializer
from core.api_schema import api_errors
from core.errors import ErrorCode

ACCEPTED_TEXT = "If the address can receive it, an email is on its way."


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


def _accepted() -> Response:
    return Response({"detail": ACCEPTED_TEXT}, status=status.HTTP_202_ACCEPTED)


def _session_id(request: Request) -> str | None:
    return request.auth.get("sid") if isinstance(request.auth, dict) else None


class AnonymousApi(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]


class SessionApi(APIView):
    permission_classes = [InteractiveSession]


# --- sign-up and email verification ----------------------------------------------------------------


class RegisterApi(AnonymousApi):
    class RegisterInputSerializer(InputSerializer):
        email = serializers.EmailField()
        password = serializers.CharField(max_length=256, trim_whitespace=False)

    @extend_schema(
        request=RegisterInputSerializer,
        responses={202: DetailSerializer},
        operation_id="auth_register",
        description="Starts a sign-up; a 6-digit code is emailed. The answer is the same whether or not "
        "the address already has an account. A password that fails the password rules is a "
        "VALIDATION_ERROR on ``password``.",
    )
    @api_errors(ErrorCode.RATE_LIMITED)
    def post(self, request: Request) -> Response:
        data = self.RegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        signup.account_register(request=request._request, **data.validated_data)
        return _accepted()


class RegisterResendApi(AnonymousApi):
    class RegisterResendInputSerializer(InputSerializer):
        email = serializers.EmailField()

    @extend_schema(
        request=RegisterResendInputSerializer,
        responses={202: DetailSerializer},
        operation_id="auth_register_resend",
    )
    @api_errors(ErrorCode.RATE_LIMITED)
    def post(self, request: Request) -> Response:
        data = self.RegisterResendInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        signup.account_register_resend(request=request._request, **data.validated_data)
        return _accepted()


class RegisterVerifyApi(AnonymousApi):
    class RegisterVerifyInputSerializer(InputSerializer):
        email = serializers.EmailField()
        code = serializers.CharField(max_length=12)
        password = serializers.CharField(max_length=256, trim_whitespace=False)
        device = serializers.CharField(max_length=80, required=False, default="", allow_blank=True)

    @extend_schema(
        request=RegisterVerifyInputSerializer,
        responses=TokenPairSerializer,
        operation_id="auth_register_verify",
        description="The emailed code plus the password chosen at sign-up; signs the new account in.",
    )
    @api_errors(
        ErrorCode.INVALID_CODE, ErrorCode.CODE_EXPIRED, ErrorCode.INVALID_CREDENTIALS, ErrorCode.RATE_LIMITED
    )
    def post(self, request: Request) -> Response:
        data = self.RegisterVerifyInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pair = signup.account_verify_email(request=request._request, **data.validated_data)
        return Response(TokenPairSerializer(pair).data)


# --- password reset ----------------------------------------------------------------------------------


class PasswordResetApi(AnonymousApi):
    class PasswordResetInputSerializer(InputSerializer):
        email = serializers.EmailField()

    @extend_schema(
        request=PasswordResetInputSerializer,
        responses={202: DetailSerializer},
        operation_id="auth_password_reset",
    )
    @api_errors(ErrorCode.RATE_LIMITED)
    def post(self, request: Request) -> Response:
        data = self.PasswordResetInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        signup.password_reset_request(request=request._request, **data.validated_data)
        return _accepted()


class PasswordResetConfirmApi(AnonymousApi):
    class PasswordResetConfirmInputSerializer(InputSerializer):
        email = serializers.EmailField()
        code = serializers.CharField(max_length=12)
        new_password = serializers.CharField(max_length=256, trim_whitespace=False)

    @extend_schema(
        request=PasswordResetConfirmInputSerializer,
        responses=DetailSerializer,
        operation_id="auth_password_reset_confirm",
        description="Sets the new password and ends every session of the account.",
    )
    @api_errors(ErrorCode.INVALID_CODE, ErrorCode.CODE_EXPIRED, ErrorCode.RATE_LIMITED)
    def post(self, request: Request) -> Response:
        data = self.PasswordResetConfirmInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        signup.password_reset_confirm(request=request._request, **data.validated_data)
        return Response({"detail": "Password changed. Sign in with the new password."})


# --- Sign-In with Ethereum ---------------------------------------------------------------------------


class SiweTemplateSerializer(serializers.Serializer):
    nonce = serializers.CharField()
    domain = serializers.CharField()
    uri = serializers.CharField()
    version = serializers.CharField()
    chain_ids = serializers.ListField(child=serializers.IntegerField())
    statement = serializers.CharField()
    issued_at = serializers.CharField()
    expiration_time = serializers.CharField()
    message = serializers.CharField(
        allow_null=True, help_text="the EIP-4361 text to sign, when an address was given"
    )


SIWE_ERRORS = (
    ErrorCode.SIWE_INVALID,
    ErrorCode.SIWE_DOMAIN_MISMATCH,
    ErrorCode.SIWE_NONCE_INVALID,
    ErrorCode.SIWE_EXPIRED,
)


class SiweNonceInputSerializer(InputSerializer):
    address = serializers.RegexField(r"^0x[a-fA-F0-9]{40}$", required=False)
    chain_id = serializers.IntegerField(required=False)


class SiweNonceApi(AnonymousApi):
    @extend_schema(
        request=SiweNonceInputSerializer,
        responses=SiweTemplateSerializer,
        operation_id="auth_siwe_nonce",
        description="A single-use nonce (10 minutes) and the EIP-4361 fields to sign.",
    )
    @api_errors(ErrorCode.RATE_LIMITED)
    def post(self, request: Request) -> Response:
        data = SiweNonceInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        nonce = siwe.siwe_nonce_issue(request=request._request)
        body = siwe.siwe_template(
            nonce=nonce,
            address=data.validated_data.get("address"),
            chain_id=data.validated_data.get("chain_id"),
            statement=siwe.STATEMENT,
        )
        return Response(SiweTemplateSerializer(body).data)


class SiweVerifyApi(AnonymousApi):
    class SiweVerifyInputSerializer(InputSerializer):
        message = serializers.CharField(max_length=4000, trim_whitespace=False)
        signature = serializers.CharField(max_length=200)
        otp_code = serializers.CharField(max_length=32, required=False, default="")
        device = serializers.CharField(max_length=80, required=False, default="", allow_blank=True)

    @extend_schema(
        request=SiweVerifyInputSerializer,
        responses=TokenPairSerializer,
        operation_id="auth_siwe_verify",
        description="Signs the wallet in (creating a wallet-only account on first use).",
    )
    @api_errors(
        *SIWE_ERRORS,
        ErrorCode.INVALID_CREDENTIALS,
        ErrorCode.OTP_REQUIRED,
        ErrorCode.INVALID_OTP,
        ErrorCode.ACCOUNT_LOCKED,
        ErrorCode.RATE_LIMITED,
    )
    def post(self, request: Request) -> Response:
        data = self.SiweVerifyInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        pair = siwe.siwe_sign_in(request=request._request, **data.validated_data)
        return Response(TokenPairSerializer(pair).data)


# --- logout ------------------------------------------------------------------------------------------


class LogoutApi(SessionApi):
    @extend_schema(request=None, responses={204: None}, operation_id="auth_logout")
    def post(self, request: Request) -> Response:
        sessions.logout(user=request_user(request), session_id=_session_id(request), request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class LogoutAllApi(SessionApi):
    class LogoutAllOutputSerializer(serializers.Serializer):
        sessions_ended = serializers.IntegerField()

    @extend_schema(request=None, responses=LogoutAllOutputSerializer, operation_id="auth_logout_all")
    def post(self, request: Request) -> Response:
        ended = sessions.logout_everywhere(user=request_user(request), request=request._request)
        return Response(self.LogoutAllOutputSerializer({"sessions_ended": ended}).data)


# --- account security --------------------------------------------------------------------------------


class SecurityOverviewApi(SessionApi):
    class SecurityOverviewOutputSerializer(serializers.Serializer):
        email = serializers.EmailField(allow_null=True)
        email_verified = serializers.BooleanField()
        wallet_address = serializers.CharField(allow_null=True)
        has_password = serializers.BooleanField()
        two_factor_enabled = serializers.BooleanField()
        recovery_codes_left = serializers.IntegerField()
        withdrawal_lock_until = serializers.DateTimeField(allow_null=True)

    @extend_schema(responses=SecurityOverviewOutputSerializer, operation_id="account_security")
    def get(self, request: Request) -> Response:
        user = request_user(request)
        changed = user.last_security_change_at
        body = {
            "email": user.contact_email,
            "email_verified": user.email_verified,
            "wallet_address": user.wallet_address,
            "has_password": user.has_usable_password(),
            "two_factor_enabled": two_factor.two_factor_enabled(user),
            "recovery_codes_left": two_factor.recovery_codes_left(user),
            "withdrawal_lock_until": changed + timedelta(hours=24) if changed else None,
        }
        return Response(self.SecurityOverviewOutputSerializer(body).data)


class PasswordChangeApi(SessionApi):
    class PasswordChangeInputSerializer(InputSerializer):
        current_password = serializers.CharField(max_length=256, trim_whitespace=False)
        new_password = serializers.CharField(max_length=256, trim_whitespace=False)

    @extend_schema(
        request=PasswordChangeInputSerializer,
        responses=DetailSerializer,
        operation_id="account_password_change",
        description="Other sessions end; withdrawals are held for review for 24 hours. A wrong current "
        "password is 403 INVALID_CREDENTIALS (not 401: the session is fine).",
    )
    @api_errors((ErrorCode.INVALID_CREDENTIALS, 403), ErrorCode.RATE_LIMITED)
    def post(self, request: Request) -> Response:
        data = self.PasswordChangeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        signup.password_change(
            user=request_user(request),
            session_id=_session_id(request),
            request=request._request,
            **data.validated_data,
        )
        return Response({"detail": "Password changed."})


class EmailChangeApi(SessionApi):
    class EmailChangeInputSerializer(InputSerializer):
        new_email = serializers.EmailField()
        password = serializers.CharField(
            max_length=256, required=False, default="", trim_whitespace=False, help_text="unless wallet-only"
        )

    @extend_schema(
        request=EmailChangeInputSerializer,
        responses={202: DetailSerializer},
        operation_id="account_email_change",
        description="Sends a code to the new address (also how a wallet account links its first email).",
    )
    @api_errors((ErrorCode.INVALID_CREDENTIALS, 403), ErrorCode.RATE_LIMITED)
    def post(self, request: Request) -> Response:
        data = self.EmailChangeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        signup.email_change_start(user=request_user(request), request=request._request, **data.validated_data)
        return _accepted()


class AccountIdentitySerializer(serializers.Serializer):
    email = serializers.EmailField(source="contact_email", allow_null=True)
    email_verified = serializers.BooleanField()
    wallet_address = serializers.CharField(allow_null=True)


class EmailChangeConfirmApi(SessionApi):
    class EmailChangeConfirmInputSerializer(InputSerializer):
        code = serializers.CharField(max_length=12)

    @extend_schema(
        request=EmailChangeConfirmInputSerializer,
        responses=AccountIdentitySerializer,
        operation_id="account_email_confirm",
    )
    @api_errors(ErrorCode.INVALID_CODE, ErrorCode.CODE_EXPIRED, ErrorCode.RATE_LIMITED)
    def post(self, request: Request) -> Response:
        data = self.EmailChangeConfirmInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = signup.email_change_confirm(
            user=request_user(request), code=data.validated_data["code"], request=request._request
        )
        return Response(AccountIdentitySerializer(user).data)


class WalletNonceApi(SessionApi):
    @extend_schema(
        request=SiweNonceInputSerializer,
        responses=SiweTemplateSerializer,
        operation_id="account_wallet_nonce",
    )
    @api_errors(ErrorCode.RATE_LIMITED)
    def post(self, request: Request) -> Response:
        data = SiweNonceInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        nonce = siwe.siwe_nonce_issue(user=request_user(request), request=request._request)
        body = siwe.siwe_template(
            nonce=nonce,
            address=data.validated_data.get("address"),
            chain_id=data.validated_data.get("chain_id"),
            statement=siwe.LINK_STATEMENT,
        )
        return Response(SiweTemplateSerializer(body).data)


class WalletLinkApi(SessionApi):
    class WalletLinkInputSerializer(InputSerializer):
        message = serializers.CharField(max_length=4000, trim_whitespace=False)
        signature = serializers.CharField(max_length=200)

    @extend_schema(
        request=WalletLinkInputSerializer,
        responses=AccountIdentitySerializer,
        operation_id="account_wallet_link",
        description="Links the signing wallet (EIP-4361 message with a nonce from wallet/nonce).",
    )
    @api_errors(*SIWE_ERRORS, ErrorCode.WALLET_IN_USE, ErrorCode.RATE_LIMITED)
    def post(self, request: Request) -> Response:
        data = self.WalletLinkInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = siwe.wallet_link(user=request_user(request), request=request._request, **data.validated_data)
        return Response(AccountIdentitySerializer(user).data)


class TotpEnrolApi(SessionApi):
    class TotpEnrolOutputSerializer(serializers.Serializer):
        secret = serializers.CharField(help_text="base32, for manual entry")
        otpauth_uri = serializers.CharField()
        qr_svg_data_uri = serializers.CharField(help_text="data:image/svg+xml;base64,…")

    @extend_schema(request=None, responses=TotpEnrolOutputSerializer, operation_id="account_totp_enrol")
    @api_errors(ErrorCode.INVALID_STATE)
    def post(self, request: Request) -> Response:
        enrolment = two_factor.totp_enrol_start(user=request_user(request))
        return Response(self.TotpEnrolOutputSerializer(enrolment).data)


class RecoveryCodesSerializer(serializers.Serializer):
    recovery_codes = serializers.ListField(child=serializers.CharField(), help_text="shown once")


class CodeInputSerializer(InputSerializer):
    code = serializers.CharField(max_length=32)


class TotpConfirmApi(SessionApi):
    @extend_schema(
        request=CodeInputSerializer,
        responses=RecoveryCodesSerializer,
        operation_id="account_totp_confirm",
        description="Enables 2FA; returns 10 single-use recovery codes. Withdrawals are held for review "
        "for 24 hours.",
    )
    @api_errors(ErrorCode.INVALID_STATE, ErrorCode.INVALID_OTP)
    def post(self, request: Request) -> Response:
        data = CodeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        codes = two_factor.totp_enrol_confirm(
            user=request_user(request), code=data.validated_data["code"], request=request._request
        )
        return Response(RecoveryCodesSerializer({"recovery_codes": codes}).data)


class TotpDisableApi(SessionApi):
    class TotpDisableInputSerializer(InputSerializer):
        password = serializers.CharField(max_length=256, trim_whitespace=False)
        code = serializers.CharField(max_length=32, help_text="a current code or a recovery code")

    @extend_schema(
        request=TotpDisableInputSerializer, responses={204: None}, operation_id="account_totp_disable"
    )
    @api_errors(
        ErrorCode.INVALID_STATE,
        (ErrorCode.INVALID_CREDENTIALS, 403),
        ErrorCode.OTP_REQUIRED,
        ErrorCode.INVALID_OTP,
        ErrorCode.RATE_LIMITED,
    )
    def post(self, request: Request) -> Response:
        data = self.TotpDisableInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        two_factor.totp_disable(user=request_user(request), request=request._request, **data.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class RecoveryCodesApi(SessionApi):
    @extend_schema(
        request=CodeInputSerializer, responses=RecoveryCodesSerializer, operation_id="account_recovery_codes"
    )
    @api_errors(ErrorCode.INVALID_STATE, ErrorCode.OTP_REQUIRED, ErrorCode.INVALID_OTP)
    def post(self, request: Request) -> Response:
        data = CodeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        codes = two_factor.recovery_codes_regenerate(
            user=request_user(request), code=data.validated_data["code"], request=request._request
        )
        return Response(RecoveryCodesSerializer({"recovery_codes": codes}).data)


class SessionSerializer(serializers.Serializer):
    id = serializers.CharField()
    device = serializers.CharField()
    user_agent = serializers.CharField()
    ip = serializers.IPAddressField(allow_null=True)
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    current = serializers.BooleanField()


class SessionListApi(SessionApi):
    @extend_schema(responses=SessionSerializer(many=True), operation_id="account_sessions")
    def get(self, request: Request) -> Response:
        rows = sessions.sessions_for(user=request_user(request), current=_session_id(request))
        return Response(SessionSerializer(rows, many=True).data)


class SessionRevokeApi(SessionApi):
    @extend_schema(request=None, responses={204: None}, operation_id="account_session_revoke")
    def post(self, request: Request, session_id: str) -> Response:
        sessions.session_revoke(user=request_user(request), session_id=session_id, request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SecurityEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    ip = serializers.IPAddressField(allow_null=True)
    user_agent = serializers.CharField()
    details = serializers.DictField()
    created_at = serializers.DateTimeField()


class SecurityEventListApi(generics.ListAPIView):
    permission_classes = [InteractiveSession]
    serializer_class = SecurityEventSerializer

    def get_queryset(self) -> QuerySet[Any]:
        return security_events_for(request_user(self.request).pk)

    @extend_schema(operation_id="account_security_events")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class KycOutputSerializer(serializers.Serializer):
    kyc_status = serializers.CharField()
    daily_withdrawal_limit = serializers.DecimalField(max_digits=20, decimal_places=6)
    max_order_notional = serializers.DecimalField(max_digits=20, decimal_places=6)


def _kyc_body(request: Request) -> dict[str, Any]:
    user = request_user(request)
    limits = kyc_limits_for(user)
    return {
        "kyc_status": user.kyc_status,
        "daily_withdrawal_limit": limits.daily_withdrawal_limit,
        "max_order_notional": limits.max_order_notional,
    }


class KycApi(SessionApi):
    @extend_schema(responses=KycOutputSerializer, operation_id="account_kyc")
    def get(self, request: Request) -> Response:
        return Response(KycOutputSerializer(_kyc_body(request)).data)


class KycSubmitApi(SessionApi):
    @extend_schema(
        request=None,
        responses=KycOutputSerializer,
        operation_id="account_kyc_submit",
        description="Asks for verification through the configured KYC provider (default: manual review).",
    )
    @api_errors(ErrorCode.INVALID_STATE)
    def post(self, request: Request) -> Response:
        kyc.kyc_submit(user=request_user(request), request=request._request)
        return Response(KycOutputSerializer(_kyc_body(request)).data)
