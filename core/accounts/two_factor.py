"""Two-factor authentication for traders: TOTP (django-otp ``TOTPDevice``) plus 10 single-use recovery
codes (``StaticDevice``). Once enabled it is required to sign in, to create API keys and (wallets) to
withdraw. Enabling or disabling it is a security change: the 24-hour withdrawal lock starts.

TOTP secrets and recovery codes are returned to their owner once and never logged."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from core.accounts.emails import email_send_on_commit
from core.accounts.models import SecurityEvent, User
from core.accounts.security_events import security_event_record
from core.accounts.services import otp_failure_record, password_reauthenticate, security_change_mark
from core.errors import ApplicationError, ErrorCode
from core.text import ascii_int

RECOVERY_CODE_COUNT = 10
TOTP_DEVICE_NAME = "authenticator"
RECOVERY_DEVICE_NAME = "recovery"


@dataclass(frozen=True)
class TotpEnrolment:
    secret: str
    otpauth_uri: str
    qr_svg_data_uri: str


def two_factor_enabled(user: User) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def recovery_codes_left(user: User) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def _normalise(code: object) -> str:
    return "".join(str(code or "").split()).replace("-", "").lower()


def second_factor_verify(*, user: User, code: object, request: HttpRequest | None = None) -> None:
    """Accept a current TOTP code or an unused recovery code (which is then spent).

    Raises OTP_REQUIRED when no code was given and INVALID_OTP when it is wrong; a wrong code counts
    toward the sign-in lockout. Call outside a transaction so that the failure is recorded."""
    token = _normalise(code)
    if not token:
        raise ApplicationError(ErrorCode.OTP_REQUIRED, "Enter the code from your authenticator app.")
    if ascii_int(token, max_digits=8) is not None:  # "١٢٣٤٥٦" is not a TOTP code
        if any(d.verify_token(token) for d in TOTPDevice.objects.filter(user=user, confirmed=True)):
            return
    else:
        for device in StaticDevice.objects.filter(user=user, confirmed=True):
            if device.verify_token(token):
                security_event_record(
                    user=user,
                    kind=SecurityEvent.Kind.RECOVERY_CODE_USED,
                    request=request,
                    left=recovery_codes_left(user),
                )
                return
    otp_failure_record(user=user, request=request)
    raise ApplicationError(ErrorCode.INVALID_OTP, "The two-factor code is wrong or was already used.")


def second_factor_if_enabled(*, user: User, code: object, request: HttpRequest | None = None) -> None:
    if two_factor_enabled(user):
        second_factor_verify(user=user, code=code, request=request)


def _otpauth_uri(device: TOTPDevice, user: User) -> str:
    issuer = settings.OTP_TOTP_ISSUER.replace(":", "")
    label = f"{issuer}:{user.contact_email or user.wallet_address or user.pk}"
    params = urlencode(
        {
            "secret": base64.b32encode(device.bin_key).decode(),
            "algorithm": "SHA1",
            "digits": device.digits,
            "period": device.step,
        }
    )
    return f"otpauth://totp/{quote(label)}?{params}&issuer={quote(issuer)}"


def _qr_svg_data_uri(text: str) -> str:
    image: Any = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    return "data:image/svg+xml;base64," + base64.b64encode(image.to_string()).decode()


@transaction.atomic
def totp_enrol_start(*, user: User) -> TotpEnrolment:
    """Create an unconfirmed authenticator (replacing an earlier unfinished one) and return its
    secret, otpauth URI and QR code. Nothing is enforced until ``totp_enrol_confirm``."""
    if two_factor_enabled(user):
        raise ApplicationError(ErrorCode.INVALID_STATE, "Two-factor authentication is already enabled.")
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    device = TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)
    uri = _otpauth_uri(device, user)
    return TotpEnrolment(
        secret=base64.b32encode(device.bin_key).decode(),
        otpauth_uri=uri,
        qr_svg_data_uri=_qr_svg_data_uri(uri),
    )


def _recovery_codes_replace(user: User) -> list[str]:
    StaticDevice.objects.filter(user=user).delete()
    device = StaticDevice.objects.create(user=user, name=RECOVERY_DEVICE_NAME, confirmed=True)
    codes: set[str] = set()
    while len(codes) < RECOVERY_CODE_COUNT:
        codes.add(StaticToken.random_token())
    StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in sorted(codes))
    return sorted(codes)


def _security_notice(user: User, change: str) -> None:
    email_send_on_commit(
        to=user.email if user.email_verified else None,
        template="security_change",
        context={"change": change, "at": timezone.now()},
    )


def totp_enrol_confirm(*, user: User, code: object, request: HttpRequest | None = None) -> list[str]:
    """Prove the authenticator works; enables 2FA and returns 10 recovery codes (shown once).

    Side effects: device confirmed, recovery codes replaced, OTP_ENROLLED event, 24-hour withdrawal
    lock (``security_change_mark``), notice email after commit."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-id").first()
    if device is None or two_factor_enabled(user):
        raise ApplicationError(ErrorCode.INVALID_STATE, "Start the authenticator set-up first.")
    token = _normalise(code)
    if not (ascii_int(token, max_digits=8) is not None and device.verify_token(token)):
        raise ApplicationError(ErrorCode.INVALID_OTP, "The code does not match. Check the device's clock.")
    with transaction.atomic():
        TOTPDevice.objects.filter(pk=device.pk).update(confirmed=True)
        codes = _recovery_codes_replace(user)
        security_event_record(user=user, kind=SecurityEvent.Kind.OTP_ENROLLED, request=request)
        security_change_mark(user=user)
        _security_notice(user, "Two-factor authentication was enabled")
    return codes


def totp_disable(*, user: User, password: str, code: object, request: HttpRequest | None = None) -> None:
    """Turn 2FA off: needs the account password and a current code (or a recovery code).

    Side effects: TOTP and recovery devices deleted, OTP_DISABLED event, 24-hour withdrawal lock,
    notice email after commit."""
    if not two_factor_enabled(user):
        raise ApplicationError(ErrorCode.INVALID_STATE, "Two-factor authentication is not enabled.")
    password_reauthenticate(user=user, password=password, request=request)
    second_factor_verify(user=user, code=code, request=request)
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
        security_event_record(user=user, kind=SecurityEvent.Kind.OTP_DISABLED, request=request)
        security_change_mark(user=user)
        _security_notice(user, "Two-factor authentication was disabled")


def recovery_codes_regenerate(*, user: User, code: object, request: HttpRequest | None = None) -> list[str]:
    """New set of 10 recovery codes (the old ones stop working); needs a current TOTP code."""
    if not two_factor_enabled(user):
        raise ApplicationError(ErrorCode.INVALID_STATE, "Two-factor authentication is not enabled.")
    second_factor_verify(user=user, code=code, request=request)
    with transaction.atomic():
        codes = _recovery_codes_replace(user)
        security_event_record(user=user, kind=SecurityEvent.Kind.RECOVERY_CODES_GENERATED, request=request)
    return codes
