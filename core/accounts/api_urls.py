"""Trader account routes under /api/v1/: /auth/... (sign-up, verification, reset, SIWE, logout) and
/account/security/... (password, email, wallet, 2FA, sessions, events) and /account/kyc."""

from django.urls import path

from core.accounts import security_api as views

urlpatterns = [
    path("auth/register", views.RegisterApi.as_view(), name="auth-register"),
    path("auth/register/resend", views.RegisterResendApi.as_view(), name="auth-register-resend"),
    path("auth/register/verify", views.RegisterVerifyApi.as_view(), name="auth-register-verify"),
    path("auth/password/reset", views.PasswordResetApi.as_view(), name="auth-password-reset"),
    path(
        "auth/password/reset/confirm",
        views.PasswordResetConfirmApi.as_view(),
        name="auth-password-reset-confirm",
    ),
    path("auth/siwe/nonce", views.SiweNonceApi.as_view(), name="auth-siwe-nonce"),
    path("auth/siwe/verify", views.SiweVerifyApi.as_view(), name="auth-siwe-verify"),
    path("auth/logout", views.LogoutApi.as_view(), name="auth-logout"),
    path("auth/logout-all", views.LogoutAllApi.as_view(), name="auth-logout-all"),
    path("account/security", views.SecurityOverviewApi.as_view(), name="account-security"),
    path("account/security/password", views.PasswordChangeApi.as_view(), name="account-password"),
    path("account/security/email", views.EmailChangeApi.as_view(), name="account-email"),
    path(
        "account/security/email/confirm", views.EmailChangeConfirmApi.as_view(), name="account-email-confirm"
    ),
    path("account/security/wallet/nonce", views.WalletNonceApi.as_view(), name="account-wallet-nonce"),
    path("account/security/wallet", views.WalletLinkApi.as_view(), name="account-wallet"),
    path("account/security/2fa/totp", views.TotpEnrolApi.as_view(), name="account-totp"),
    path("account/security/2fa/totp/confirm", views.TotpConfirmApi.as_view(), name="account-totp-confirm"),
    path("account/security/2fa/disable", views.TotpDisableApi.as_view(), name="account-totp-disable"),
    path(
        "account/security/2fa/recovery-codes", views.RecoveryCodesApi.as_view(), name="account-recovery-codes"
    ),
    path("account/security/sessions", views.SessionListApi.as_view(), name="account-sessions"),
    path(
        "account/security/sessions/<str:session_id>/revoke",
        views.SessionRevokeApi.as_view(),
        name="account-session-revoke",
    ),
    path("account/security/events", views.SecurityEventListApi.as_view(), name="account-security-events"),
    path("account/kyc", views.KycApi.as_view(), name="account-kyc"),
    path("account/kyc/submit", views.KycSubmitApi.as_view(), name="account-kyc-submit"),
]
